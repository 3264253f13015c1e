//! Drops: create (draft), list, read with live figures, launch, close.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_meta::DropMetaField;
use linkdrop_domain::events::{DropCard, RoomEvent};
use linkdrop_domain::ids::{self, new_id, prefix};
use linkdrop_domain::model::{DropSpec, Fairness, MAX_COUNTDOWN_MS, NewDrop};
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::Principal;
use linkdrop_infra::drop_meta::DropMeta;
use linkdrop_infra::failpoint;
use linkdrop_infra::json::ApiJson;
use linkdrop_infra::trace::{RequestTrace, SpanKind};
use linkdrop_records::drops::{self, DropRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ControlState;
use crate::live::{self, Launch, Seed};
use crate::rooms::load_room;
use crate::view;
use linkdrop_domain::lottery;

pub async fn create(
    State(state): State<ControlState>,
    principal: Principal,
    Path(room_id): Path<String>,
    ApiJson(body): ApiJson<NewDrop>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let room = load_room(&state, &principal, &room_id).await?;
    let spec = DropSpec::parse(body)?;
    let row = DropRecord::new(new_id(prefix::DROP), &room, &spec, now_ms());
    drops::insert(&state.db, &row).await?;
    live::write_initial_state(&state, &row).await?;
    let view = view::drop_view(&state, &row).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The drop, if it exists and `principal` may run it.
async fn load_drop(
    state: &ControlState,
    principal: &Principal,
    drop_id: &str,
) -> Result<DropRecord, ApiError> {
    if !ids::is_well_formed(drop_id) {
        return Err(ApiError::NotFound("drop"));
    }
    let row = drops::find(&state.db, drop_id)
        .await?
        .ok_or(ApiError::NotFound("drop"))?;
    principal.require_host_of(&row.merchant_id)?;
    Ok(row)
}

pub async fn get(
    State(state): State<ControlState>,
    principal: Principal,
    Path(drop_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = load_drop(&state, &principal, &drop_id).await?;
    Ok(Json(view::drop_view(&state, &row).await?))
}

pub async fn list(
    State(state): State<ControlState>,
    principal: Principal,
    Path(room_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = load_room(&state, &principal, &room_id).await?;
    let rows = drops::list_room(&state.db, &room.id).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(view::drop_view(&state, row).await?);
    }
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
pub struct LaunchRequest {
    countdown_ms: Option<i64>,
}

pub async fn launch(
    State(state): State<ControlState>,
    principal: Principal,
    RequestTrace(traced): RequestTrace,
    Path(drop_id): Path<String>,
    ApiJson(body): ApiJson<LaunchRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let row = load_drop(&state, &principal, &drop_id).await?;
    let countdown_ms = body.countdown_ms.unwrap_or(3000);
    if !(0..=MAX_COUNTDOWN_MS).contains(&countdown_ms) {
        return Err(ApiError::invalid(
            "countdown_ms",
            "between 0 and 600000 milliseconds",
        ));
    }
    let seed = match row.fairness {
        Fairness::Lottery { .. } => {
            let seed = lottery::new_seed();
            Some(Seed {
                hex: hex::encode(seed),
                hash: lottery::seed_hash(&seed),
            })
        }
        Fairness::Fcfs => None,
    };
    // Each step after the script may fail; the host's retry finds the drop launched and
    // completes what is missing (the record, the countdown), with the same opening time.
    let (opens_at_ms, seed_hash, launched_now) =
        match live::launch(&state, &row, countdown_ms, seed.as_ref()).await? {
            Launch::Now { opens_at_ms } => (opens_at_ms, seed.map(|s| s.hash), true),
            Launch::Before {
                opens_at_ms,
                seed_hash,
            } => (opens_at_ms, seed_hash, false),
        };
    failpoint::hit("control.launch.after_script");
    let recorded_before = row.opens_at_ms.is_some();
    drops::record_launch(&state.db, &row.id, opens_at_ms, seed_hash.as_deref()).await?;
    failpoint::hit("control.launch.after_record");
    if state.analytics {
        crate::report::record_launch(&state, &row).await;
    }
    let spec = row.spec();
    let event = RoomEvent::Countdown {
        drop: DropCard::new(&row.id, &spec),
        opens_at_ms,
        order_url: format!("{}/v1/drops/{}/orders", state.public_url, row.id),
        seed_hash: seed_hash.clone(),
    };
    // Published once, and kept for viewers who join later (their `resync`).
    let publishing = traced.map(|t| t.child("room_bus publish", SpanKind::Producer));
    let published = state
        .bus
        .publish_drop_once(&row.room_id, &row.id, &event, publishing.as_ref())
        .await?;
    if let Some(span) = publishing {
        span.set("linkdrop.room_id", row.room_id.clone());
        span.set("linkdrop.drop_id", row.id.clone());
        if let Some(published) = &published {
            span.set("linkdrop.seq", published.seq as i64);
        }
        span.end();
    }
    if !launched_now && recorded_before && published.is_none() {
        return Err(ApiError::AlreadyLaunched);
    }
    tracing::info!(drop_id = %row.id, opens_at_ms, seq = published.map(|p| p.seq), launched_now, "drop launched");
    if launched_now {
        metrics::counter!("linkdrop_drops_launched_total").increment(1);
    }
    let mut body = json!({ "opens_at_ms": opens_at_ms });
    if let Some(hash) = seed_hash {
        body["seed_hash"] = json!(hash);
    }
    Ok((StatusCode::ACCEPTED, Json(body)))
}

pub async fn close(
    State(state): State<ControlState>,
    principal: Principal,
    Path(drop_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = load_drop(&state, &principal, &drop_id).await?;
    let (closed_now, closed_at_ms) = live::close(&state, &row).await?;
    // Also when Redis was closed before: a retry repairs a record the first call missed.
    // The record and the merchant's `drop.closed` are written together, once.
    drops::record_close(&state.db, &row, closed_at_ms, now_ms()).await?;
    if closed_now {
        let event = RoomEvent::Closed {
            drop_id: row.id.clone(),
        };
        redis::cmd("HDEL")
            .arg(state.keys.room_drops(&row.room_id))
            .arg(&row.id)
            .query_async::<()>(&mut state.redis.clone())
            .await?;
        state.bus.publish(&row.room_id, &event).await?;
        tracing::info!(drop_id = %row.id, "drop closed");
    }
    let row = drops::find(&state.db, &row.id)
        .await?
        .ok_or(ApiError::NotFound("drop"))?;
    Ok(Json(view::drop_view(&state, &row).await?))
}

/// `GET /v1/drops/{drop_id}/draw`: the lottery's published figures. `seed` and
/// `cutoff_rank` appear once the draw is done.
pub async fn get_draw(
    State(state): State<ControlState>,
    principal: Principal,
    Path(drop_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = load_drop(&state, &principal, &drop_id).await?;
    let Fairness::Lottery { window_ms } = row.fairness else {
        return Err(ApiError::NotFound("lottery draw"));
    };
    use DropMetaField::*;
    let meta = DropMeta::read(
        &state.redis,
        &state.keys,
        &row.id,
        &[
            SeedHash,
            Drawn,
            Seed,
            CutoffRank,
            DrawWinners,
            DrawnAtMs,
            OpensAtMs,
        ],
    )
    .await?;
    let entries: i64 = redis::cmd("HLEN")
        .arg(state.keys.drop_entries(&row.id))
        .query_async(&mut state.redis.clone())
        .await?;
    let mut body = json!({
        "drop_id": row.id,
        "seed_hash": meta.text(SeedHash).or(row.seed_hash.as_deref()),
        "entries": entries,
        "draw_at_ms": meta.int(OpensAtMs)?.map(|o| o + i64::from(window_ms)),
        // None until the draw is applied.
        "winners": meta.int(DrawWinners)?.unwrap_or(0),
    });
    if meta.flag(Drawn)? == Some(true) {
        body["seed"] = json!(meta.require_text(Seed)?);
        // Empty when nobody won.
        body["cutoff_rank"] = json!(Some(meta.require_text(CutoffRank)?).filter(|c| !c.is_empty()));
        body["drawn_at_ms"] = json!(meta.require_int(DrawnAtMs)?);
    }
    Ok(Json(body))
}
