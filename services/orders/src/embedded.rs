//! The embedded backend's drops (issue 9): every drop lives in memory as a [`MemoryDrop`],
//! and every decision that changes one is appended to a journal in SQLite — in the same
//! step, before the caller may answer. At start the journal is replayed through the same
//! deterministic engine (each command with the time and order id it was decided with), so
//! a restart, even after SIGKILL, comes back with exactly the stock, holders, recorded
//! answers and orders that were acknowledged.
//!
//! The journal is also the embedded queue: each entry carries the order events its decision
//! produced, which is what Redis's outbox streams and Kafka carry on the stack; the
//! projection ([`crate::projection`]) reads them in journal order into SQLite's `orders`,
//! woken by [`EmbeddedDrops::journaled`]. Not yet used by the binary.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::OrderEvent;
use linkdrop_domain::ids::new_order_id;
use linkdrop_domain::model::{Fairness, IdempotencyKey, Quantity};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use tokio::sync::{Mutex, Notify};

use crate::admission::Decision;
use crate::lifecycle::{Expiry, Payment};
use crate::memory::{MemoryDrop, Terms};

/// One change to a drop, as journaled: replaying it at `at_ms` decides the same again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
enum Command {
    Create {
        stock: u32,
        max_per_user: u32,
        pay_within_ms: i64,
        fairness: Fairness,
    },
    Launch {
        opens_at_ms: i64,
    },
    Close,
    Admit {
        user_id: String,
        key: String,
        qty: u32,
        order_id: String,
    },
    Pay {
        order_id: String,
        user_id: String,
        payment_ref: String,
    },
    Expire {
        order_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("journal entry {seq} is not a command: {problem}")]
    Journal { seq: i64, problem: String },
    #[error("no drop {0}")]
    NoDrop(String),
}

/// Every drop of the process, journaled in SQLite.
pub struct EmbeddedDrops {
    db: SqlitePool,
    /// One lock for all drops: a decision and its journal entry happen together, in
    /// journal order.
    drops: Mutex<HashMap<String, MemoryDrop>>,
    /// Woken after every journal entry: the in-process queue's doorbell.
    journaled: Arc<Notify>,
}

