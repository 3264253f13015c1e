//! Webhooks as a merchant receives them: a local receiver, and verification with the
//! Standard Webhooks reference library.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::PATIENCE;

/// One webhook delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A local HTTP receiver for webhooks that answers 200 and hands every delivery to the
/// test.
pub struct WebhookReceiver {
    pub url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl WebhookReceiver {
    pub async fn start() -> Self {
        let (tx, deliveries) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    let _ = tx.send(Delivery { headers, body });
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, deliveries }
    }

    /// The next delivery; panics after [`PATIENCE`].
    pub async fn next(&mut self) -> Delivery {
        self.next_within(PATIENCE).await
    }

    /// Waits for the event of `kind` about order `order_id` (skipping others): once it
    /// arrived, the order's record holds the change.
    pub async fn order_event(&mut self, kind: &str, order_id: &str) {
        loop {
            let event: serde_json::Value =
                serde_json::from_str(&self.next().await.body).expect("a JSON event");
            if event["type"] == kind && event["data"]["order_id"] == order_id {
                return;
            }
        }
    }

    /// The next delivery; panics after `patience`.
    pub async fn next_within(&mut self, patience: Duration) -> Delivery {
        tokio::time::timeout(patience, self.deliveries.recv())
            .await
            .expect("a webhook arrives in time")
            .expect("the receiver is running")
    }
}

/// The Python of the test venv that `scripts/setup` installs (standardwebhooks and the
/// schema checker's libraries): `LINKDROP_TEST_PYTHON`, else the default venv.
pub fn test_python() -> String {
    std::env::var("LINKDROP_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/linkdrop/venv/bin/python")
    })
}

/// Verifies a delivery with the Standard Webhooks reference library (Python, installed in
/// the test venv by `scripts/setup`), independently of linkdrop's own signing code.
pub async fn verify_with_reference_library(
    secret: &str,
    delivery: &Delivery,
) -> Result<(), String> {
    let python = test_python();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
given = json.load(sys.stdin)
Webhook(given["secret"]).verify(given["body"], given["headers"])
"#;
    let mut child = tokio::process::Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python} (run ./scripts/setup): {e}"))?;
    let input = json!({"secret": secret, "headers": delivery.headers, "body": delivery.body});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
