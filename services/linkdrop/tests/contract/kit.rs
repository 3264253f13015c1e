//! What the contract's steps share: the application under test with its samples and
//! webhook receiver, the API keys, viewers that keep their frames, raw requests, and the
//! assertion on status and problem code.

use std::collections::BTreeSet;

use linkdrop_testkit::{Answer, TestApp, Viewer, WebhookReceiver, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

use crate::samples::{Samples, check};

/// Orders one shopper may send per second in this test: low enough to reach 429 in a few
/// requests, high enough for every other shopper here (none sends more than four).
const PER_USER_PER_S: &str = "5";

/// The application under test, where its answers are kept, and the merchant's webhook
/// receiver.
pub struct Contract {
    pub app: TestApp,
    pub samples: Samples,
    pub receiver: WebhookReceiver,
    /// The orders whose `order.created` webhook arrived.
    announced: BTreeSet<String>,
}

impl Contract {
    pub async fn start() -> Self {
        let app = spawn_app_with(&[("LINKDROP_ORDERS_PER_USER_PER_S", PER_USER_PER_S)]).await;
        let samples = Samples::new("contract");
        let receiver = WebhookReceiver::start().await;
        Self {
            app,
            samples,
            receiver,
            announced: BTreeSet::new(),
        }
    }

    /// Keeps webhook deliveries until each of `orders` was announced: each `order.created`
    /// delivery means its order is in the records.
    pub async fn until_announced(&mut self, orders: &[&str]) {
        while !orders.iter().all(|order| self.announced.contains(*order)) {
            let delivery = self.receiver.next().await;
            self.samples.webhook(&delivery.body);
            let event: Value = serde_json::from_str(&delivery.body).unwrap();
            self.announced
                .insert(event["data"]["order_id"].as_str().unwrap().to_string());
        }
    }

    /// Keeps the frames of `watchers`, and has `schemas/check.py` check every sample.
    pub async fn finish(mut self, watchers: &[&Watcher]) {
        for watcher in watchers {
            watcher.keep(&mut self.samples);
        }
        let samples = self.samples;
        let (passed, printed) = check(&samples.dir).await;
        assert!(
            passed,
            "schemas/check.py rejected samples in {}:\n{printed}",
            samples.dir.display()
        );
        samples.finish(&printed);
    }
}

/// The API keys of the sale's merchant and of another one.
pub struct Keys {
    pub host: String,
    pub merchant: String,
    pub other_host: String,
    pub other_merchant: String,
}

/// A viewer whose frames, in both directions, are all kept.
pub struct Watcher {
    pub label: String,
    viewer: Viewer,
    received: Vec<Value>,
    sent: Vec<Value>,
}

impl Watcher {
    /// Joins `room_id` as `user` and reads `hello`.
    pub async fn join(app: &TestApp, room_id: &str, user: &str) -> Self {
        let viewer = app.viewer(room_id, &app.token(user)).await;
        let mut watcher = Self {
            label: user.to_string(),
            viewer,
            received: Vec::new(),
            sent: Vec::new(),
        };
        let hello = watcher.next_json().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        watcher
    }

    async fn next_json(&mut self) -> Value {
        let frame = self.viewer.next_json().await;
        self.received.push(frame.clone());
        frame
    }

    /// The next frame of type `kind`; the frames before it are kept too.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads frames until one received since joining satisfies `wanted`.
    pub async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(frame) = self.received.iter().find(|f| wanted(f)) {
                return frame.clone();
            }
            self.next_json().await;
        }
    }

    /// Sends a clock ping and reads its pong.
    pub async fn ping(&mut self, t: i64) -> Value {
        let ping = json!({"type": "ping", "t": t});
        self.viewer.send_text(&ping.to_string()).await;
        self.sent.push(ping);
        self.next_of_type("pong").await
    }

    fn keep(&self, samples: &mut Samples) {
        samples.frames("server", &self.label, &self.received);
        if !self.sent.is_empty() {
            samples.frames("client", &self.label, &self.sent);
        }
    }
}

/// A request with full control over credentials, body bytes and headers.
pub async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = app.http.request(method, format!("{}{path}", app.base_url));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("linkdrop answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Asserts the status and, for a problem, its code.
#[track_caller]
pub fn expect(answer: &Answer, status: u16, code: Option<&str>) {
    assert_eq!(answer.status, status, "{answer:?}");
    if let Some(code) = code {
        assert_eq!(answer.body["code"], code, "{answer:?}");
    }
}

pub fn id_of(answer: &Answer) -> String {
    answer.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id in {answer:?}"))
        .to_string()
}
