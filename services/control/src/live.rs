//! A drop's record (the system of record) joined with its live state (Redis), and the scripts that
//! change the live state: launch and close.

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_meta::{DropMetaField, LivePhase};
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::model::{DropSpec, DropState, Fairness, Room};
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::ApiError;
use linkdrop_infra::drop_meta::DropMeta;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::ControlState;

/// A row of `drops`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRow {
    pub id: String,
    pub room_id: String,
    pub merchant_id: String,
    pub sku: String,
    pub title: String,
    pub image_url: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i32,
    pub max_per_user: i32,
    pub policy: String,
    pub window_ms: Option<i32>,
    pub pay_within_s: i32,
    pub phase: String,
    pub opens_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub seed_hash: Option<String>,
    pub created_at_ms: i64,
}

impl DropRow {
    /// A new draft drop of `room`.
    pub fn new(id: String, room: &Room, spec: &DropSpec, created_at_ms: i64) -> Self {
        Self {
            id,
            room_id: room.id.clone(),
            merchant_id: room.merchant_id.clone(),
            sku: spec.sku.clone(),
            title: spec.title.clone(),
            image_url: spec.image_url.clone(),
            price_cents: spec.price_cents,
            currency: spec.currency.clone(),
            stock: spec.stock as i32,
            max_per_user: spec.max_per_user as i32,
            policy: spec.fairness.policy().to_string(),
            window_ms: spec.fairness.window_ms().map(|w| w as i32),
            pay_within_s: spec.pay_within_s as i32,
            phase: "draft".into(),
            opens_at_ms: None,
            closed_at_ms: None,
            seed_hash: None,
            created_at_ms,
        }
    }

    /// The drop's fairness policy, from its `policy` and `window_ms` columns.
    pub fn fairness(&self) -> Result<Fairness, BadStoredValue> {
        Fairness::from_parts(&self.policy, self.window_ms).ok_or_else(|| {
            BadStoredValue::unparsable(
                self.record_key(),
                "policy",
                "fcfs, or lottery with a window_ms of 0 or more",
                &format!("{} (window_ms {:?})", self.policy, self.window_ms),
            )
        })
    }

    /// The drop's phase as the record last knew it (the live state is newer).
    pub fn recorded_phase(&self) -> Result<LivePhase, BadStoredValue> {
        LivePhase::parse(&self.phase).ok_or_else(|| {
            BadStoredValue::unparsable(
                self.record_key(),
                "phase",
                "draft, launched or closed",
                &self.phase,
            )
        })
    }

    /// Where the record is, to name it in errors.
    fn record_key(&self) -> String {
        format!("drops {}", self.id)
    }

    pub fn spec(&self) -> Result<DropSpec, BadStoredValue> {
        Ok(DropSpec {
            sku: self.sku.clone(),
            title: self.title.clone(),
            image_url: self.image_url.clone(),
            price_cents: self.price_cents,
            currency: self.currency.clone(),
            stock: self.stock as u32,
            max_per_user: self.max_per_user as u32,
            fairness: self.fairness()?,
            pay_within_s: self.pay_within_s as u32,
        })
    }

    /// The drop's state in Redis before launch: what admission reads. (`window_ms` is 0
    /// for a first-come-first-served drop, which has none.)
    fn initial_state(&self) -> Vec<(&'static str, String)> {
        use DropMetaField::*;
        [
            (Phase, LivePhase::Draft.as_str().to_string()),
            (RoomId, self.room_id.clone()),
            (MerchantId, self.merchant_id.clone()),
            (Stock, self.stock.to_string()),
            (StockLeft, self.stock.to_string()),
            (Paid, "0".into()),
            (MaxPerUser, self.max_per_user.to_string()),
            (Policy, self.policy.clone()),
            (WindowMs, self.window_ms.unwrap_or(0).to_string()),
            (
                PayWithinMs,
                (i64::from(self.pay_within_s) * 1000).to_string(),
            ),
        ]
        .into_iter()
        .map(|(field, value)| (field.as_str(), value))
        .collect()
    }
}

