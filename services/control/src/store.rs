//! The drop records, on either system of record: PostgreSQL (the stack) or SQLite (the
//! embedded backend). Each function keeps the PostgreSQL query checked at compile time and
//! its SQLite twin next to it.

use linkdrop_domain::events::merchant_event;
use linkdrop_records::db::{Db, Tx};
use linkdrop_records::webhook_outbox::{self, MerchantEvent};
use serde_json::json;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::live::DropRow;

/// The columns of [`DropRow`], in its order (SQLite twins).
const SQLITE_COLUMNS: &str = "id, room_id, merchant_id, sku, title, image_url, price_cents, \
     currency, stock, max_per_user, policy, window_ms, pay_within_s, phase, opens_at_ms, \
     closed_at_ms, seed_hash, created_at_ms";

/// An `integer` column: `INTEGER` (i64) on SQLite, `i32` in [`DropRow`] as on PostgreSQL.
fn int32(row: &SqliteRow, column: &str) -> Result<i32, sqlx::Error> {
    let value: i64 = row.try_get(column)?;
    i32::try_from(value).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
}

fn sqlite_drop(row: &SqliteRow) -> Result<DropRow, sqlx::Error> {
    let window_ms: Option<i64> = row.try_get("window_ms")?;
    Ok(DropRow {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        merchant_id: row.try_get("merchant_id")?,
        sku: row.try_get("sku")?,
        title: row.try_get("title")?,
        image_url: row.try_get("image_url")?,
        price_cents: row.try_get("price_cents")?,
        currency: row.try_get("currency")?,
        stock: int32(row, "stock")?,
        max_per_user: int32(row, "max_per_user")?,
        policy: row.try_get("policy")?,
        window_ms: window_ms
            .map(|w| {
                i32::try_from(w).map_err(|e| sqlx::Error::ColumnDecode {
                    index: "window_ms".into(),
                    source: Box::new(e),
                })
            })
            .transpose()?,
        pay_within_s: int32(row, "pay_within_s")?,
        phase: row.try_get("phase")?,
        opens_at_ms: row.try_get("opens_at_ms")?,
        closed_at_ms: row.try_get("closed_at_ms")?,
        seed_hash: row.try_get("seed_hash")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Stores a new (draft) drop.
pub async fn insert(db: &Db, row: &DropRow) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query!(
                "INSERT INTO drops (id, room_id, merchant_id, sku, title, image_url, price_cents,
                            currency, stock, max_per_user, policy, window_ms, pay_within_s,
                            created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                row.id,
                row.room_id,
                row.merchant_id,
                row.sku,
                row.title,
                row.image_url,
                row.price_cents,
                row.currency,
                row.stock,
                row.max_per_user,
                row.policy,
                row.window_ms,
                row.pay_within_s,
                row.created_at_ms
            )
            .execute(pool)
            .await?;
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "INSERT INTO drops (id, room_id, merchant_id, sku, title, image_url, price_cents,
                                    currency, stock, max_per_user, policy, window_ms,
                                    pay_within_s, created_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&row.id)
            .bind(&row.room_id)
            .bind(&row.merchant_id)
            .bind(&row.sku)
            .bind(&row.title)
            .bind(&row.image_url)
            .bind(row.price_cents)
            .bind(&row.currency)
            .bind(row.stock)
            .bind(row.max_per_user)
            .bind(&row.policy)
            .bind(row.window_ms)
            .bind(row.pay_within_s)
            .bind(row.created_at_ms)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// The drop `drop_id`, if it exists.
pub async fn find(db: &Db, drop_id: &str) -> Result<Option<DropRow>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
            DropRow,
            "SELECT id, room_id, merchant_id, sku, title, image_url, price_cents, currency, stock,
                max_per_user, policy, window_ms, pay_within_s, phase, opens_at_ms,
                closed_at_ms, seed_hash, created_at_ms
         FROM drops WHERE id = $1",
            drop_id
        )
            .fetch_optional(pool)
            .await
        }
        Db::Sqlite(pool) => {
            sqlx::query(&format!("SELECT {SQLITE_COLUMNS} FROM drops WHERE id = ?"))
                .bind(drop_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(sqlite_drop)
                .transpose()
        }
    }
}

/// The newest 200 drops of a room, newest first (ids grow with time).
pub async fn list_room(db: &Db, room_id: &str) -> Result<Vec<DropRow>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
            DropRow,
            "SELECT id, room_id, merchant_id, sku, title, image_url, price_cents, currency, stock,
                max_per_user, policy, window_ms, pay_within_s, phase, opens_at_ms,
                closed_at_ms, seed_hash, created_at_ms
         FROM drops WHERE room_id = $1 ORDER BY id DESC LIMIT 200",
            room_id
        )
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => sqlx::query(&format!(
            "SELECT {SQLITE_COLUMNS} FROM drops WHERE room_id = ? ORDER BY id DESC LIMIT 200"
        ))
        .bind(room_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(sqlite_drop)
        .collect(),
    }
}

/// Records a launch: the opening time and, for a lottery, the published seed hash.
pub async fn record_launch(
    db: &Db,
    drop_id: &str,
    opens_at_ms: i64,
    seed_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query!(
                "UPDATE drops SET phase = 'launched', opens_at_ms = $2, seed_hash = $3 WHERE id = $1",
                drop_id,
                opens_at_ms,
                seed_hash
            )
            .execute(pool)
            .await?;
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "UPDATE drops SET phase = 'launched', opens_at_ms = ?2, seed_hash = ?3 WHERE id = ?1",
            )
            .bind(drop_id)
            .bind(opens_at_ms)
            .bind(seed_hash)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Records the close of `row` at `closed_at_ms` unless it was recorded before, and in the
/// same transaction the merchant's `drop.closed` event (stamped `now_ms`): both once, so a
/// retried close repairs a record an earlier call missed without announcing it twice.
/// Whether this call recorded it.
pub async fn record_close(
    db: &Db,
    row: &DropRow,
    closed_at_ms: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let recorded = mark_closed(&mut tx, &row.id, closed_at_ms).await?;
    if recorded {
        let data = json!({"drop_id": row.id, "merchant_id": row.merchant_id, "closed_at_ms": closed_at_ms});
        let event = MerchantEvent::new(
            &row.id,
            &row.merchant_id,
            merchant_event::DROP_CLOSED,
            &data,
            now_ms,
        );
        webhook_outbox::enqueue(&mut tx, &[event], now_ms).await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// Sets the drop closed if it is not yet: whether it changed.
async fn mark_closed(tx: &mut Tx, drop_id: &str, closed_at_ms: i64) -> Result<bool, sqlx::Error> {
    let result = match tx {
        Tx::Postgres(tx) => sqlx::query!(
            "UPDATE drops SET phase = 'closed', closed_at_ms = $2
         WHERE id = $1 AND closed_at_ms IS NULL",
            drop_id,
            closed_at_ms
        )
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Tx::Sqlite { tx, .. } => sqlx::query(
            "UPDATE drops SET phase = 'closed', closed_at_ms = ?2
             WHERE id = ?1 AND closed_at_ms IS NULL",
        )
        .bind(drop_id)
        .bind(closed_at_ms)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
    };
    Ok(result == 1)
}
