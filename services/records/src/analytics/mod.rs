//! The host's analytics: what the gateways, orders processes and the control role count in
//! memory and add here in batches (viewers per room and second, each viewer's first visit
//! of a room, taps and countdown reach per drop), and the reads of the post-live report,
//! which also counts orders, payments, expiries and buyers from the orders themselves.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use crate::db::{Db, dispatch};

/// One second of a room: viewers connected then, joins and leaves during it. In a batch,
/// one node's figures; stored, the sum over every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSecond {
    pub room_id: String,
    pub at_s: i64,
    pub viewers: i64,
    pub joins: i64,
    pub leaves: i64,
}

/// A viewer seen in a room (only the first sighting is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerSeen {
    pub room_id: String,
    pub user_id: String,
    pub first_seen_ms: i64,
}

/// What one process counted for a drop since its last batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropTally {
    pub drop_id: String,
    /// Order requests, whatever their answer.
    pub taps: i64,
    /// Viewers the drop's countdown was sent to before it opened.
    pub countdown_reached: i64,
}

/// One process's figures since its last batch, added in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub seconds: Vec<RoomSecond>,
    pub viewers: Vec<ViewerSeen>,
    pub drops: Vec<DropTally>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty() && self.viewers.is_empty() && self.drops.is_empty()
    }
}

/// Adds `batch` to what is stored: seconds and tallies are summed with other nodes',
/// a viewer already seen in the room keeps its first sighting. `now_ms` dates the tallies
/// (for retention).
pub async fn add(db: &Db, batch: &Batch, now_ms: i64) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    dispatch!(tx, add_seconds(&batch.seconds))?;
    dispatch!(tx, add_viewers(&batch.viewers))?;
    dispatch!(tx, add_tallies(&batch.drops, now_ms))?;
    tx.commit().await
}

/// Records a drop's launch: when, and how many viewers the room had then.
pub async fn record_launch(
    db: &Db,
    drop_id: &str,
    launched_at_ms: i64,
    viewers: i64,
) -> Result<(), sqlx::Error> {
    dispatch!(db, record_launch(drop_id, launched_at_ms, viewers))
}

/// A room's seconds, oldest first.
pub async fn seconds(db: &Db, room_id: &str) -> Result<Vec<RoomSecond>, sqlx::Error> {
    dispatch!(db, seconds(room_id))
}

/// A room's distinct viewers, and how many of them had watched another room of the same
/// merchant before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerMix {
    pub unique: i64,
    pub returning: i64,
}

pub async fn viewer_mix(db: &Db, room_id: &str) -> Result<ViewerMix, sqlx::Error> {
    dispatch!(db, viewer_mix(room_id))
}

/// What was counted for a drop of the room (all zero and unknown for a drop never
/// launched or tapped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropFigures {
    pub drop_id: String,
    pub launched_at_ms: Option<i64>,
    pub viewers_at_launch: Option<i64>,
    pub countdown_reached: i64,
    pub taps: i64,
}

pub async fn drop_figures(db: &Db, room_id: &str) -> Result<Vec<DropFigures>, sqlx::Error> {
    dispatch!(db, drop_figures(room_id))
}

/// A drop's orders by what became of them, and its buyers: shoppers with a paid order, and
/// of those the ones who had paid for an order in another room of the merchant before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropOrders {
    pub drop_id: String,
    /// Orders that held units (reserved, then paid, expired or cancelled).
    pub reserved: i64,
    pub paid: i64,
    pub expired: i64,
    pub buyers: i64,
    pub repeat_buyers: i64,
}

pub async fn drop_orders(db: &Db, room_id: &str) -> Result<Vec<DropOrders>, sqlx::Error> {
    dispatch!(db, drop_orders(room_id))
}

/// The room's buyers over all its drops (each shopper once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buyers {
    pub unique: i64,
    pub repeat: i64,
}

pub async fn room_buyers(db: &Db, room_id: &str) -> Result<Buyers, sqlx::Error> {
    dispatch!(db, room_buyers(room_id))
}

/// Deletes the figures older than `before_ms`; how many rows went.
pub async fn delete_before(db: &Db, before_ms: i64) -> Result<u64, sqlx::Error> {
    dispatch!(db, delete_before(before_ms))
}