/// Registers the drop's outbox with the relay, then writes the draft state to Redis. Two
/// commands (the keys live on different cluster nodes), in this order: a drop whose state
/// exists is always watched by the relay (launch registers it again).
pub async fn write_initial_state(state: &ControlState, row: &DropRow) -> Result<(), ApiError> {
    let mut redis = state.redis.clone();
    redis
        .sadd::<_, _, ()>(state.keys.outboxes(), &row.id)
        .await?;
    redis
        .hset_multiple::<_, _, _, ()>(state.keys.drop_meta(&row.id), &row.initial_state())
        .await?;
    Ok(())
}

fn state_args(row: &DropRow) -> Vec<String> {
    row.initial_state()
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
}

/// A lottery's seed as launch stores it: the secret and its published hash.
pub struct Seed {
    pub hex: String,
    pub hash: String,
}

/// Runs `launch.lua`: the opening time, or 409/410 if launched or closed before.
pub async fn launch(
    state: &ControlState,
    row: &DropRow,
    countdown_ms: i64,
    seed: Option<&Seed>,
) -> Result<i64, ApiError> {
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
    match reply.as_slice() {
        [status, opens_at] if status == "launched" => opens_at
            .parse()
            .map_err(|_| ApiError::internal("launch script returned a bad time")),
        [status] if status == "already_launched" => Err(ApiError::AlreadyLaunched),
        [status] if status == "closed" => Err(ApiError::Closed),
        other => Err(ApiError::internal(format!(
            "launch script answered {other:?}"
        ))),
    }
}

/// Runs `close.lua`: whether this call closed the drop, and when it was closed.
pub async fn close(state: &ControlState, row: &DropRow) -> Result<(bool, i64), ApiError> {
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
const LIVE_FIELDS: &[DropMetaField] = &[
    DropMetaField::Phase,
    DropMetaField::OpensAtMs,
    DropMetaField::StockLeft,
    DropMetaField::Paid,
    DropMetaField::SoldOutAtMs,
    DropMetaField::ClosedAtMs,
];

/// What a drop's view shows of its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveFigures {
    phase: LivePhase,
    opens_at_ms: Option<i64>,
    stock_left: i64,
    paid: i64,
    sold_out_at_ms: Option<i64>,
    closed_at_ms: Option<i64>,
}

impl LiveFigures {
    /// The figures of `live`, or — when the drop has no live state (its creation did not
    /// get to write it, or Redis lost it; launch and close write it again) — those of the
    /// record: nothing sold. A live state that is there must be whole and parse.
    fn of(row: &DropRow, live: &DropMeta) -> Result<Self, BadStoredValue> {
        use DropMetaField::*;
        if live.is_empty() {
            return Ok(Self {
                phase: row.recorded_phase()?,
                opens_at_ms: row.opens_at_ms,
                stock_left: i64::from(row.stock),
                paid: 0,
                sold_out_at_ms: None,
                closed_at_ms: row.closed_at_ms,
            });
        }
        let phase = live.require_phase()?;
        // Launch sets the opening time with the phase; a closed draft has none.
        let opens_at_ms = match phase {
            LivePhase::Launched => Some(live.require_int(OpensAtMs)?),
            LivePhase::Draft | LivePhase::Closed => live.int(OpensAtMs)?,
        };
        Ok(Self {
            phase,
            opens_at_ms,
            stock_left: live.require_int(StockLeft)?,
            paid: live.require_int(Paid)?,
            sold_out_at_ms: live.int(SoldOutAtMs)?,
            closed_at_ms: live.int(ClosedAtMs)?.or(row.closed_at_ms),
        })
    }
}

