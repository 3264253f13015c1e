//! The merchant's webhook endpoints API: register (the secret is shown once), list,
//! delete, rotate the secret, enable again, the recent delivery attempts and the
//! deliveries (dead letters among them) of an endpoint, and replay of a message.

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
/// Most deliveries listed by `GET /v1/webhook-endpoints/{id}/deliveries`.
const DELIVERIES_PAGE: i64 = 100;
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

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
        state.sealing.seal(&secret, &id),
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
    disabled_reason: Option<String>,
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
        "SELECT id, url, events, disabled_at_ms, disabled_reason, created_at_ms
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

/// `POST /v1/webhook-endpoints/{id}/rotate-secret`: a new secret, shown once; the previous
/// one keeps signing next to it (two signatures in `webhook-signature`) for a day, so the
/// merchant can deploy the new one without losing a delivery.
pub async fn rotate_secret(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(endpoint_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ensure_owned(&state, &principal, &endpoint_id).await?;
    let secret = generate_secret();
    let until_ms = now_ms() + ROTATION_OVERLAP_MS;
    sqlx::query!(
        "UPDATE webhook_endpoints
         SET previous_secret = secret, previous_secret_until_ms = $3, secret = $2
         WHERE id = $1",
        endpoint_id,
        state.sealing.seal(&secret, &endpoint_id),
        until_ms
    )
    .execute(&state.db)
    .await?;
    Ok(Json(json!({
        "id": endpoint_id,
        "secret": secret.expose(),
        "previous_secret_expires_at_ms": until_ms,
    })))
}

/// `POST /v1/webhook-endpoints/{id}/enable`: an endpoint disabled (by a 410 or after
/// failing for too long) takes deliveries again; those that waited are sent.
pub async fn enable(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(endpoint_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ensure_owned(&state, &principal, &endpoint_id).await?;
    let endpoint = sqlx::query_as!(
        EndpointView,
        "UPDATE webhook_endpoints
         SET disabled_at_ms = NULL, disabled_reason = NULL, failing_since_ms = NULL
         WHERE id = $1
         RETURNING id, url, events, disabled_at_ms, disabled_reason, created_at_ms",
        endpoint_id
    )
    .fetch_one(&state.db)
    .await?;
    wake_dispatchers(&state.db).await?;
    Ok(Json(json!(endpoint)))
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesParams {
    state: Option<String>,
}

#[derive(Debug, Serialize)]
struct DeliveryView {
    message_id: String,
    event_type: String,
    state: String,
    attempts: i32,
    next_attempt_at_ms: i64,
    created_at_ms: i64,
}

/// `GET /v1/webhook-endpoints/{id}/deliveries[?state=pending|delivered|dead]`: the latest
/// messages for the endpoint and where their delivery stands; `state=dead` lists the dead
/// letters (to replay).
pub async fn deliveries(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(endpoint_id): Path<String>,
    ApiQuery(params): ApiQuery<DeliveriesParams>,
) -> Result<Json<Value>, ApiError> {
    ensure_owned(&state, &principal, &endpoint_id).await?;
    if let Some(wanted) = &params.state
        && !["pending", "delivered", "dead"].contains(&wanted.as_str())
    {
        return Err(ApiError::invalid(
            "state",
            "one of pending, delivered, dead",
        ));
    }
    let items = sqlx::query_as!(
        DeliveryView,
        "SELECT d.message_id, m.event_type, d.state, d.attempts, d.next_attempt_at_ms,
                m.created_at_ms
         FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
         WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.state = $2)
         ORDER BY m.created_at_ms DESC, d.message_id DESC LIMIT $3",
        endpoint_id,
        params.state,
        DELIVERIES_PAGE
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// `POST /v1/webhook-messages/{message_id}/replay`: sends the message again, with the same
/// id (receivers deduplicate on it), to every enabled endpoint of its merchant subscribed
/// to its type — whether it was delivered, is dead or is still waiting. 202.
pub async fn replay(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(message_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let owner = sqlx::query_scalar!(
        "SELECT merchant_id FROM webhook_messages WHERE id = $1",
        message_id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("webhook message"))?;
    principal.require_merchant_of(&owner)?;
    let endpoints = sqlx::query!(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
         SELECT m.id, e.id, $2
         FROM webhook_messages m
         JOIN webhook_endpoints e
           ON e.merchant_id = m.merchant_id AND e.disabled_at_ms IS NULL
          AND m.event_type = ANY(e.events)
         WHERE m.id = $1
         ON CONFLICT (message_id, endpoint_id) DO UPDATE
         SET state = 'pending', attempts = 0, next_attempt_at_ms = $2, locked_until_ms = NULL",
        message_id,
        now_ms()
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    wake_dispatchers(&state.db).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message_id": message_id, "endpoints": endpoints })),
    ))
}

async fn wake_dispatchers(db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify('webhook_due', '')")
        .execute(db)
        .await
        .map(|_| ())
}
