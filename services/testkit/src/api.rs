//! What tests set up through the public API: rooms, drops, their launch, webhook
//! endpoints, orders and payments.

use serde_json::{Value, json};

use crate::{Answer, TestApp};

impl TestApp {
    /// A room of `merchant_id`; its id.
    pub async fn create_room(&self, merchant_id: &str) -> String {
        let answer = self
            .admin_post(
                "/v1/rooms",
                json!({"title": "Evening live", "merchant_id": merchant_id}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// A draft first-come-first-served drop with `stock` units in `room_id`; its id.
    pub async fn create_drop(&self, room_id: &str, stock: u32, max_per_user: u32) -> String {
        self.create_drop_with(room_id, stock, max_per_user, json!({"policy": "fcfs"}))
            .await
    }

    /// A draft first-come-first-served drop whose orders must be paid within
    /// `pay_within_s`; its id.
    pub async fn create_drop_paid_within(
        &self,
        room_id: &str,
        stock: u32,
        pay_within_s: u32,
    ) -> String {
        let answer = self
            .admin_post(
                &format!("/v1/rooms/{room_id}/drops"),
                json!({
                    "sku": "SKU-MUG", "title": "Mug",
                    "image_url": "https://img.example/mug.png",
                    "price_cents": 1900, "currency": "CNY",
                    "stock": stock, "max_per_user": 1, "pay_within_s": pay_within_s,
                }),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// `POST /v1/orders/{order_id}/pay` as the shopper of `token`.
    pub async fn pay(&self, order_id: &str, token: &str, payment_ref: &str) -> Answer {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/orders/{order_id}/pay"),
            token,
            Some(json!({"payment_ref": payment_ref})),
            &[],
        )
        .await
    }

    /// A merchant webhook endpoint of `merchant_id` for `events` at `url`.
    pub async fn subscribe(&self, merchant_id: &str, url: &str, events: &[&str]) -> String {
        let answer = self
            .admin_post(
                "/v1/webhook-endpoints",
                json!({"url": url, "events": events, "merchant_id": merchant_id}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["secret"].as_str().unwrap().to_string()
    }

    /// A draft drop with the given `fairness`; its id.
    pub async fn create_drop_with(
        &self,
        room_id: &str,
        stock: u32,
        max_per_user: u32,
        fairness: Value,
    ) -> String {
        let answer = self
            .admin_post(
                &format!("/v1/rooms/{room_id}/drops"),
                json!({
                    "sku": "SKU-LAMP", "title": "Desk lamp",
                    "image_url": "https://img.example/lamp.png",
                    "price_cents": 9900, "currency": "CNY",
                    "stock": stock, "max_per_user": max_per_user,
                    "fairness": fairness,
                }),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// Launches `drop_id`; its `opens_at_ms`.
    pub async fn launch(&self, drop_id: &str, countdown_ms: i64) -> i64 {
        let answer = self
            .admin_post(
                &format!("/v1/drops/{drop_id}/launch"),
                json!({"countdown_ms": countdown_ms}),
            )
            .await;
        assert_eq!(answer.status, 202, "{answer:?}");
        answer.body["opens_at_ms"].as_i64().unwrap()
    }

    /// Orders one unit of `drop_id` as `user_id`, which must be reserved (201); the order
    /// id.
    pub async fn reserve(&self, drop_id: &str, user_id: &str, key: &str) -> String {
        let answer = self.order(drop_id, &self.token(user_id), key, 1).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["order_id"].as_str().unwrap().to_string()
    }

    /// `POST /v1/drops/{drop_id}/orders` as the shopper of `token`.
    pub async fn order(&self, drop_id: &str, token: &str, key: &str, qty: i64) -> Answer {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/drops/{drop_id}/orders"),
            token,
            Some(json!({"qty": qty})),
            &[("Idempotency-Key", key)],
        )
        .await
    }
}
