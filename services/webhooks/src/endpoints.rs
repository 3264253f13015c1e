//! The merchant's webhook endpoints API: register (the secret is shown once), list,
//! delete, and the recent delivery attempts of an endpoint.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use linkdrop_domain::ApiError;
use linkdrop_domain::auth::Principal;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::merchant_event;
use linkdrop_domain::ids::{new_id, prefix};
use linkdrop_domain::json::ApiJson;
use linkdrop_domain::json::ApiQuery;
use linkdrop_domain::webhook_signature::generate_secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::WebhooksState;

/// Most attempts listed by `GET /v1/webhook-endpoints/{id}/attempts`.
const ATTEMPTS_PAGE: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct NewEndpoint {
    url: String,
    events: Vec<String>,
    /// Required with the admin key; a merchant key registers for itself.
    merchant_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MerchantParam {
    merchant_id: Option<String>,
}

/// The merchant whose endpoints `principal` manages.
fn merchant_of(principal: &Principal, asked: Option<String>) -> Result<String, ApiError> {
    match principal {
        Principal::Merchant { merchant_id } => Ok(merchant_id.clone()),
        Principal::Admin => {
            asked.ok_or_else(|| ApiError::invalid("merchant_id", "required with the admin key"))
        }
        Principal::Host { .. } => Err(ApiError::Forbidden),
    }
}

pub async fn create(
    State(state): State<WebhooksState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let merchant_id = merchant_of(&principal, body.merchant_id)?;
    if body.events.is_empty()
        || body
            .events
            .iter()
            .any(|e| !merchant_event::ALL.contains(&e.as_str()))
    {
        return Err(ApiError::invalid(
            "events",
            format!("a non-empty list of {}", merchant_event::ALL.join(", ")),
        ));
    }
    let url = state
        .guard
        .check_url(&body.url)
        .await
        .map_err(|why| ApiError::invalid("url", why))?;
    let id = new_id(prefix::WEBHOOK_ENDPOINT);
    let secret = generate_secret();
    let created_at_ms = now_ms();
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        merchant_id,
        url.as_str(),
        &body.events,
        secret.expose(),
        created_at_ms
    )
    .execute(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "merchant_id": merchant_id,
            "url": url.as_str(),
            "events": body.events,
            "secret": secret.expose(),
            "created_at_ms": created_at_ms,
        })),
    ))
}

/// An endpoint as listed (never with its secret).
#[derive(Debug, Serialize)]
struct EndpointView {
    id: String,
    url: String,
    events: Vec<String>,
    disabled_at_ms: Option<i64>,
    created_at_ms: i64,
}

pub async fn list(
    State(state): State<WebhooksState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<MerchantParam>,
) -> Result<Json<Value>, ApiError> {
    let merchant_id = merchant_of(&principal, params.merchant_id)?;
    let items = sqlx::query_as!(
        EndpointView,
        "SELECT id, url, events, disabled_at_ms, created_at_ms
         FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY id",
        merchant_id
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// 404 unless `endpoint_id` exists, 403 unless it belongs to `principal`'s merchant.
async fn ensure_owned(
    state: &WebhooksState,
    principal: &Principal,
    endpoint_id: &str,
) -> Result<(), ApiError> {
    let owner = sqlx::query_scalar!(
        "SELECT merchant_id FROM webhook_endpoints WHERE id = $1",
        endpoint_id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("webhook endpoint"))?;
    principal.require_merchant_of(&owner)
}

pub async fn delete(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ensure_owned(&state, &principal, &endpoint_id).await?;
    sqlx::query!("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct AttemptView {
    message_id: String,
    attempted_at_ms: i64,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
    response_body: Option<String>,
}

pub async fn attempts(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(endpoint_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ensure_owned(&state, &principal, &endpoint_id).await?;
    let items = sqlx::query_as!(
        AttemptView,
        "SELECT message_id, attempted_at_ms, status_code, error, duration_ms, response_body
         FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
        endpoint_id,
        ATTEMPTS_PAGE
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(json!({ "items": items })))
}
