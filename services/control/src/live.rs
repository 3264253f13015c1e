//! A drop's live state (Redis) as it is first written from its record, and the scripts that
//! change it: launch and close. How record and live state are shown together is
//! [`crate::view`].

use linkdrop_domain::drop_meta::{DropMetaField, LivePhase};
use linkdrop_domain::drop_news::with_news;
use linkdrop_infra::ApiError;
use linkdrop_records::drops::DropRecord;
use redis::AsyncCommands;

use crate::ControlState;

/// The drop's state in Redis before launch: what admission reads. (`window_ms` is 0 for a
/// first-come-first-served drop, which has none.)
fn initial_state(drop: &DropRecord) -> Vec<(&'static str, String)> {
    use DropMetaField::*;
    [
        (Phase, LivePhase::Draft.as_str().to_string()),
        (RoomId, drop.room_id.clone()),
        (MerchantId, drop.merchant_id.clone()),
        (Stock, drop.stock.to_string()),
        (StockLeft, drop.stock.to_string()),
        (Paid, "0".into()),
        (MaxPerUser, drop.max_per_user.to_string()),
        (Policy, drop.fairness.policy().to_string()),
        (WindowMs, drop.fairness.window_ms().unwrap_or(0).to_string()),
        (
            PayWithinMs,
            (i64::from(drop.pay_within_s) * 1000).to_string(),
        ),
    ]
    .into_iter()
    .map(|(field, value)| (field.as_str(), value))
    .collect()
}

/// Registers the drop's outbox with the relay, then writes the draft state to Redis. Two
/// commands (the keys live on different cluster nodes), in this order: a drop whose state
/// exists is always watched by the relay (launch registers it again).
pub async fn write_initial_state(state: &ControlState, row: &DropRecord) -> Result<(), ApiError> {
    let mut redis = state.redis.clone();
    redis
        .sadd::<_, _, ()>(state.keys.outboxes(), &row.id)
        .await?;
    redis
        .hset_multiple::<_, _, _, ()>(state.keys.drop_meta(&row.id), &initial_state(row))
        .await?;
    Ok(())
}

fn state_args(row: &DropRecord) -> Vec<String> {
    initial_state(row)
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
}

/// A lottery's seed as launch stores it: the secret and its published hash.
pub struct Seed {
    pub hex: String,
    pub hash: String,
}

/// What `launch.lua` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// Launched by this call.
    Now { opens_at_ms: i64 },
    /// Launched before (by an earlier call whose later steps may not have run).
    Before {
        opens_at_ms: i64,
        seed_hash: Option<String>,
    },
}

/// Runs `launch.lua`: launched now or before, or 410 if closed.
pub async fn launch(
    state: &ControlState,
    row: &DropRecord,
    countdown_ms: i64,
    seed: Option<&Seed>,
) -> Result<Launch, ApiError> {
    let script = redis::Script::new(&with_news(include_str!("launch.lua")));
    let mut invocation = script.key(state.keys.drop_meta(&row.id));
    invocation
        .arg(state.keys.drop_news_channel())
        .arg(&row.id)
        .arg(countdown_ms)
        .arg(seed.map(|s| s.hex.as_str()).unwrap_or(""))
        .arg(seed.map(|s| s.hash.as_str()).unwrap_or(""))
        .arg(state_args(row));
    let reply: Vec<String> = invocation.invoke_async(&mut state.redis.clone()).await?;
    // The outbox must be watched before the first order can arrive.
    redis::cmd("SADD")
        .arg(state.keys.outboxes())
        .arg(&row.id)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    let time = |text: &str| {
        text.parse()
            .map_err(|_| ApiError::internal("launch script returned a bad time"))
    };
    match reply.as_slice() {
        [status, opens_at] if status == "launched" => Ok(Launch::Now {
            opens_at_ms: time(opens_at)?,
        }),
        [status, opens_at, seed_hash] if status == "already_launched" => Ok(Launch::Before {
            opens_at_ms: time(opens_at)?,
            seed_hash: (!seed_hash.is_empty()).then(|| seed_hash.clone()),
        }),
        [status] if status == "closed" => Err(ApiError::Closed),
        other => Err(ApiError::internal(format!(
            "launch script answered {other:?}"
        ))),
    }
}

/// Runs `close.lua`: whether this call closed the drop, and when it was closed.
pub async fn close(state: &ControlState, row: &DropRecord) -> Result<(bool, i64), ApiError> {
    let script = redis::Script::new(&with_news(include_str!("close.lua")));
    let mut invocation = script.key(state.keys.drop_meta(&row.id));
    invocation
        .arg(state.keys.drop_news_channel())
        .arg(&row.id)
        .arg(state_args(row));
    let reply: Vec<String> = invocation.invoke_async(&mut state.redis.clone()).await?;
    match reply.as_slice() {
        [status, at] => {
            let at = at
                .parse()
                .map_err(|_| ApiError::internal("close script returned a bad time"))?;
            Ok((status == "closed", at))
        }
        other => Err(ApiError::internal(format!(
            "close script answered {other:?}"
        ))),
    }
}
