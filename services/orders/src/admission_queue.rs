//! Batched admission: the order requests for one drop that wait on this process go to the
//! admission script together, in arrival order, and each gets its own decision back. The
//! cost of a script call is paid once per batch, so one drop's Redis core admits more
//! requests per second; first come, first served is still the order in which requests
//! reach the script.
//!
//! While one batch of a drop is with the script, the drop's next requests wait; when it
//! returns they go as the next batch (at most `batch_max`). Requests that the edge can
//! refuse by the time their batch leaves (the drop sold out or closed while they waited)
//! are answered without the script. With `batch_max` 1 every request is its own call, made
//! at once, as without a queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::admission::{Admission, AdmissionError, Decided, Decision, OrderRequest, Rejection};
use crate::edge::{Edge, Refusal};

/// The decision on one request, or why there is none (shared by a batch's requests).
pub type Admitted = Result<Decision, Arc<AdmissionError>>;

/// The admission queues of one orders process; clones share them.
#[derive(Clone)]
pub struct AdmissionQueue {
    inner: Arc<Inner>,
}

struct Inner {
    admission: Admission,
    edge: Option<Edge>,
    batch_max: usize,
    drops: Mutex<HashMap<String, Vec<Waiting>>>,
}

/// A request waiting for its batch.
struct Waiting {
    request: OrderRequest,
    reply: oneshot::Sender<Admitted>,
}

impl AdmissionQueue {
    /// Queues in front of `admission`; `edge`, when given, hears what each batch changed.
    pub fn new(admission: Admission, edge: Option<Edge>, batch_max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                admission,
                edge,
                batch_max: batch_max.clamp(1, crate::admission::MAX_BATCH),
                drops: Mutex::default(),
            }),
        }
    }

    /// The script's decision on `request` for `drop_id`.
    pub async fn admit(&self, drop_id: &str, request: OrderRequest) -> Admitted {
        if self.inner.batch_max == 1 {
            let decided = self
                .inner
                .admission
                .admit_batch(drop_id, std::slice::from_ref(&request))
                .await
                .map_err(Arc::new)?;
            return self
                .take_in(decided)
                .pop()
                .ok_or_else(|| Arc::new(AdmissionError::Protocol("no decision".into())));
        }
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting { request, reply };
        let first = {
            let mut drops = self.inner.drops.lock().expect("admission queue lock");
            match drops.get_mut(drop_id) {
                Some(queue) => {
                    queue.push(waiting);
                    false
                }
                None => {
                    drops.insert(drop_id.to_string(), vec![waiting]);
                    true
                }
            }
        };
        if first {
            tokio::spawn(self.clone().drain(drop_id.to_string()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Arc::new(AdmissionError::Protocol(
                "the admission queue stopped".into(),
            )))
        })
    }

    /// Sends the drop's waiting requests to the script, a batch at a time, until none wait.
    /// A drop has a drain running exactly while its entry in `drops` exists.
    async fn drain(self, drop_id: String) {
        loop {
            let batch = {
                let mut drops = self.inner.drops.lock().expect("admission queue lock");
                let Some(waiting) = drops.get_mut(&drop_id) else {
                    return;
                };
                if waiting.is_empty() {
                    drops.remove(&drop_id);
                    return;
                }
                let n = waiting.len().min(self.inner.batch_max);
                waiting.drain(..n).collect::<Vec<_>>()
            };
            // Entries stay (empty) while the batch is out, so new requests do not start a
            // second drain.
            let batch = self.refuse_at_edge(&drop_id, batch);
            if !batch.is_empty() {
                self.send(&drop_id, batch).await;
            }
        }
    }

    /// Answers the requests the edge now refuses; the rest still need the script.
    fn refuse_at_edge(&self, drop_id: &str, batch: Vec<Waiting>) -> Vec<Waiting> {
        let Some(edge) = &self.inner.edge else {
            return batch;
        };
        batch
            .into_iter()
            .filter_map(|waiting| {
                let request = &waiting.request;
                match edge.check_known(drop_id, &request.user_id, request.qty.get()) {
                    Some(refusal) => {
                        let _ = waiting.reply.send(Ok(Decision::Reject(rejection(refusal))));
                        None
                    }
                    None => Some(waiting),
                }
            })
            .collect()
    }

    async fn send(&self, drop_id: &str, batch: Vec<Waiting>) {
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|w| (w.request, w.reply)).unzip();
        metrics::histogram!("linkdrop_admission_batch_size").record(requests.len() as f64);
        match self.inner.admission.admit_batch(drop_id, &requests).await {
            Ok(decided) => {
                for (reply, decision) in replies.into_iter().zip(self.take_in(decided)) {
                    let _ = reply.send(Ok(decision));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Lets the edge hear what a call changed; its decisions.
    fn take_in(&self, decided: Decided) -> Vec<Decision> {
        if let (Some(edge), Some(news)) = (&self.inner.edge, decided.news) {
            edge.hear(news);
        }
        decided.decisions
    }
}

/// The script's rejection that an edge refusal stands for.
fn rejection(refusal: Refusal) -> Rejection {
    match refusal {
        Refusal::NotFound => Rejection::NotFound,
        Refusal::NotOpen { opens_at_ms } => Rejection::NotOpen { opens_at_ms },
        Refusal::Closed => Rejection::Closed,
        Refusal::SoldOut => Rejection::SoldOut,
    }
}
