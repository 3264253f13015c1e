//! `resync`: the current state of a room's drops, for a viewer that is new or was away for
//! longer than the room's history keeps. Built from Redis (the countdowns the control API
//! kept per room, and each drop's live figures), at most once per room and `seq` on a node
//! (and at least once a second), so a wave of joining viewers costs Redis little.

use std::collections::HashMap;
use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::model::DropState;
use linkdrop_infra::hash_fields::HashFields;
use serde_json::{Value, json};

use crate::GatewayState;

/// How long a node reuses a room's snapshot for the same `seq`.
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// The `resync` frame of `room_id` as of `seq`, or `None` when the room has no open drop.
pub async fn resync(
    state: &GatewayState,
    room_id: &str,
    seq: u64,
) -> Result<Option<String>, redis::RedisError> {
    let room = state.fanout.room_or_insert(room_id);
    if let Some(cached) = room.cached_snapshot(seq, SNAPSHOT_TTL) {
        return Ok(cached);
    }
    let drops = current_drops(state, room_id).await?;
    let frame = (!drops.is_empty()).then(|| {
        json!({"type": "resync", "seq": seq, "ts_ms": now_ms(), "drops": drops}).to_string()
    });
    room.cache_snapshot(seq, frame.clone());
    Ok(frame)
}

/// Every launched, not closed drop of the room: its countdown plus `state`, `stock_left`.
async fn current_drops(
    state: &GatewayState,
    room_id: &str,
) -> Result<Vec<Value>, redis::RedisError> {
    let countdowns: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(state.keys.room_drops(room_id))
        .query_async(&mut state.redis.clone())
        .await?;
    let mut drops = Vec::new();
    for (drop_id, countdown) in countdowns {
        let Ok(mut drop) = serde_json::from_str::<Value>(&countdown) else {
            continue;
        };
        let live = HashFields::read(
            &state.redis,
            &state.keys.drop_meta(&drop_id),
            &["phase", "opens_at_ms", "stock_left", "stock"],
        )
        .await?;
        let stock_left = live.int("stock_left").unwrap_or(0);
        let drop_state = DropState::at(
            live.text("phase").unwrap_or("draft"),
            live.int("opens_at_ms"),
            stock_left,
            now_ms(),
        );
        if drop_state == DropState::Closed {
            continue;
        }
        if let Some(fields) = drop.as_object_mut() {
            fields.remove("type");
            fields.insert("drop_id".into(), json!(drop_id));
            fields.insert("state".into(), json!(drop_state.as_str()));
            fields.insert("stock_left".into(), json!(stock_left));
            fields.insert("stock".into(), json!(live.int("stock")));
        }
        drops.push(drop);
    }
    drops.sort_by_key(|d| d["opens_at_ms"].as_i64());
    Ok(drops)
}
