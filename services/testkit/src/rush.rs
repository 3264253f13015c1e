//! A rush of shoppers through a crash: one order after another, as fast as they are
//! answered, while the test kills something; then what a careful client does about the
//! requests whose answer was lost.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::TestApp;

/// What a rush through a crash came to: the orders answered 201, and the shoppers whose
/// request got no definite answer (no response, or a 5xx while a component was away): such
/// a request may or may not have taken effect.
pub struct Rush {
    pub acknowledged: Vec<String>,
    pub unknown: Vec<usize>,
}

/// The token of rush shopper `i`.
fn shopper(app: &TestApp, i: usize) -> String {
    app.token(&format!("rusher-{i}"))
}

/// Orders one unit for each of `count` shoppers, one after another. The notify fires once
/// `crash_after` orders were acknowledged: the moment to crash something.
pub fn start(
    app: Arc<TestApp>,
    drop_id: &str,
    count: usize,
    crash_after: usize,
) -> (tokio::task::JoinHandle<Rush>, Arc<Notify>) {
    let midway = Arc::new(Notify::new());
    let signal = midway.clone();
    let drop_id = drop_id.to_string();
    let task = tokio::spawn(async move {
        let mut rush = Rush {
            acknowledged: Vec::new(),
            unknown: Vec::new(),
        };
        for i in 0..count {
            let answer = app.try_order(&drop_id, &shopper(&app, i), "k").await;
            match answer.map(|a| (a.status, a.body)) {
                Some((201, body)) => {
                    rush.acknowledged
                        .push(body["order_id"].as_str().unwrap().to_string());
                    if rush.acknowledged.len() == crash_after {
                        signal.notify_one();
                    }
                }
                Some((400..=499, _)) => {}
                _ => rush.unknown.push(i),
            }
        }
        rush
    });
    (task, midway)
}

/// Sends each request of unknown outcome again with the same Idempotency-Key until the
/// answer is definite (the first answer if the order had been taken, a new decision if
/// not). The ids answered 201.
pub async fn resolve_unknown(app: &TestApp, drop_id: &str, unknown: &[usize]) -> Vec<String> {
    const ATTEMPTS: usize = 50;
    let mut acknowledged = Vec::new();
    for i in unknown {
        let token = shopper(app, *i);
        let definite = async {
            for _ in 0..ATTEMPTS {
                if let Some(answer) = app.try_order(drop_id, &token, "k").await
                    && answer.status < 500
                {
                    return answer;
                }
            }
            panic!("rusher-{i} got no definite answer in {ATTEMPTS} attempts");
        }
        .await;
        if definite.status == 201 {
            acknowledged.push(definite.body["order_id"].as_str().unwrap().to_string());
        }
    }
    acknowledged
}
