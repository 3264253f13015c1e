//! A drop's record (the system of record), its live state (Redis) as it is first written,
//! and the scripts that change the live state: launch and close. How the two are shown
//! together is [`crate::view`].

use linkdrop_domain::drop_meta::{DropMetaField, LivePhase};
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::model::{DropSpec, Fairness, Room};
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::ApiError;
use redis::AsyncCommands;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row() -> DropRow {
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
}
