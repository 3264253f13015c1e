//! The embedded backend's settlement (issue 9): the order events in the drops' journal
//! ([`crate::embedded`]), read in journal order into SQLite's `orders` table — what the
//! relay, Kafka and the settlement role do on the stack. Each batch and the position it
//! reached are committed together, so every event is applied exactly once however often
//! the projection stops and starts.

use linkdrop_domain::events::OrderEvent;
use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

use crate::embedded::EmbeddedError;

/// Journal entries one projection step takes.
pub const BATCH: i64 = 500;

/// Creates the projection's tables unless they exist.
pub async fn ensure_tables(db: &SqlitePool) -> Result<(), EmbeddedError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (
             order_id TEXT PRIMARY KEY,
             drop_id TEXT NOT NULL,
             user_id TEXT NOT NULL,
             qty INTEGER NOT NULL,
             status TEXT NOT NULL,
             admitted_at_ms INTEGER NOT NULL,
             pay_by_ms INTEGER,
             paid_at_ms INTEGER,
             payment_ref TEXT,
             idempotency_key TEXT NOT NULL
         )",
    )
    .execute(db)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS projection_position (
             name TEXT PRIMARY KEY,
             seq INTEGER NOT NULL
         )",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Applies the next journal entries after the projection's position, up to `batch`; how
/// many entries it took (0 when it is up to date).
pub async fn step(db: &SqlitePool, batch: i64) -> Result<usize, EmbeddedError> {
    let mut tx = db.begin().await?;
    let position: i64 =
        sqlx::query_scalar("SELECT seq FROM projection_position WHERE name = 'orders'")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
    let entries: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, events FROM drop_journal WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(position)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
    let Some((last, _)) = entries.last() else {
        return Ok(0);
    };
    let last = *last;
    for (seq, text) in &entries {
        let events: Vec<OrderEvent> =
            serde_json::from_str(text).map_err(|e| EmbeddedError::Journal {
                seq: *seq,
                problem: e.to_string(),
            })?;
        for event in &events {
            apply(&mut tx, event).await?;
        }
    }
    sqlx::query(
        "INSERT INTO projection_position (name, seq) VALUES ('orders', ?)
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
    )
    .bind(last)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(entries.len())
}

/// Applies steps until the projection is up to date; how many entries it took.
pub async fn catch_up(db: &SqlitePool) -> Result<usize, EmbeddedError> {
    let mut total = 0;
    loop {
        match step(db, BATCH).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

async fn apply(tx: &mut Transaction<'_, Sqlite>, event: &OrderEvent) -> Result<(), sqlx::Error> {
    match event {
        OrderEvent::Accepted(order) => {
            sqlx::query(
                "INSERT INTO orders (order_id, drop_id, user_id, qty, status, admitted_at_ms,
                                     pay_by_ms, idempotency_key)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&order.order_id)
            .bind(&order.drop_id)
            .bind(&order.user_id)
            .bind(order.qty)
            .bind(order.status.as_str())
            .bind(order.admitted_at_ms)
            .bind(order.pay_by_ms)
            .bind(&order.idempotency_key)
            .execute(&mut **tx)
            .await?;
        }
        OrderEvent::Drawn(drawn) => {
            sqlx::query("UPDATE orders SET status = ?, pay_by_ms = ? WHERE order_id = ?")
                .bind(drawn.status.as_str())
                .bind(drawn.pay_by_ms)
                .bind(&drawn.order_id)
                .execute(&mut **tx)
                .await?;
        }
        OrderEvent::Paid(paid) => {
            sqlx::query(
                "UPDATE orders SET status = 'paid', paid_at_ms = ?, payment_ref = ?
                 WHERE order_id = ?",
            )
            .bind(paid.paid_at_ms)
            .bind(&paid.payment_ref)
            .bind(&paid.order_id)
            .execute(&mut **tx)
            .await?;
        }
        OrderEvent::Expired(expired) => {
            sqlx::query("UPDATE orders SET status = 'expired' WHERE order_id = ?")
                .bind(&expired.order_id)
                .execute(&mut **tx)
                .await?;
        }
        OrderEvent::SoldOut(_) => {}
    }
    Ok(())
}
