//! `resync`: the current state of a room's drops, for a viewer that is new or was away for
//! longer than the room's history keeps. Built from Redis (the countdowns the control API
//! kept per room, and each drop's live figures), at most once per room and `seq` on a node
//! (and at least once a second), so a wave of joining viewers costs Redis little.
//!
//! A kept countdown or live figure that does not parse fails the snapshot with an error
//! naming the key (logged by the session); the viewer then gets no `resync` rather than a
//! made-up state.

use std::collections::HashMap;
use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_meta::DropMetaField;
use linkdrop_domain::events::{Frame, Resync, ResyncDrop, ResyncType, RoomEvent};
use linkdrop_domain::model::DropState;
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::drop_meta::DropMeta;

use crate::GatewayState;

/// How long a node reuses a room's snapshot for the same `seq`.
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// The live figures a `resync` shows of each drop.
const LIVE_FIELDS: &[DropMetaField] = &[
    DropMetaField::Phase,
    DropMetaField::OpensAtMs,
    DropMetaField::StockLeft,
    DropMetaField::Stock,
];

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Stored(#[from] BadStoredValue),
}

/// The `resync` frame of `room_id` as of `seq`, or `None` when the room has no open drop.
pub async fn resync(
    state: &GatewayState,
    room_id: &str,
    seq: u64,
) -> Result<Option<String>, SnapshotError> {
    let room = state.fanout.room_or_insert(room_id);
    if let Some(cached) = room.cached_snapshot(seq, SNAPSHOT_TTL) {
        return Ok(cached);
    }
    let drops = current_drops(state, room_id).await?;
    let frame = (!drops.is_empty()).then(|| {
        Resync {
            drops,
            seq,
            ts_ms: now_ms(),
            kind: ResyncType,
        }
        .to_text()
    });
    room.cache_snapshot(seq, frame.clone());
    Ok(frame)
}

/// Every launched, not closed drop of the room: its countdown plus `state`, `stock_left`
/// and `stock`, by opening time.
async fn current_drops(
    state: &GatewayState,
    room_id: &str,
) -> Result<Vec<ResyncDrop>, SnapshotError> {
    let key = state.keys.room_drops(room_id);
    let countdowns: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut state.redis.clone())
        .await?;
    let mut drops = Vec::new();
    for (drop_id, countdown) in countdowns {
        let live = DropMeta::read(&state.redis, &state.keys, &drop_id, LIVE_FIELDS).await?;
        if let Some(drop) = resync_drop(&key, &drop_id, &countdown, &live, now_ms())? {
            drops.push(drop);
        }
    }
    drops.sort_by_key(|d| d.opens_at_ms);
    Ok(drops)
}

/// One drop of the snapshot from its kept countdown (field `drop_id` of the room's hash at
/// `key`) and its live figures; `None` once it is closed.
fn resync_drop(
    key: &str,
    drop_id: &str,
    countdown: &str,
    live: &DropMeta,
    now_ms: i64,
) -> Result<Option<ResyncDrop>, BadStoredValue> {
    let Ok(RoomEvent::Countdown {
        drop,
        opens_at_ms,
        order_url,
        seed_hash,
    }) = serde_json::from_str(countdown)
    else {
        return Err(BadStoredValue::unparsable(
            key,
            drop_id,
            "a drop.countdown event",
            countdown,
        ));
    };
    let stock_left = live.require_int(DropMetaField::StockLeft)?;
    let drop_state = DropState::at(
        live.require_phase()?,
        Some(live.require_int(DropMetaField::OpensAtMs)?),
        stock_left,
        now_ms,
    );
    if drop_state == DropState::Closed {
        return Ok(None);
    }
    Ok(Some(ResyncDrop {
        drop,
        drop_id: drop_id.to_string(),
        opens_at_ms,
        order_url,
        seed_hash,
        state: drop_state,
        stock: live.require_int(DropMetaField::Stock)?,
        stock_left,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkdrop_domain::events::DropCard;
    use linkdrop_domain::model::Fairness;

    const ROOM_DROPS: &str = "ld:{r:room_1}:drops";

    fn countdown() -> String {
        let event = RoomEvent::Countdown {
            drop: DropCard {
                id: "drp_1".into(),
                sku: "SKU-1".into(),
                title: "Tea".into(),
                image_url: "https://img.example/t.png".into(),
                price_cents: 990,
                currency: "CNY".into(),
                max_per_user: 1,
                fairness: Fairness::Fcfs,
            },
            opens_at_ms: 1_000,
            order_url: "http://x/v1/drops/drp_1/orders".into(),
            seed_hash: None,
        };
        serde_json::to_string(&event).unwrap()
    }

    fn live(values: [Option<&str>; 4]) -> DropMeta {
        DropMeta::from_values(
            "ld:{d:drp_1}:meta",
            LIVE_FIELDS,
            values.iter().map(|v| v.map(str::to_string)).collect(),
        )
    }

    #[test]
    fn a_launched_drop_shows_its_countdown_and_figures() {
        let live = live([Some("launched"), Some("1000"), Some("3"), Some("5")]);
        let drop = resync_drop(ROOM_DROPS, "drp_1", &countdown(), &live, 2_000)
            .unwrap()
            .unwrap();
        assert_eq!(
            (drop.state, drop.stock_left, drop.stock, drop.opens_at_ms),
            (DropState::Open, 3, 5, 1_000)
        );
        assert_eq!(drop.drop.id, "drp_1");
    }

    #[test]
    fn a_closed_drop_is_left_out() {
        let live = live([Some("closed"), Some("1000"), Some("3"), Some("5")]);
        assert_eq!(
            resync_drop(ROOM_DROPS, "drp_1", &countdown(), &live, 2_000),
            Ok(None)
        );
    }

    #[test]
    fn a_kept_countdown_that_does_not_parse_names_its_key() {
        let live = live([Some("launched"), Some("1000"), Some("3"), Some("5")]);
        let err = resync_drop(ROOM_DROPS, "drp_1", "{\"type\":\"drop.clo", &live, 0).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.field.as_str()),
            (ROOM_DROPS, "drp_1")
        );
    }

    #[test]
    fn live_figures_that_are_missing_or_bad_are_errors_not_zeros() {
        let no_stock = live([Some("launched"), Some("1000"), Some("3"), None]);
        let err = resync_drop(ROOM_DROPS, "drp_1", &countdown(), &no_stock, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stored value stock of ld:{d:drp_1}:meta: missing"
        );
        let bad_phase = live([Some("opened"), Some("1000"), Some("3"), Some("5")]);
        let err = resync_drop(ROOM_DROPS, "drp_1", &countdown(), &bad_phase, 0).unwrap_err();
        assert_eq!(err.field, "phase");
        let bad_left = live([Some("launched"), Some("1000"), Some("three"), Some("5")]);
        let err = resync_drop(ROOM_DROPS, "drp_1", &countdown(), &bad_left, 0).unwrap_err();
        assert_eq!(err.field, "stock_left");
    }
}
