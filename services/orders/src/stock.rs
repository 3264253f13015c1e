//! Live stock figures pushed to the room: `drop.stock` at most once per interval per drop
//! (the last change of a burst is always sent), and `drop.sold_out` once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkdrop_domain::drop_meta::DropMetaField::{RoomId, Stock, StockLeft};
use linkdrop_domain::events::RoomEvent;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::drop_meta::DropMeta;
use linkdrop_infra::room_bus::RoomBus;
use tokio::time::Instant;

/// Why a stock event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Stored(#[from] BadStoredValue),
}

/// Shortest gap between two `drop.stock` events of one drop from one process.
pub const STOCK_EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// The fixed facts of a launched drop that its events need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFacts {
    pub room_id: String,
    pub stock: i64,
}

/// Throttles and publishes `drop.stock`; publishes `drop.sold_out`.
#[derive(Clone)]
pub struct StockTicker {
    bus: RoomBus,
    redis: RedisConn,
    keys: Keys,
    interval: Duration,
    /// Per drop: when its last `drop.stock` went out, and whether one is scheduled.
    drops: Arc<Mutex<HashMap<String, Tick>>>,
    facts: Arc<Mutex<HashMap<String, DropFacts>>>,
}

#[derive(Clone, Copy)]
struct Tick {
    last_sent: Option<Instant>,
    scheduled: bool,
}

impl StockTicker {
    pub fn new(bus: RoomBus, redis: RedisConn, keys: Keys, interval: Duration) -> Self {
        Self {
            bus,
            redis,
            keys,
            interval,
            drops: Arc::default(),
            facts: Arc::default(),
        }
    }

    /// Notes that the stock of `drop_id` changed. The room hears of it at once if the
    /// last event is older than the interval, otherwise once the interval has passed,
    /// with the figure read at that moment.
    pub fn stock_changed(&self, drop_id: &str) {
        let delay = {
            let mut drops = self.drops.lock().expect("stock ticker lock");
            let tick = drops.entry(drop_id.to_string()).or_insert(Tick {
                last_sent: None,
                scheduled: false,
            });
            if tick.scheduled {
                return;
            }
            tick.scheduled = true;
            tick.last_sent
                .map(|at| (at + self.interval).saturating_duration_since(Instant::now()))
                .unwrap_or_default()
        };
        let ticker = self.clone();
        let drop_id = drop_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            ticker.mark_sent(&drop_id);
            if let Err(e) = ticker.publish_stock(&drop_id).await {
                tracing::warn!(%drop_id, error = %e, "could not publish drop.stock");
            }
        });
    }

    fn mark_sent(&self, drop_id: &str) {
        let mut drops = self.drops.lock().expect("stock ticker lock");
        drops.insert(
            drop_id.to_string(),
            Tick {
                last_sent: Some(Instant::now()),
                scheduled: false,
            },
        );
    }

    async fn publish_stock(&self, drop_id: &str) -> Result<(), StockError> {
        let facts = self.facts(drop_id).await?;
        let stock_left = DropMeta::read(&self.redis, &self.keys, drop_id, &[StockLeft])
            .await?
            .require_int(StockLeft)?;
        let event = RoomEvent::Stock {
            drop_id: drop_id.to_string(),
            stock_left,
            stock: facts.stock,
        };
        self.bus.publish(&facts.room_id, &event).await?;
        Ok(())
    }

    /// Tells the room that `drop_id` sold out at `sold_out_at_ms`. Called once, by the
    /// request that took the last unit.
    pub async fn sold_out(&self, drop_id: &str, sold_out_at_ms: i64) -> Result<(), StockError> {
        let facts = self.facts(drop_id).await?;
        let event = RoomEvent::SoldOut {
            drop_id: drop_id.to_string(),
            sold_out_at_ms,
        };
        self.bus.publish(&facts.room_id, &event).await?;
        Ok(())
    }

    /// The room and stock of a drop, read from Redis once and then remembered (they never
    /// change after creation).
    pub async fn facts(&self, drop_id: &str) -> Result<DropFacts, StockError> {
        if let Some(facts) = self.facts.lock().expect("facts lock").get(drop_id) {
            return Ok(facts.clone());
        }
        let meta = DropMeta::read(&self.redis, &self.keys, drop_id, &[RoomId, Stock]).await?;
        let facts = DropFacts {
            room_id: meta.require_text(RoomId)?.to_string(),
            stock: meta.require_int(Stock)?,
        };
        self.facts
            .lock()
            .expect("facts lock")
            .insert(drop_id.to_string(), facts.clone());
        Ok(facts)
    }
}
