//! The merchant's webhook endpoints API: register (the secret is shown once), list,
//! delete, rotate the secret, enable again, the recent delivery attempts and the
//! deliveries (dead letters among them) of an endpoint, and replay of a message.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::merchant_event;
use linkdrop_domain::ids;
use linkdrop_domain::ids::{new_id, prefix};
use linkdrop_domain::model::DeliveryState;
use linkdrop_domain::webhook_signature::generate_secret;
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::Principal;
use linkdrop_infra::json::ApiJson;
use linkdrop_infra::json::ApiQuery;
use linkdrop_records::webhooks::{deliveries, endpoints, outbox};
use serde::Deserialize;
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
        Principal::Admin => match asked {
            Some(id) if ids::is_valid_merchant_id(&id) => Ok(id),
            Some(_) => Err(ApiError::invalid(
                "merchant_id",
                "1 to 64 visible ASCII characters, no spaces",
            )),
            None => Err(ApiError::invalid(
                "merchant_id",
                "required with the admin key",
            )),
        },
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
    endpoints::insert(
        &state.db,
        &endpoints::NewEndpoint {
            id: &id,
            merchant_id: &merchant_id,
            url: url.as_str(),
            events: &body.events,
            sealed_secret: &state.sealing.seal(&secret, &id),
            created_at_ms,
        },
    )
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

pub async fn list(
    State(state): State<WebhooksState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<MerchantParam>,
) -> Result<Json<Value>, ApiError> {
    let merchant_id = merchant_of(&principal, params.merchant_id)?;
    let items = endpoints::list(&state.db, &merchant_id).await?;
    Ok(Json(json!({ "items": items })))
}

/// 404 unless `endpoint_id` exists, 403 unless it belongs to `principal`'s merchant.
async fn ensure_owned(
    state: &WebhooksState,
    principal: &Principal,
    endpoint_id: &str,
) -> Result<(), ApiError> {
    let owner = endpoints::owner(&state.db, endpoint_id)
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
    endpoints::delete(&state.db, &endpoint_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn attempts(
    State(state): State<WebhooksState>,
    principal: Principal,
    Path(endpoint_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ensure_owned(&state, &principal, &endpoint_id).await?;
    let items = deliveries::list_attempts(&state.db, &endpoint_id, ATTEMPTS_PAGE).await?;
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
    endpoints::rotate_secret(
        &state.db,
        &endpoint_id,
        &state.sealing.seal(&secret, &endpoint_id),
        until_ms,
    )
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
    let endpoint = endpoints::enable(&state.db, &endpoint_id).await?;
    outbox::wake_dispatchers(&state.db).await?;
    Ok(Json(json!(endpoint)))
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesParams {
    state: Option<String>,
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
    let wanted = params
        .state
        .as_deref()
        .map(DeliveryState::parse)
        .transpose()
        .map_err(|_| ApiError::invalid("state", "one of pending, delivered, dead"))?;
    let items = deliveries::list(&state.db, &endpoint_id, wanted, DELIVERIES_PAGE).await?;
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
    let owner = deliveries::message_owner(&state.db, &message_id)
        .await?
        .ok_or(ApiError::NotFound("webhook message"))?;
    principal.require_merchant_of(&owner)?;
    let redelivered = deliveries::redeliver(&state.db, &message_id, now_ms()).await?;
    outbox::wake_dispatchers(&state.db).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message_id": message_id, "endpoints": redelivered })),
    ))
}
