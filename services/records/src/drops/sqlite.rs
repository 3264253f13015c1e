//! Drops on SQLite, where integers are 64-bit: the `integer` columns of PostgreSQL are read
//! as `i32` (an error if one does not fit).

use sqlx::{SqliteConnection, SqlitePool};

use super::{DropRecord, DropRow};

pub(super) async fn insert(pool: &SqlitePool, drop: &DropRecord) -> Result<(), sqlx::Error> {
    let policy = drop.fairness.policy();
    let window_ms = drop.window_ms_column();
    sqlx::query!(
        "INSERT INTO drops (id, room_id, merchant_id, sku, title, image_url, price_cents,
                            currency, stock, max_per_user, policy, window_ms, pay_within_s,
                            created_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        drop.id,
        drop.room_id,
        drop.merchant_id,
        drop.sku,
        drop.title,
        drop.image_url,
        drop.price_cents,
        drop.currency,
        drop.stock,
        drop.max_per_user,
        policy,
        window_ms,
        drop.pay_within_s,
        drop.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find(pool: &SqlitePool, drop_id: &str) -> Result<Option<DropRow>, sqlx::Error> {
    sqlx::query_as!(
        DropRow,
        r#"SELECT id AS "id!", room_id, merchant_id, sku, title, image_url, price_cents,
                  currency, stock AS "stock: i32", max_per_user AS "max_per_user: i32", policy,
                  window_ms AS "window_ms: i32", pay_within_s AS "pay_within_s: i32", phase,
                  opens_at_ms, closed_at_ms, seed_hash, created_at_ms
           FROM drops WHERE id = ?"#,
        drop_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn list_room(
    pool: &SqlitePool,
    room_id: &str,
) -> Result<Vec<DropRow>, sqlx::Error> {
    sqlx::query_as!(
        DropRow,
        r#"SELECT id AS "id!", room_id, merchant_id, sku, title, image_url, price_cents,
                  currency, stock AS "stock: i32", max_per_user AS "max_per_user: i32", policy,
                  window_ms AS "window_ms: i32", pay_within_s AS "pay_within_s: i32", phase,
                  opens_at_ms, closed_at_ms, seed_hash, created_at_ms
           FROM drops WHERE room_id = ? ORDER BY id DESC LIMIT 200"#,
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn record_launch(
    pool: &SqlitePool,
    drop_id: &str,
    opens_at_ms: i64,
    seed_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE drops SET phase = 'launched', opens_at_ms = ?2, seed_hash = ?3 WHERE id = ?1",
        drop_id,
        opens_at_ms,
        seed_hash
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the drop closed if it is not yet: whether it changed.
pub(super) async fn mark_closed(
    tx: &mut SqliteConnection,
    drop_id: &str,
    closed_at_ms: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query!(
        "UPDATE drops SET phase = 'closed', closed_at_ms = ?2
         WHERE id = ?1 AND closed_at_ms IS NULL",
        drop_id,
        closed_at_ms
    )
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed == 1)
}
