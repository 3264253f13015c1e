//! Drops on PostgreSQL.

use sqlx::{PgConnection, PgPool};

use super::{DropRecord, DropRow};

pub(super) async fn insert(pool: &PgPool, drop: &DropRecord) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO drops (id, room_id, merchant_id, sku, title, image_url, price_cents,
                            currency, stock, max_per_user, policy, window_ms, pay_within_s,
                            created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        drop.fairness.policy(),
        drop.window_ms_column(),
        drop.pay_within_s,
        drop.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find(pool: &PgPool, drop_id: &str) -> Result<Option<DropRow>, sqlx::Error> {
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

pub(super) async fn list_room(pool: &PgPool, room_id: &str) -> Result<Vec<DropRow>, sqlx::Error> {
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

pub(super) async fn record_launch(
    pool: &PgPool,
    drop_id: &str,
    opens_at_ms: i64,
    seed_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE drops SET phase = 'launched', opens_at_ms = $2, seed_hash = $3 WHERE id = $1",
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
    tx: &mut PgConnection,
    drop_id: &str,
    closed_at_ms: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query!(
        "UPDATE drops SET phase = 'closed', closed_at_ms = $2
         WHERE id = $1 AND closed_at_ms IS NULL",
        drop_id,
        closed_at_ms
    )
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed == 1)
}
