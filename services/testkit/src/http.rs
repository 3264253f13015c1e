//! HTTP to the test application: any request with a credential, the answer as status,
//! headers and JSON body, and the admin's shorthands.

use serde_json::{Value, json};

use crate::{ADMIN_KEY, TestApp};

/// An HTTP answer: status and JSON body (`Value::Null` when the body is empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(credential);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("linkdrop answers");
        answer_of(response).await.expect("a body")
    }

    /// An order request whose answer may be lost (the process dies under it): `None` then.
    pub async fn try_order(&self, drop_id: &str, token: &str, key: &str) -> Option<Answer> {
        let response = self
            .http
            .post(format!("{}/v1/drops/{drop_id}/orders", self.base_url))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({"qty": 1}))
            .send()
            .await
            .ok()?;
        answer_of(response).await.ok()
    }
}

async fn answer_of(response: reqwest::Response) -> reqwest::Result<Answer> {
    {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

impl TestApp {
    /// POST as the admin.
    pub async fn admin_post(&self, path: &str, body: Value) -> Answer {
        self.request(reqwest::Method::POST, path, ADMIN_KEY, Some(body), &[])
            .await
    }

    /// GET as the admin.
    pub async fn admin_get(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path, ADMIN_KEY, None, &[])
            .await
    }
}
