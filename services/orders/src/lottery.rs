//! The lottery drawer: runs each lottery drop's draw when its entry window closes, applies
//! it (`draw.lua`) and announces it. The mathematics (seed, ranks, winners) are
//! `linkdrop_domain::lottery`.
//!
//! The draw runs once even when several orders processes try at the same moment: the
//! result depends only on the seed and the entries, and `draw.lua` applies it only if no
//! draw was applied before and the entries are still the ones it was computed over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::events::RoomEvent;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::lottery::{Draw, Entry, draw, rank};
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::hash_fields::HashFields;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_records::db::Db;
use linkdrop_records::orders::{self, DrawFigures};
use serde_json::json;

use crate::stock::StockTicker;

/// Attempts of one draw before giving up (the next order request tries again).
const DRAW_ATTEMPTS: usize = 20;
/// How long one process holds the right to announce a draw.
const ANNOUNCE_LEASE_MS: u64 = 30_000;

/// Why a draw could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the drop is not a launched lottery with a seed")]
    NotALottery,
    #[error("the draw did not settle after {DRAW_ATTEMPTS} attempts")]
    Unsettled,
}

/// Runs lottery draws and announces them.
#[derive(Clone)]
pub struct Drawer {
    redis: RedisConn,
    keys: Keys,
    bus: RoomBus,
    stock: StockTicker,
    db: Db,
    script: redis::Script,
    /// Drops whose draw this process has scheduled.
    scheduled: Arc<Mutex<HashSet<String>>>,
}

/// What a drop's meta says about its lottery.
struct LotteryState {
    drawn: bool,
    seed: Vec<u8>,
    stock_left: u32,
    draw_at_ms: i64,
}

impl Drawer {
    pub fn new(redis: RedisConn, keys: Keys, bus: RoomBus, stock: StockTicker, db: Db) -> Self {
        Self {
            redis,
            keys,
            bus,
            stock,
            db,
            script: redis::Script::new(&with_news(include_str!("draw.lua"))),
            scheduled: Arc::default(),
        }
    }

    /// Makes sure this process draws `drop_id` at `draw_at_ms` (once per process).
    pub fn schedule(&self, drop_id: &str, draw_at_ms: i64) {
        if !self
            .scheduled
            .lock()
            .expect("schedule lock")
            .insert(drop_id.to_string())
        {
            return;
        }
        let drawer = self.clone();
        let drop_id = drop_id.to_string();
        tokio::spawn(async move {
            let wait = (draw_at_ms - now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if let Err(e) = drawer.draw(&drop_id).await {
                tracing::warn!(%drop_id, error = %e, "scheduled draw failed; the next order retries it");
                drawer
                    .scheduled
                    .lock()
                    .expect("schedule lock")
                    .remove(&drop_id);
            }
        });
    }

    /// Draws `drop_id` unless it was drawn, then announces the result (once).
    pub async fn draw(&self, drop_id: &str) -> Result<(), DrawError> {
        for _ in 0..DRAW_ATTEMPTS {
            let state = self.read_state(drop_id).await?;
            if state.drawn {
                return self.announce(drop_id).await;
            }
            let wait = state.draw_at_ms - now_ms();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            let entries = self.read_entries(drop_id).await?;
            let count = entries.len();
            let outcome = draw(&state.seed, entries, state.stock_left);
            let reply = self.apply(drop_id, count, &outcome).await?;
            match reply.first().map(String::as_str) {
                Some("drawn") => {
                    tracing::info!(%drop_id, entries = count, winners = outcome.winners, "lottery drawn");
                    metrics::counter!("linkdrop_lottery_draws_total").increment(1);
                    return self.announce(drop_id).await;
                }
                Some("already") => return self.announce(drop_id).await,
                // Redis time had not reached the draw yet; wait a little and retry.
                Some("too_early") => tokio::time::sleep(Duration::from_millis(20)).await,
                // An entry arrived between reading and applying; read again.
                _ => {}
            }
        }
        Err(DrawError::Unsettled)
    }

    async fn read_state(&self, drop_id: &str) -> Result<LotteryState, DrawError> {
        let meta = HashFields::read(
            &self.redis,
            &self.keys.drop_meta(drop_id),
            &[
                "policy",
                "drawn",
                "seed",
                "stock_left",
                "opens_at_ms",
                "window_ms",
            ],
        )
        .await?;
        let seed = meta.text("seed").and_then(|s| hex::decode(s).ok());
        let stock_left = meta.int("stock_left").and_then(|n| u32::try_from(n).ok());
        match (
            meta.text("policy"),
            seed,
            stock_left,
            meta.int("opens_at_ms"),
            meta.int("window_ms"),
        ) {
            (Some("lottery"), Some(seed), Some(stock_left), Some(opens), Some(window)) => {
                Ok(LotteryState {
                    drawn: meta.text("drawn") == Some("1"),
                    seed,
                    stock_left,
                    draw_at_ms: opens + window,
                })
            }
            _ => Err(DrawError::NotALottery),
        }
    }

    async fn read_entries(&self, drop_id: &str) -> Result<Vec<Entry>, DrawError> {
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.keys.drop_entries(drop_id))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(raw
            .into_iter()
            .filter_map(|(user_id, value)| {
                let (order_id, qty) = value.split_once('\t')?;
                Some(Entry {
                    user_id,
                    order_id: order_id.to_string(),
                    qty: qty.parse().ok()?,
                })
            })
            .collect())
    }