impl EmbeddedDrops {
    /// Opens (or creates) the journal at `path` and rebuilds every drop from it.
    pub async fn open(path: &Path) -> Result<Self, EmbeddedError> {
        // WAL with synchronous=NORMAL: a committed entry survives the process dying at any
        // moment (it is in the operating system's hands); only a crash of the machine
        // itself may lose the last ones.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let db = SqlitePool::connect_with(options).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS drop_journal (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 drop_id TEXT NOT NULL,
                 at_ms INTEGER NOT NULL,
                 command TEXT NOT NULL,
                 events TEXT NOT NULL
             )",
        )
        .execute(&db)
        .await?;
        let drops = replay(&db).await?;
        Ok(Self {
            db,
            drops: Mutex::new(drops),
            journaled: Arc::new(Notify::new()),
        })
    }

    /// The SQLite database the journal is in, for the projections.
    pub fn db(&self) -> &SqlitePool {
        &self.db
    }

    /// Notified after each journal entry.
    pub fn journaled(&self) -> Arc<Notify> {
        self.journaled.clone()
    }

    pub async fn create_drop(&self, drop_id: &str, terms: Terms) -> Result<(), EmbeddedError> {
        let command = Command::Create {
            stock: terms.stock,
            max_per_user: terms.max_per_user,
            pay_within_ms: terms.pay_within_ms,
            fairness: terms.fairness,
        };
        let mut drops = self.drops.lock().await;
        journal(&self.db, drop_id, now_ms(), &command, &[]).await?;
        drops.insert(drop_id.to_string(), MemoryDrop::new(drop_id, terms));
        Ok(())
    }

    pub async fn launch(&self, drop_id: &str, opens_at_ms: i64) -> Result<(), EmbeddedError> {
        self.change(drop_id, Command::Launch { opens_at_ms }).await
    }

    pub async fn close(&self, drop_id: &str) -> Result<(), EmbeddedError> {
        self.change(drop_id, Command::Close).await
    }

    /// Admits one order request; a final answer is journaled before it is returned.
    pub async fn admit(
        &self,
        drop_id: &str,
        user_id: &str,
        key: &IdempotencyKey,
        qty: Quantity,
    ) -> Result<Decision, EmbeddedError> {
        let mut drops = self.drops.lock().await;
        let drop = drops
            .get_mut(drop_id)
            .ok_or_else(|| EmbeddedError::NoDrop(drop_id.to_string()))?;
        let at_ms = now_ms();
        let order_id = new_order_id(drop_id);
        let before = drop.events_appended();
        let decision = drop.admit(at_ms, user_id, key, qty, &order_id);
        if matches!(decision, Decision::Fresh { .. }) {
            let command = Command::Admit {
                user_id: user_id.to_string(),
                key: key.as_str().to_string(),
                qty: qty.get(),
                order_id,
            };
            self.journal_or_forget(&mut drops, drop_id, at_ms, &command, before)
                .await?;
        }
        Ok(decision)
    }

    /// Pays an order; a payment (or the expiry a late one causes) is journaled first.
    pub async fn pay(
        &self,
        drop_id: &str,
        order_id: &str,
        user_id: &str,
        payment_ref: &str,
    ) -> Result<Payment, EmbeddedError> {
        let command = Command::Pay {
            order_id: order_id.to_string(),
            user_id: user_id.to_string(),
            payment_ref: payment_ref.to_string(),
        };
        let mut drops = self.drops.lock().await;
        let (at_ms, before, changed, payment) = {
            let drop = drops
                .get_mut(drop_id)
                .ok_or_else(|| EmbeddedError::NoDrop(drop_id.to_string()))?;
            let before = drop.events_appended();
            let at_ms = now_ms();
            let payment = drop.pay(at_ms, order_id, user_id, payment_ref);
            (at_ms, before, drop.events_appended() != before, payment)
        };
        if changed {
            self.journal_or_forget(&mut drops, drop_id, at_ms, &command, before)
                .await?;
        }
        Ok(payment)
    }

    /// Expires an order if it is overdue; an expiry is journaled first.
    pub async fn expire(&self, drop_id: &str, order_id: &str) -> Result<Expiry, EmbeddedError> {
        let mut drops = self.drops.lock().await;
        let at_ms = now_ms();
        let drop = drops
            .get_mut(drop_id)
            .ok_or_else(|| EmbeddedError::NoDrop(drop_id.to_string()))?;
        let before = drop.events_appended();
        let expiry = drop.expire(at_ms, order_id);
        if matches!(expiry, Expiry::Expired { .. }) {
            let command = Command::Expire {
                order_id: order_id.to_string(),
            };
            self.journal_or_forget(&mut drops, drop_id, at_ms, &command, before)
                .await?;
        }
        Ok(expiry)
    }

    /// Runs `f` on a drop's state (for figures and checks).
    pub async fn inspect<T>(
        &self,
        drop_id: &str,
        f: impl FnOnce(&MemoryDrop) -> T,
    ) -> Result<T, EmbeddedError> {
        let drops = self.drops.lock().await;
        let drop = drops
            .get(drop_id)
            .ok_or_else(|| EmbeddedError::NoDrop(drop_id.to_string()))?;
        Ok(f(drop))
    }

    /// Applies a command that needs no decision (launch, close) and journals it.
    async fn change(&self, drop_id: &str, command: Command) -> Result<(), EmbeddedError> {
        let mut drops = self.drops.lock().await;
        let drop = drops
            .get_mut(drop_id)
            .ok_or_else(|| EmbeddedError::NoDrop(drop_id.to_string()))?;
        let at_ms = now_ms();
        let before = drop.events_appended();
        apply(drop, at_ms, &command);
        self.journal_or_forget(&mut drops, drop_id, at_ms, &command, before)
            .await
    }

    /// Journals a change already made in memory with the events it produced (those after
    /// the first `events_before`); when that fails, the drop is rebuilt from the journal,
    /// so memory never holds what SQLite does not.
    async fn journal_or_forget(
        &self,
        drops: &mut HashMap<String, MemoryDrop>,
        drop_id: &str,
        at_ms: i64,
        command: &Command,
        events_before: usize,
    ) -> Result<(), EmbeddedError> {
        let events = drops
            .get(drop_id)
            .map(|d| d.events_since(events_before).to_vec())
            .unwrap_or_default();
        let Err(e) = journal(&self.db, drop_id, at_ms, command, &events).await else {
            self.journaled.notify_waiters();
            return Ok(());
        };
        match replay_drop(&self.db, drop_id).await {
            Ok(Some(drop)) => {
                drops.insert(drop_id.to_string(), drop);
            }
            _ => {
                drops.remove(drop_id);
            }
        }
        Err(e)
    }
}

