//! A local OTLP/HTTP receiver (JSON bodies, `POST /v1/traces`) that keeps every span
//! linkdrop sends. A process sends its traces to one receiver (tracing is set up once per
//! process), so a test binary shares one: [`shared`] serves it from a thread of its own,
//! outliving each test's runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::watch;

use crate::PATIENCE;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for the first span of a trace.
    pub parent_span_id: String,
    pub name: String,
    /// Attribute values as text (numbers too).
    pub attributes: BTreeMap<String, String>,
}

/// The receiver: its base URL (what `LINKDROP_OTLP_ENDPOINT` takes) and the spans so far.
pub struct OtlpReceiver {
    pub url: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    received: watch::Receiver<usize>,
}

/// The receiver of this test process, started on first use.
pub fn shared() -> &'static OtlpReceiver {
    static RECEIVER: OnceLock<OtlpReceiver> = OnceLock::new();
    RECEIVER.get_or_init(start)
}

fn start() -> OtlpReceiver {
    let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
    let (count, received) = watch::channel(0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let kept = spans.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: String| {
                    let (kept, count) = (kept.clone(), count.clone());
                    async move {
                        let Ok(request) = serde_json::from_str::<Value>(&body) else {
                            return StatusCode::BAD_REQUEST;
                        };
                        let mut spans = kept.lock().unwrap();
                        spans.extend(spans_of(&request));
                        count.send_replace(spans.len());
                        StatusCode::OK
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    OtlpReceiver {
        url,
        spans,
        received,
    }
}

impl OtlpReceiver {
    /// The spans of trace `trace_id` once one of each name in `names` arrived (in any
    /// order, as batches leave each process on their own); panics after [`PATIENCE`].
    pub async fn trace_with(&self, trace_id: &str, names: &[&str]) -> Vec<ReceivedSpan> {
        let mut received = self.received.clone();
        let complete = |spans: &[ReceivedSpan]| {
            names
                .iter()
                .all(|name| spans.iter().any(|s| s.name == *name))
        };
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let spans = self.trace(trace_id);
                if complete(&spans) {
                    return spans;
                }
                received.changed().await.expect("the receiver runs");
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "trace {trace_id} lacks some of {names:?}; it has {:#?}",
                self.trace(trace_id)
            )
        })
    }

    /// The spans of trace `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

/// The spans of an OTLP `ExportTraceServiceRequest` in its JSON form.
fn spans_of(request: &Value) -> Vec<ReceivedSpan> {
    let list = |value: &Value, key: &str| value[key].as_array().cloned().unwrap_or_default();
    let text = |value: &Value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    list(request, "resourceSpans")
        .iter()
        .flat_map(|resource| list(resource, "scopeSpans"))
        .flat_map(|scope| list(&scope, "spans"))
        .map(|span| ReceivedSpan {
            trace_id: text(&span["traceId"]),
            span_id: text(&span["spanId"]),
            parent_span_id: span["parentSpanId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            name: text(&span["name"]),
            attributes: list(&span, "attributes")
                .iter()
                .map(|kv| {
                    let value = kv["value"]
                        .as_object()
                        .and_then(|v| v.values().next())
                        .map(text)
                        .unwrap_or_default();
                    (text(&kv["key"]), value)
                })
                .collect(),
        })
        .collect()
}
