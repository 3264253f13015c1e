//! A drop's record (the system of record) joined with its live state (Redis), and the scripts that
//! change the live state: launch and close.

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::model::DropState;
use linkdrop_infra::ApiError;
use linkdrop_infra::hash_fields::HashFields;
use linkdrop_records::drops::DropRecord;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::ControlState;

/// The drop's state in Redis before launch: what admission reads.
fn initial_state(drop: &DropRecord) -> Vec<(&'static str, String)> {
    vec![
        ("phase", "draft".into()),
        ("room_id", drop.room_id.clone()),
        ("merchant_id", drop.merchant_id.clone()),
        ("stock", drop.stock.to_string()),
        ("stock_left", drop.stock.to_string()),
        ("paid", "0".into()),
        ("max_per_user", drop.max_per_user.to_string()),
        ("policy", drop.fairness.policy().to_string()),
        (
            "window_ms",
            drop.fairness.window_ms().unwrap_or(0).to_string(),
        ),
        (
            "pay_within_ms",
            (i64::from(drop.pay_within_s) * 1000).to_string(),
        ),
    ]
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

/// The fields of a drop's live state that its view shows.
const LIVE_FIELDS: &[&str] = &[
    "phase",
    "opens_at_ms",
    "stock_left",
    "paid",
    "sold_out_at_ms",
    "closed_at_ms",
];

/// The drop as `GET /v1/drops/{id}` shows it: record plus live figures.
pub async fn drop_view(state: &ControlState, row: &DropRecord) -> Result<Value, ApiError> {
    let live = HashFields::read(&state.redis, &state.keys.drop_meta(&row.id), LIVE_FIELDS).await?;
    let stock = i64::from(row.stock);
    let stock_left = live.int("stock_left").unwrap_or(stock);
    let paid = live.int("paid").unwrap_or(0);
    let phase = live.text("phase").unwrap_or(&row.phase);
    let opens_at_ms = live.int("opens_at_ms").or(row.opens_at_ms);
    let drop_state = DropState::at(phase, opens_at_ms, stock_left, now_ms());
    Ok(json!({
        "id": row.id,
        "room_id": row.room_id,
        "merchant_id": row.merchant_id,
        "sku": row.sku,
        "title": row.title,
        "image_url": row.image_url,
        "price_cents": row.price_cents,
        "currency": row.currency,
        "max_per_user": row.max_per_user,
        "fairness": row.fairness,
        "pay_within_s": row.pay_within_s,
        "state": drop_state.as_str(),
        "stock": stock,
        "stock_left": stock_left,
        "reserved": stock - stock_left - paid,
        "paid": paid,
        "opens_at_ms": opens_at_ms,
        "sold_out_at_ms": live.int("sold_out_at_ms"),
        "closed_at_ms": live.int("closed_at_ms").or(row.closed_at_ms),
        "seed_hash": row.seed_hash,
        "created_at_ms": row.created_at_ms,
    }))
}