async fn journal(
    db: &SqlitePool,
    drop_id: &str,
    at_ms: i64,
    command: &Command,
    events: &[OrderEvent],
) -> Result<(), EmbeddedError> {
    let command = serde_json::to_string(command).expect("commands serialize");
    let events = serde_json::to_string(events).expect("events serialize");
    sqlx::query("INSERT INTO drop_journal (drop_id, at_ms, command, events) VALUES (?, ?, ?, ?)")
        .bind(drop_id)
        .bind(at_ms)
        .bind(command)
        .bind(events)
        .execute(db)
        .await?;
    Ok(())
}

/// Every drop, rebuilt from the whole journal.
async fn replay(db: &SqlitePool) -> Result<HashMap<String, MemoryDrop>, EmbeddedError> {
    let rows: Vec<(i64, String, i64, String)> =
        sqlx::query_as("SELECT seq, drop_id, at_ms, command FROM drop_journal ORDER BY seq")
            .fetch_all(db)
            .await?;
    let mut drops = HashMap::new();
    for (seq, drop_id, at_ms, text) in rows {
        replay_entry(&mut drops, seq, &drop_id, at_ms, &text)?;
    }
    Ok(drops)
}

/// One drop, rebuilt from its journal entries.
async fn replay_drop(db: &SqlitePool, drop_id: &str) -> Result<Option<MemoryDrop>, EmbeddedError> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT seq, at_ms, command FROM drop_journal WHERE drop_id = ? ORDER BY seq",
    )
    .bind(drop_id)
    .fetch_all(db)
    .await?;
    let mut drops = HashMap::new();
    for (seq, at_ms, text) in rows {
        replay_entry(&mut drops, seq, drop_id, at_ms, &text)?;
    }
    Ok(drops.remove(drop_id))
}

fn replay_entry(
    drops: &mut HashMap<String, MemoryDrop>,
    seq: i64,
    drop_id: &str,
    at_ms: i64,
    text: &str,
) -> Result<(), EmbeddedError> {
    let bad = |problem: String| EmbeddedError::Journal { seq, problem };
    let command: Command = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if let Command::Create {
        stock,
        max_per_user,
        pay_within_ms,
        fairness,
    } = command
    {
        let terms = Terms {
            stock,
            max_per_user,
            pay_within_ms,
            fairness,
        };
        drops.insert(drop_id.to_string(), MemoryDrop::new(drop_id, terms));
        return Ok(());
    }
    let drop = drops
        .get_mut(drop_id)
        .ok_or_else(|| bad(format!("{drop_id} changed before it was created")))?;
    apply(drop, at_ms, &command);
    Ok(())
}

/// Applies a journaled command to its drop, deciding as it was decided.
fn apply(drop: &mut MemoryDrop, at_ms: i64, command: &Command) {
    match command {
        Command::Create { .. } => {}
        Command::Launch { opens_at_ms } => drop.launch(*opens_at_ms),
        Command::Close => drop.close(),
        Command::Admit {
            user_id,
            key,
            qty,
            order_id,
        } => {
            let (Ok(key), Ok(qty)) = (
                IdempotencyKey::parse(Some(key)),
                Quantity::parse(i64::from(*qty)),
            ) else {
                return;
            };
            drop.admit(at_ms, user_id, &key, qty, order_id);
        }
        Command::Pay {
            order_id,
            user_id,
            payment_ref,
        } => {
            drop.pay(at_ms, order_id, user_id, payment_ref);
        }
        Command::Expire { order_id } => {
            drop.expire(at_ms, order_id);
        }
    }
}
