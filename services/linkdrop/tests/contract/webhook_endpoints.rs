//! The merchant's webhook endpoints: registered (not by a host, not for a non-HTTP URL),
//! listed, their attempts and deliveries, secret rotation, enabling, replay and deletion.

use reqwest::Method;
use serde_json::json;

use crate::kit::{Contract, Keys, expect, id_of};

/// The merchant's endpoint for `order.created` at the test's receiver; its id.
pub async fn subscribe(t: &mut Contract, keys: &Keys) -> String {
    let (app, samples) = (&t.app, &mut t.samples);
    let (host, merchant_key) = (keys.host.as_str(), keys.merchant.as_str());
    let receiver = &t.receiver;
    let endpoint = app
        .request(
            Method::POST,
            "/v1/webhook-endpoints",
            merchant_key,
            Some(json!({"url": receiver.url, "events": ["order.created"]})),
            &[],
        )
        .await;
    let endpoint = samples.http("createWebhookEndpoint", endpoint);
    expect(&endpoint, 201, None);
    let endpoint_id = id_of(&endpoint);
    let bad_url = app
        .request(
            Method::POST,
            "/v1/webhook-endpoints",
            merchant_key,
            Some(json!({"url": "ftp://example.com/hook", "events": ["order.created"]})),
            &[],
        )
        .await;
    expect(
        &samples.http("createWebhookEndpoint", bad_url),
        422,
        Some("invalid"),
    );
    let host_endpoint = app
        .request(
            Method::POST,
            "/v1/webhook-endpoints",
            host,
            Some(json!({"url": receiver.url, "events": ["order.created"]})),
            &[],
        )
        .await;
    expect(
        &samples.http("createWebhookEndpoint", host_endpoint),
        403,
        Some("forbidden"),
    );
    let endpoints = app
        .request(
            Method::GET,
            "/v1/webhook-endpoints",
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("listWebhookEndpoints", endpoints), 200, None);

    endpoint_id
}

/// The attempts of the endpoint once webhooks went out: its merchant's, refused to another
/// merchant, and of no such endpoint.
pub async fn attempts(t: &mut Contract, keys: &Keys, endpoint_id: &str) {
    let (app, samples) = (&t.app, &mut t.samples);
    let merchant_key = keys.merchant.as_str();
    let attempts_path = format!("/v1/webhook-endpoints/{endpoint_id}/attempts");
    let attempts = app
        .request(Method::GET, &attempts_path, merchant_key, None, &[])
        .await;
    expect(&samples.http("listWebhookAttempts", attempts), 200, None);
    let foreign = app
        .request(Method::GET, &attempts_path, &keys.other_merchant, None, &[])
        .await;
    expect(
        &samples.http("listWebhookAttempts", foreign),
        403,
        Some("forbidden"),
    );
    let no_endpoint = app
        .request(
            Method::GET,
            "/v1/webhook-endpoints/ep_unknown/attempts",
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("listWebhookAttempts", no_endpoint),
        404,
        Some("not_found"),
    );
}

/// The last webhook routes: rotate the secret, enable, list dead deliveries, replay, and
/// delete (refused to another merchant first).
pub async fn manage(t: &mut Contract, keys: &Keys, endpoint_id: &str) {
    let (app, samples) = (&t.app, &mut t.samples);
    let merchant_key = keys.merchant.as_str();
    let endpoint_path = format!("/v1/webhook-endpoints/{endpoint_id}");
    let rotated = app
        .request(
            Method::POST,
            &format!("{endpoint_path}/rotate-secret"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("rotateWebhookSecret", rotated), 200, None);
    let enabled = app
        .request(
            Method::POST,
            &format!("{endpoint_path}/enable"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("enableWebhookEndpoint", enabled), 200, None);
    let dead = app
        .request(
            Method::GET,
            &format!("{endpoint_path}/deliveries?state=dead"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("listWebhookDeliveries", dead), 200, None);
    let bad_state = app
        .request(
            Method::GET,
            &format!("{endpoint_path}/deliveries?state=lost"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("listWebhookDeliveries", bad_state),
        422,
        Some("invalid"),
    );
    let unknown_replay = app
        .request(
            Method::POST,
            "/v1/webhook-messages/msg_unknown/replay",
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("replayWebhookMessage", unknown_replay),
        404,
        Some("not_found"),
    );
    let foreign_delete = app
        .request(
            Method::DELETE,
            &endpoint_path,
            &keys.other_merchant,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("deleteWebhookEndpoint", foreign_delete),
        403,
        Some("forbidden"),
    );
    let deleted = app
        .request(Method::DELETE, &endpoint_path, merchant_key, None, &[])
        .await;
    expect(&samples.http("deleteWebhookEndpoint", deleted), 204, None);
}