    async fn apply(
        &self,
        drop_id: &str,
        count: usize,
        outcome: &Draw,
    ) -> Result<Vec<String>, DrawError> {
        let mut invocation = self.script.key(self.keys.drop_meta(drop_id));
        invocation
            .key(self.keys.drop_holders(drop_id))
            .key(self.keys.drop_outbox(drop_id))
            .key(self.keys.drop_entries(drop_id))
            .key(self.keys.drop_orders(drop_id))
            .key(self.keys.drop_deadlines(drop_id))
            .arg(self.keys.drop_news_channel())
            .arg(drop_id)
            .arg(count)
            .arg(outcome.cutoff_rank.clone().unwrap_or_default())
            .arg(outcome.winners);
        for (_, entry, won) in &outcome.ranked {
            invocation
                .arg(&entry.user_id)
                .arg(&entry.order_id)
                .arg(entry.qty)
                .arg(if *won { "1" } else { "0" });
        }
        Ok(invocation.invoke_async(&mut self.redis.clone()).await?)
    }

    /// Publishes the seed to the room, each entry's result to its shopper, the figures to
    /// the system of record, and the stock to the room. One process announces; a process
    /// that dies while announcing leaves it to the next caller once its lease expires.
    async fn announce(&self, drop_id: &str) -> Result<(), DrawError> {
        let meta_key = self.keys.drop_meta(drop_id);
        let mut redis = self.redis.clone();
        let announced: Option<String> = redis::cmd("HGET")
            .arg(&meta_key)
            .arg("draw_announced")
            .query_async(&mut redis)
            .await?;
        if announced.is_some() {
            return Ok(());
        }
        let lease: Option<String> = redis::cmd("SET")
            .arg(format!("{meta_key}:announcing"))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ANNOUNCE_LEASE_MS)
            .query_async(&mut redis)
            .await?;
        if lease.is_none() {
            return Ok(());
        }
        let meta = HashFields::read(
            &self.redis,
            &meta_key,
            &[
                "room_id",
                "seed",
                "cutoff_rank",
                "draw_entries",
                "draw_winners",
                "drawn_at_ms",
                "sold_out_at_ms",
                "pay_within_ms",
            ],
        )
        .await?;
        let room_id = meta.text("room_id").unwrap_or_default().to_string();
        let seed = meta.text("seed").unwrap_or_default().to_string();
        let cutoff = meta
            .text("cutoff_rank")
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let entries = meta.int("draw_entries").unwrap_or(0);
        let winners = meta.int("draw_winners").unwrap_or(0);
        let drawn_at_ms = meta.int("drawn_at_ms").unwrap_or(0);
        let figures = DrawFigures {
            seed: &seed,
            cutoff_rank: cutoff.as_deref(),
            entries,
            winners,
            drawn_at_ms,
        };
        orders::record_draw(&self.db, drop_id, &figures).await?;
        let event = RoomEvent::Draw {
            drop_id: drop_id.to_string(),
            seed: seed.clone(),
            winners: winners as u64,
            cutoff_rank: cutoff.clone(),
        };
        self.bus.publish(&room_id, &event).await?;
        let pay_by_ms = drawn_at_ms + meta.int("pay_within_ms").unwrap_or(0);
        self.notify_entrants(drop_id, &seed, cutoff.as_deref(), pay_by_ms)
            .await?;
        if let Some(at) = meta.int("sold_out_at_ms") {
            self.stock.sold_out(drop_id, at).await?;
        }
        self.stock.stock_changed(drop_id);
        redis::cmd("HSET")
            .arg(&meta_key)
            .arg("draw_announced")
            .arg("1")
            .query_async::<()>(&mut redis)
            .await?;
        Ok(())
    }

    /// `order.result` to every entrant: `reserved` when their rank is within the cutoff.
    async fn notify_entrants(
        &self,
        drop_id: &str,
        seed_hex: &str,
        cutoff: Option<&str>,
        pay_by_ms: i64,
    ) -> Result<(), DrawError> {
        let seed = hex::decode(seed_hex).unwrap_or_default();
        for entry in self.read_entries(drop_id).await? {
            let won = cutoff.is_some_and(|c| rank(&seed, &entry.user_id).as_str() <= c);
            let frame = if won {
                json!({"type": "order.result", "order_id": entry.order_id, "drop_id": drop_id,
                       "status": "reserved", "pay_by_ms": pay_by_ms})
            } else {
                json!({"type": "order.result", "order_id": entry.order_id, "drop_id": drop_id,
                       "status": "lost"})
            };
            self.bus
                .notify_user(&entry.user_id, &frame.to_string())
                .await?;
        }
        Ok(())
    }
}
