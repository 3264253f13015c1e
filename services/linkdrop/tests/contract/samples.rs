//! The samples of one run, as `schemas/check.py` reads them, and the checker itself.

use std::path::{Path, PathBuf};

use linkdrop_domain::events::OrderEvent;
use linkdrop_testkit::{Answer, test_python};
use serde_json::Value;

/// A directory of samples for `schemas/check.py`.
pub struct Samples {
    pub dir: PathBuf,
    written: usize,
}

impl Samples {
    pub fn new(purpose: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "linkdrop-{purpose}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the samples directory");
        Self { dir, written: 0 }
    }

    /// Writes `<name>.<n>.<suffix>`; `n` keeps names unique.
    fn write(&mut self, name: &str, suffix: &str, text: &str) {
        self.written += 1;
        let path = self
            .dir
            .join(format!("{name}.{:03}.{suffix}", self.written));
        std::fs::write(path, text).expect("write a sample");
    }

    /// Keeps the body of `answer` to `operation` (an operationId of openapi.yaml, or
    /// `problem` for an error of no operation) and checks what a body cannot show: its
    /// media type, and Retry-After where API.md promises it.
    pub fn http(&mut self, operation: &str, answer: Answer) -> Answer {
        let content_type = answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if answer.status >= 400 {
            assert_eq!(
                content_type, "application/problem+json",
                "{operation}: {answer:?}"
            );
        } else if !answer.body.is_null() {
            assert!(
                content_type.starts_with("application/json"),
                "{operation}: {answer:?}"
            );
        }
        if matches!(answer.status, 429 | 503) {
            assert!(
                answer.headers.contains_key("retry-after"),
                "{operation}: {answer:?}"
            );
        }
        if !answer.body.is_null() {
            let name = format!("http.{operation}.{}", answer.status);
            self.write(&name, "json", &answer.body.to_string());
        }
        answer
    }

    /// Keeps WebSocket frames, one a line; `direction` is `server` or `client`.
    pub fn frames(&mut self, direction: &str, label: &str, frames: &[Value]) {
        let text: String = frames.iter().map(|f| format!("{f}\n")).collect();
        self.write(&format!("ws.{direction}.{label}"), "jsonl", &text);
    }

    /// Keeps a webhook body exactly as delivered.
    pub fn webhook(&mut self, body: &str) {
        let event: Value = serde_json::from_str(body).expect("a JSON webhook body");
        let kind = event["type"].as_str().expect("a webhook type").to_string();
        self.write(&format!("webhook.{kind}"), "json", body);
    }

    /// Removes the samples once they passed, unless `LINKDROP_KEEP_SAMPLES` is set (then
    /// prints where they are and what the checker said).
    pub fn finish(self, printed: &str) {
        if std::env::var_os("LINKDROP_KEEP_SAMPLES").is_some() {
            println!("samples kept in {}:\n{printed}", self.dir.display());
        } else {
            std::fs::remove_dir_all(&self.dir).ok();
        }
    }

    /// Keeps an order event as the relay serializes it for Kafka.
    pub fn kafka(&mut self, event: &OrderEvent) {
        let text = serde_json::to_string(event).expect("order events serialize");
        self.write("kafka.order-event", "json", &text);
    }
}

/// Runs `schemas/check.py --strict` on `dir` with the test venv's Python: whether it
/// passed, and what it printed.
pub async fn check(dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/check.py");
    let python = test_python();
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg("--strict")
        .arg(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python} (run ./scripts/setup): {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}
