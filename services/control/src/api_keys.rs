//! `POST /v1/api-keys` (admin): keys for hosts and merchants. The key is shown once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::ids::{self, new_id, prefix};
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::{Principal, generate_api_key};
use linkdrop_infra::json::ApiJson;
use linkdrop_records::api_keys;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ControlState;

#[derive(Debug, Deserialize)]
pub struct NewApiKey {
    role: String,
    merchant_id: String,
}

pub async fn create(
    State(state): State<ControlState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require_admin()?;
    if !matches!(body.role.as_str(), "host" | "merchant") {
        return Err(ApiError::invalid("role", "host or merchant"));
    }
    if !ids::is_valid_merchant_id(&body.merchant_id) {
        return Err(ApiError::invalid(
            "merchant_id",
            "1 to 64 visible ASCII characters, no spaces",
        ));
    }
    let id = new_id(prefix::API_KEY);
    let key = generate_api_key();
    let new_key = api_keys::NewKey {
        id: &id,
        key_hash: &key.key_hash,
        role: &body.role,
        merchant_id: &body.merchant_id,
        created_at_ms: now_ms(),
    };
    api_keys::insert(&state.db, &new_key).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "key": key.key.expose(),
            "role": body.role,
            "merchant_id": body.merchant_id,
        })),
    ))
}
