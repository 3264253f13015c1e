//! The operations probes, and API keys: created by the admin, refused to a host and for a
//! role that does not exist.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;

use crate::kit::{Contract, Keys, expect, raw};

/// The merchant of the sale.
const MERCHANT: &str = "m_contract";

/// `/healthz`, `/readyz` and `POST /v1/api-keys`: a host and a merchant key of the sale's
/// merchant, and of another merchant.
pub async fn probes_and_keys(t: &mut Contract) -> Keys {
    let (app, samples) = (&t.app, &mut t.samples);
    let merchant = MERCHANT;
    let healthz = raw(app, Method::GET, "/healthz", None, None, &[]).await;
    expect(&samples.http("healthz", healthz), 200, None);
    let readyz = raw(app, Method::GET, "/readyz", None, None, &[]).await;
    expect(&samples.http("readyz", readyz), 200, None);
    let mut keys = BTreeMap::new();
    for (name, role, owner) in [
        ("host", "host", merchant),
        ("merchant", "merchant", merchant),
        ("other_host", "host", "m_other"),
        ("other_merchant", "merchant", "m_other"),
    ] {
        let created = app
            .admin_post("/v1/api-keys", json!({"role": role, "merchant_id": owner}))
            .await;
        let created = samples.http("createApiKey", created);
        expect(&created, 201, None);
        keys.insert(name, created.body["key"].as_str().unwrap().to_string());
    }
    let host = keys["host"].as_str();
    let bad_role = app
        .admin_post(
            "/v1/api-keys",
            json!({"role": "admin", "merchant_id": merchant}),
        )
        .await;
    expect(
        &samples.http("createApiKey", bad_role),
        422,
        Some("invalid"),
    );
    let by_host = app
        .request(
            Method::POST,
            "/v1/api-keys",
            host,
            Some(json!({"role": "host", "merchant_id": merchant})),
            &[],
        )
        .await;
    expect(
        &samples.http("createApiKey", by_host),
        403,
        Some("forbidden"),
    );
    Keys {
        host: keys["host"].clone(),
        merchant: keys["merchant"].clone(),
        other_host: keys["other_host"].clone(),
        other_merchant: keys["other_merchant"].clone(),
    }
}
