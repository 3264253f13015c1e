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
use linkdrop_domain::drop_meta::DropMetaField;
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::events::{Frame, OrderResult, RoomEvent};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::lottery::{Draw, Entry, draw, rank};
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::drop_meta::DropMeta;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_records::db::Db;
use linkdrop_records::orders::{self, DrawFigures};

use crate::stock::{StockError, StockTicker};

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
    #[error(transparent)]
    Stored(#[from] BadStoredValue),
    #[error(transparent)]
    Stock(#[from] StockError),
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

    /// The lottery as its live state says; [`DrawError::NotALottery`] for a drop that is
    /// not a launched lottery (no policy `lottery`, or no seed yet).
    async fn read_state(&self, drop_id: &str) -> Result<LotteryState, DrawError> {
        use DropMetaField::*;
        let meta = DropMeta::read(
            &self.redis,
            &self.keys,
            drop_id,
            &[Policy, Drawn, Seed, StockLeft, OpensAtMs, WindowMs],
        )
        .await?;
        let lottery = meta.parse(Policy, "fcfs or lottery", |p| match p {
            "lottery" => Some(true),
            "fcfs" => Some(false),
            _ => None,
        })?;
        let seed = meta.parse(Seed, "hex", |s| hex::decode(s).ok())?;
        let (Some(true), Some(seed)) = (lottery, seed) else {
            return Err(DrawError::NotALottery);
        };
        // A launched lottery has all of these.
        let opens_at_ms = meta.require_int(OpensAtMs)?;
        let window_ms = meta.require_int(WindowMs)?;
        Ok(LotteryState {
            drawn: meta.flag(Drawn)?.unwrap_or(false),
            seed,
            stock_left: meta.require(StockLeft, "a count of units", |n| n.parse().ok())?,
            draw_at_ms: opens_at_ms + window_ms,
        })
    }

    async fn read_entries(&self, drop_id: &str) -> Result<Vec<Entry>, DrawError> {
        let key = self.keys.drop_entries(drop_id);
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.redis.clone())
            .await?;
        raw.into_iter()
            .map(|(user_id, value)| {
                let entry = value.split_once('\t').and_then(|(order_id, qty)| {
                    Some(Entry {
                        user_id: user_id.clone(),
                        order_id: order_id.to_string(),
                        qty: qty.parse().ok()?,
                    })
                });
                entry.ok_or_else(|| {
                    DrawError::Stored(BadStoredValue::unparsable(
                        &key,
                        &user_id,
                        "<order id>\\t<qty>",
                        &value,
                    ))
                })
            })
            .collect()
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
        use DropMetaField::*;
        let meta_key = self.keys.drop_meta(drop_id);
        let mut redis = self.redis.clone();
        let announced: Option<String> = redis::cmd("HGET")
            .arg(&meta_key)
            .arg(DrawAnnounced.as_str())
            .query_async(&mut redis)
            .await?;
        if announced.is_some() {
            return Ok(());
        }
        let lease: Option<String> = redis::cmd("SET")
            .arg(self.keys.draw_announcer(drop_id))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ANNOUNCE_LEASE_MS)
            .query_async(&mut redis)
            .await?;
        if lease.is_none() {
            return Ok(());
        }
        // Written by the draw (draw.lua) and the launch before it: all must be there.
        let meta = DropMeta::read(
            &self.redis,
            &self.keys,
            drop_id,
            &[
                RoomId,
                Seed,
                CutoffRank,
                DrawEntries,
                DrawWinners,
                DrawnAtMs,
                SoldOutAtMs,
                PayWithinMs,
            ],
        )
        .await?;
        let room_id = meta.require_text(RoomId)?.to_string();
        let seed = meta.require_text(Seed)?.to_string();
        // Empty when nobody won.
        let cutoff = Some(meta.require_text(CutoffRank)?)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let entries = meta.require_int(DrawEntries)?;
        let winners = meta.require_int(DrawWinners)?;
        let drawn_at_ms = meta.require_int(DrawnAtMs)?;
        let pay_within_ms = meta.require_int(PayWithinMs)?;
        let sold_out_at_ms = meta.int(SoldOutAtMs)?;
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
        let pay_by_ms = drawn_at_ms + pay_within_ms;
        let seed_bytes = meta.require(Seed, "hex", |s| hex::decode(s).ok())?;
        self.notify_entrants(drop_id, &seed_bytes, cutoff.as_deref(), pay_by_ms)
            .await?;
        if let Some(at) = sold_out_at_ms {
            self.stock.sold_out(drop_id, at).await?;
        }
        self.stock.stock_changed(drop_id);
        redis::cmd("HSET")
            .arg(&meta_key)
            .arg(DrawAnnounced.as_str())
            .arg("1")
            .query_async::<()>(&mut redis)
            .await?;
        Ok(())
    }

    /// `order.result` to every entrant: `reserved` when their rank is within the cutoff.
    async fn notify_entrants(
        &self,
        drop_id: &str,
        seed: &[u8],
        cutoff: Option<&str>,
        pay_by_ms: i64,
    ) -> Result<(), DrawError> {
        for entry in self.read_entries(drop_id).await? {
            let won = cutoff.is_some_and(|c| rank(seed, &entry.user_id).as_str() <= c);
            let frame = if won {
                OrderResult::won(&entry.order_id, drop_id, pay_by_ms)
            } else {
                OrderResult::lost(&entry.order_id, drop_id)
            };
            self.bus
                .notify_user(&entry.user_id, &frame.to_text())
                .await?;
        }
        Ok(())
    }
}
