//! Lottery draws (ARCHITECTURE.md, "Fairness").
//!
//! At launch a 32-byte seed is drawn and only `seed_hash = hex(SHA-256(seed))` published.
//! Every entry's rank is `hex(HMAC-SHA256(key = seed, message = user id))`; the winners are
//! the entries with the smallest ranks, taken in rank order while their units fit in the
//! stock. After the draw the seed and the cutoff rank (the largest winning rank) are
//! published, so every shopper can check that their rank is at or below the cutoff exactly
//! when they won, and anyone can check the seed against its hash. Neither arrival time nor
//! the number of requests enters the rank.
//!
//! The draw runs once even when several orders processes try at the same moment: the
//! result depends only on the seed and the entries, and `draw.lua` applies it only if no
//! draw was applied before and the entries are still the ones it was computed over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use linkdrop_domain::backends::RedisConn;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::db::Db;
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::events::RoomEvent;
use linkdrop_domain::hash_fields::HashFields;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::room_bus::RoomBus;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::stock::StockTicker;
use crate::store::{self, DrawFigures};

/// Attempts of one draw before giving up (the next order request tries again).
const DRAW_ATTEMPTS: usize = 20;
/// How long one process holds the right to announce a draw.
const ANNOUNCE_LEASE_MS: u64 = 30_000;

/// A new random seed.
pub fn new_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    seed
}

/// `hex(SHA-256(seed))`, published at launch.
pub fn seed_hash(seed: &[u8]) -> String {
    hex::encode(Sha256::digest(seed))
}

/// `hex(HMAC-SHA256(key = seed, message = user_id))`.
pub fn rank(seed: &[u8], user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("HMAC takes keys of any length");
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// One lottery entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user_id: String,
    pub order_id: String,
    pub qty: u32,
}

/// The outcome of a draw over a set of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// Every entry with its rank and whether it won, in rank order.
    pub ranked: Vec<(String, Entry, bool)>,
    /// The largest winning rank; `None` when nobody won.
    pub cutoff_rank: Option<String>,
    pub winners: usize,
}

/// Draws `entries` for `stock` units: smallest ranks first, stopping at the first entry
/// whose units no longer fit, so that "won" is exactly "rank ≤ cutoff".
pub fn draw(seed: &[u8], entries: Vec<Entry>, stock: u32) -> Draw {
    let mut ranked: Vec<(String, Entry)> = entries
        .into_iter()
        .map(|e| (rank(seed, &e.user_id), e))
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    let mut left = stock;
    let mut open = true;
    let mut cutoff_rank = None;
    let mut winners = 0;
    let ranked = ranked
        .into_iter()
        .map(|(rank, entry)| {
            let won = open && entry.qty <= left;
            if won {
                left -= entry.qty;
                cutoff_rank = Some(rank.clone());
                winners += 1;
            } else {
                open = false;
            }
            (rank, entry, won)
        })
        .collect();
    Draw {
        ranked,
        cutoff_rank,
        winners,
    }
}

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
        store::record_draw(&self.db, drop_id, &figures).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                user_id: format!("user-{i}"),
                order_id: format!("ord_{i}"),
                qty: 1,
            })
            .collect()
    }

    #[test]
    fn rank_is_the_hmac_of_the_user_id_under_the_seed() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            rank(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn with_a_fixed_seed_the_winners_are_exactly_the_smallest_ranks() {
        let seed = [7u8; 32];
        let outcome = draw(&seed, entries(50), 10);
        let mut ranks: Vec<String> = (0..50).map(|i| rank(&seed, &format!("user-{i}"))).collect();
        ranks.sort();
        let winners: Vec<&String> = outcome
            .ranked
            .iter()
            .filter(|r| r.2)
            .map(|r| &r.0)
            .collect();
        assert_eq!(winners, ranks.iter().take(10).collect::<Vec<_>>());
        assert_eq!(outcome.cutoff_rank.as_ref(), Some(&ranks[9]));
        assert_eq!(outcome.winners, 10);
    }

    #[test]
    fn winning_is_exactly_having_a_rank_at_or_below_the_cutoff() {
        let seed = [3u8; 32];
        let mut list = entries(20);
        for (i, e) in list.iter_mut().enumerate() {
            e.qty = 1 + (i as u32 % 3);
        }
        let outcome = draw(&seed, list, 17);
        let cutoff = outcome.cutoff_rank.clone().unwrap();
        for (rank, _, won) in &outcome.ranked {
            assert_eq!(*won, rank <= &cutoff, "rank {rank}");
        }
        let taken: u32 = outcome.ranked.iter().filter(|r| r.2).map(|r| r.1.qty).sum();
        assert!(taken <= 17);
    }

    #[test]
    fn fewer_entries_than_units_all_win() {
        let outcome = draw(&[1u8; 32], entries(3), 10);
        assert_eq!(outcome.winners, 3);
    }

    #[test]
    fn nobody_wins_an_empty_draw() {
        let outcome = draw(&[1u8; 32], Vec::new(), 10);
        assert_eq!((outcome.winners, outcome.cutoff_rank), (0, None));
    }

    #[test]
    fn the_seed_hash_is_sha256_of_the_seed() {
        assert_eq!(
            seed_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// Arrival time and repetition cannot enter a rank by construction; this shows it in
    /// outcomes. Users are split into three groups — early senders, late senders, and
    /// users who send ten times — and 400 drops with fresh seeds are drawn (each user holds
    /// one entry whatever they sent: the script keeps one per user). If behaviour mattered,
    /// wins would differ by group. Chi-square test of independence (2 degrees of freedom)
    /// at significance 0.001: critical value 13.82.
    #[test]
    fn sending_earlier_or_more_often_does_not_win_more_often() {
        let groups = ["early", "late", "repeat"];
        let per_group = 30;
        let stock = 30;
        let mut wins = [0u64; 3];
        let drops = 400;
        for _ in 0..drops {
            let seed = new_seed();
            let mut list = Vec::new();
            for (g, name) in groups.iter().enumerate() {
                for i in 0..per_group {
                    let sends = if g == 2 { 10 } else { 1 };
                    let user_id = format!("{name}-{i}");
                    // Ten sends still make one entry: the first one, as admission keeps it.
                    for _ in 0..sends {
                        if !list.iter().any(|e: &Entry| e.user_id == user_id) {
                            list.push(Entry {
                                user_id: user_id.clone(),
                                order_id: format!("ord_{user_id}"),
                                qty: 1,
                            });
                        }
                    }
                }
            }
            // Early senders arrive first, late ones last: arrival order is list order.
            for (_, entry, won) in draw(&seed, list, stock).ranked {
                if won {
                    let g = groups
                        .iter()
                        .position(|n| entry.user_id.starts_with(n))
                        .unwrap();
                    wins[g] += 1;
                }
            }
        }
        let trials = (drops * per_group) as f64;
        let total_wins: u64 = wins.iter().sum();
        let p = total_wins as f64 / (trials * 3.0);
        let chi_square: f64 = wins
            .iter()
            .map(|&w| {
                let (won, lost) = (w as f64, trials - w as f64);
                let (e_won, e_lost) = (trials * p, trials * (1.0 - p));
                (won - e_won).powi(2) / e_won + (lost - e_lost).powi(2) / e_lost
            })
            .sum();
        assert_eq!(total_wins, (drops * stock) as u64);
        assert!(
            chi_square < 13.82,
            "chi-square {chi_square:.2} with wins {wins:?}"
        );
    }
}
