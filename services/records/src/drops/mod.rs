//! Drops as recorded: their configuration and the milestones of their life (created,
//! launched, closed). Live figures — stock left, per-user counts — are in Redis; these
//! are what survives it. A lottery's draw figures are written by the orders role
//! ([`crate::orders::record_draw`]).

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use linkdrop_domain::events::merchant_event;
use linkdrop_domain::model::{DropSpec, Fairness, Room, UnknownValue};
use serde_json::json;

use crate::db::{Db, dispatch, undecodable};
use crate::webhooks::outbox::{self, MerchantEvent};

/// A drop's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRecord {
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
    /// Stored as `policy` and `window_ms`.
    pub fairness: Fairness,
    pub pay_within_s: i32,
    /// `draft`, `launched` or `closed`.
    pub phase: String,
    pub opens_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// The published hash of a lottery's seed, from its launch.
    pub seed_hash: Option<String>,
    pub created_at_ms: i64,
}

impl DropRecord {
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
            fairness: spec.fairness,
            pay_within_s: spec.pay_within_s as i32,
            phase: "draft".into(),
            opens_at_ms: None,
            closed_at_ms: None,
            seed_hash: None,
            created_at_ms,
        }
    }

    /// The configuration it was made with.
    pub fn spec(&self) -> DropSpec {
        DropSpec {
            sku: self.sku.clone(),
            title: self.title.clone(),
            image_url: self.image_url.clone(),
            price_cents: self.price_cents,
            currency: self.currency.clone(),
            stock: self.stock as u32,
            max_per_user: self.max_per_user as u32,
            fairness: self.fairness,
            pay_within_s: self.pay_within_s as u32,
        }
    }

    /// The `window_ms` column: a lottery's window (at most 600 000, see `DropSpec`).
    fn window_ms_column(&self) -> Option<i32> {
        self.fairness.window_ms().map(|w| w as i32)
    }
}

/// A row of `drops` as both dialects read it.
struct DropRow {
    id: String,
    room_id: String,
    merchant_id: String,
    sku: String,
    title: String,
    image_url: String,
    price_cents: i64,
    currency: String,
    stock: i32,
    max_per_user: i32,
    policy: String,
    window_ms: Option<i32>,
    pay_within_s: i32,
    phase: String,
    opens_at_ms: Option<i64>,
    closed_at_ms: Option<i64>,
    seed_hash: Option<String>,
    created_at_ms: i64,
}

impl TryFrom<DropRow> for DropRecord {
    type Error = sqlx::Error;

    fn try_from(row: DropRow) -> Result<Self, sqlx::Error> {
        let fairness = Fairness::from_parts(&row.policy, row.window_ms).ok_or_else(|| {
            let stored = format!("{} (window_ms {:?})", row.policy, row.window_ms);
            undecodable("drops.policy", UnknownValue::new("drop policy", &stored))
        })?;
        Ok(DropRecord {
            id: row.id,
            room_id: row.room_id,
            merchant_id: row.merchant_id,
            sku: row.sku,
            title: row.title,
            image_url: row.image_url,
            price_cents: row.price_cents,
            currency: row.currency,
            stock: row.stock,
            max_per_user: row.max_per_user,
            fairness,
            pay_within_s: row.pay_within_s,
            phase: row.phase,
            opens_at_ms: row.opens_at_ms,
            closed_at_ms: row.closed_at_ms,
            seed_hash: row.seed_hash,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// Stores a new (draft) drop; an error if its id is stored already or its room is not.
pub async fn insert(db: &Db, drop: &DropRecord) -> Result<(), sqlx::Error> {
    dispatch!(db, insert(drop))
}

/// The drop `drop_id`, if it exists.
pub async fn find(db: &Db, drop_id: &str) -> Result<Option<DropRecord>, sqlx::Error> {
    dispatch!(db, find(drop_id))?
        .map(DropRecord::try_from)
        .transpose()
}

/// The newest 200 drops of a room, newest first (ids grow with time).
pub async fn list_room(db: &Db, room_id: &str) -> Result<Vec<DropRecord>, sqlx::Error> {
    dispatch!(db, list_room(room_id))?
        .into_iter()
        .map(DropRecord::try_from)
        .collect()
}

/// Records a launch: the opening time and, for a lottery, the published seed hash.
pub async fn record_launch(
    db: &Db,
    drop_id: &str,
    opens_at_ms: i64,
    seed_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    dispatch!(db, record_launch(drop_id, opens_at_ms, seed_hash))
}

/// Records the close of `drop` at `closed_at_ms` unless it was recorded before, and in the
/// same transaction the merchant's `drop.closed` event (stamped `now_ms`): both once, so a
/// retried close repairs a record an earlier call missed without announcing it twice.
/// Whether this call recorded it.
pub async fn record_close(
    db: &Db,
    drop: &DropRecord,
    closed_at_ms: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let recorded = dispatch!(tx, mark_closed(&drop.id, closed_at_ms))?;
    if recorded {
        let data = json!({"drop_id": drop.id, "merchant_id": drop.merchant_id, "closed_at_ms": closed_at_ms});
        let event = MerchantEvent::new(
            &drop.id,
            &drop.merchant_id,
            merchant_event::DROP_CLOSED,
            &data,
            now_ms,
        );
        outbox::enqueue(&mut tx, &[event], now_ms).await?;
    }
    tx.commit().await?;
    Ok(recorded)
}
