//! Rooms on PostgreSQL.

use linkdrop_domain::model::Room;
use sqlx::PgPool;

pub(super) async fn insert(pool: &PgPool, room: &Room) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO rooms (id, title, merchant_id, created_at_ms) VALUES ($1, $2, $3, $4)",
        room.id,
        room.title,
        room.merchant_id,
        room.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find(pool: &PgPool, room_id: &str) -> Result<Option<Room>, sqlx::Error> {
    sqlx::query_as!(
        Room,
        "SELECT id, title, merchant_id, created_at_ms FROM rooms WHERE id = $1",
        room_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn list(
    pool: &PgPool,
    merchant_id: Option<&str>,
) -> Result<Vec<Room>, sqlx::Error> {
    sqlx::query_as!(
        Room,
        "SELECT id, title, merchant_id, created_at_ms FROM rooms
         WHERE ($1::text IS NULL OR merchant_id = $1)
         ORDER BY id DESC LIMIT 200",
        merchant_id
    )
    .fetch_all(pool)
    .await
}
