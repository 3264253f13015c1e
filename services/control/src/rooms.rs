//! Rooms: create, read (with the viewer count across gateway nodes), list.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::ids::{self, new_id, prefix};
use linkdrop_domain::model::Room;
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::Principal;
use linkdrop_infra::json::ApiJson;
use linkdrop_infra::json::ApiQuery;
use linkdrop_infra::viewers;
use linkdrop_records::rooms;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ControlState;

#[derive(Debug, Deserialize)]
pub struct NewRoom {
    title: String,
    /// Required for the admin key; a host key may omit it (its own merchant).
    merchant_id: Option<String>,
}

pub async fn create(
    State(state): State<ControlState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let merchant_id = body
        .merchant_id
        .or_else(|| principal.merchant_id().map(str::to_string))
        .ok_or_else(|| ApiError::invalid("merchant_id", "required with the admin key"))?;
    principal.require_host_of(&merchant_id)?;
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::invalid("title", "1 to 200 characters"));
    }
    if !ids::is_valid_merchant_id(&merchant_id) {
        return Err(ApiError::invalid(
            "merchant_id",
            "1 to 64 visible ASCII characters, no spaces",
        ));
    }
    let room = Room {
        id: new_id(prefix::ROOM),
        title: title.to_string(),
        merchant_id,
        created_at_ms: now_ms(),
    };
    rooms::insert(&state.db, &room).await?;
    // Gateways refuse unknown rooms from Redis alone.
    redis::cmd("HSET")
        .arg(state.keys.room_meta(&room.id))
        .arg("merchant_id")
        .arg(&room.merchant_id)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// The room, if it exists and `principal` may run it (404 otherwise, 403 for another
/// merchant's room).
pub async fn load_room(
    state: &ControlState,
    principal: &Principal,
    room_id: &str,
) -> Result<Room, ApiError> {
    let room = rooms::find(&state.db, room_id)
        .await?
        .ok_or(ApiError::NotFound("room"))?;
    principal.require_host_of(&room.merchant_id)?;
    Ok(room)
}

pub async fn get(
    State(state): State<ControlState>,
    principal: Principal,
    Path(room_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = load_room(&state, &principal, &room_id).await?;
    let viewers = viewers::total(&state.redis, &state.keys, &room.id).await?;
    let mut body = json!(room);
    body["viewers"] = json!(viewers);
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    merchant_id: Option<String>,
}

/// The rooms of the key's merchant (the admin: of `merchant_id`, or all), newest first.
pub async fn list(
    State(state): State<ControlState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let merchant_id = match &principal {
        Principal::Admin => params.merchant_id,
        Principal::Host { merchant_id } => Some(merchant_id.clone()),
        Principal::Merchant { .. } => return Err(ApiError::Forbidden),
    };
    let rooms = rooms::list(&state.db, merchant_id.as_deref()).await?;
    Ok(Json(json!({ "items": rooms })))
}