/// The drop as `GET /v1/drops/{id}` shows it: record plus live figures.
pub async fn drop_view(state: &ControlState, row: &DropRow) -> Result<Value, ApiError> {
    let live = DropMeta::read(&state.redis, &state.keys, &row.id, LIVE_FIELDS).await?;
    let live = LiveFigures::of(row, &live)?;
    let stock = i64::from(row.stock);
    let drop_state = DropState::at(live.phase, live.opens_at_ms, live.stock_left, now_ms());
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
        "fairness": row.fairness()?,
        "pay_within_s": row.pay_within_s,
        "state": drop_state.as_str(),
        "stock": stock,
        "stock_left": live.stock_left,
        "reserved": stock - live.stock_left - live.paid,
        "paid": live.paid,
        "opens_at_ms": live.opens_at_ms,
        "sold_out_at_ms": live.sold_out_at_ms,
        "closed_at_ms": live.closed_at_ms,
        "seed_hash": row.seed_hash,
        "created_at_ms": row.created_at_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> DropRow {
        DropRow {
            id: "drp_1".into(),
            room_id: "room_1".into(),
            merchant_id: "m1".into(),
            sku: "SKU-1".into(),
            title: "Tea".into(),
            image_url: "https://img.example/t.png".into(),
            price_cents: 990,
            currency: "CNY".into(),
            stock: 10,
            max_per_user: 1,
            policy: "lottery".into(),
            window_ms: Some(2000),
            pay_within_s: 600,
            phase: "launched".into(),
            opens_at_ms: Some(1_000),
            closed_at_ms: None,
            seed_hash: None,
            created_at_ms: 1,
        }
    }

    fn live(values: [Option<&str>; 6]) -> DropMeta {
        DropMeta::from_values(
            "ld:{d:drp_1}:meta",
            LIVE_FIELDS,
            values.iter().map(|v| v.map(str::to_string)).collect(),
        )
    }

    #[test]
    fn a_stored_policy_that_does_not_parse_is_an_error_not_fcfs() {
        assert_eq!(row().fairness(), Ok(Fairness::Lottery { window_ms: 2000 }));
        let dutch = DropRow {
            policy: "dutch".into(),
            ..row()
        };
        let err = dutch.fairness().unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.field.as_str()),
            ("drops drp_1", "policy")
        );
        assert!(dutch.spec().is_err());
        let no_window = DropRow {
            window_ms: None,
            ..row()
        };
        assert!(no_window.fairness().is_err());
    }

    #[test]
    fn the_view_takes_the_live_figures() {
        let figures = LiveFigures::of(
            &row(),
            &live([
                Some("launched"),
                Some("1000"),
                Some("4"),
                Some("2"),
                None,
                None,
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                figures.phase,
                figures.stock_left,
                figures.paid,
                figures.opens_at_ms
            ),
            (LivePhase::Launched, 4, 2, Some(1_000))
        );
    }

    #[test]
    fn without_a_live_state_the_view_is_the_record_with_nothing_sold() {
        let figures = LiveFigures::of(&row(), &live([None; 6])).unwrap();
        assert_eq!(
            (
                figures.phase,
                figures.stock_left,
                figures.paid,
                figures.opens_at_ms
            ),
            (LivePhase::Launched, 10, 0, Some(1_000))
        );
        let bad_record = DropRow {
            phase: "live".into(),
            ..row()
        };
        let err = LiveFigures::of(&bad_record, &live([None; 6])).unwrap_err();
        assert_eq!(err.field, "phase");
    }

    #[test]
    fn live_figures_that_are_missing_or_bad_are_errors_naming_the_field() {
        let cases = [
            (
                [Some("open"), Some("1000"), Some("4"), Some("2"), None, None],
                "phase",
            ),
            (
                [Some("launched"), None, Some("4"), Some("2"), None, None],
                "opens_at_ms",
            ),
            (
                [
                    Some("launched"),
                    Some("1000"),
                    Some("x"),
                    Some("2"),
                    None,
                    None,
                ],
                "stock_left",
            ),
            (
                [Some("launched"), Some("1000"), Some("4"), None, None, None],
                "paid",
            ),
            (
                [
                    Some("closed"),
                    Some("1000"),
                    Some("4"),
                    Some("2"),
                    None,
                    Some("t"),
                ],
                "closed_at_ms",
            ),
        ];
        for (values, field) in cases {
            let err = LiveFigures::of(&row(), &live(values)).unwrap_err();
            assert_eq!(err.key, "ld:{d:drp_1}:meta");
            assert_eq!(err.field, field, "{values:?}");
        }
    }
}
