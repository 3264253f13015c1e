//! Rooms on SQLite.

use linkdrop_domain::model::Room;
use sqlx::SqlitePool;

pub(super) async fn insert(pool: &SqlitePool, room: &Room) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO rooms (id, title, merchant_id, created_at_ms) VALUES (?, ?, ?, ?)",
        room.id,
        room.title,
        room.merchant_id,
        room.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find(pool: &SqlitePool, room_id: &str) -> Result<Option<Room>, sqlx::Error> {
    sqlx::query_as!(
        Room,
        r#"SELECT id AS "id!", title, merchant_id, created_at_ms FROM rooms WHERE id = ?"#,
        room_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn list(
    pool: &SqlitePool,
    merchant_id: Option<&str>,
) -> Result<Vec<Room>, sqlx::Error> {
    sqlx::query_as!(
        Room,
        r#"SELECT id AS "id!", title, merchant_id, created_at_ms FROM rooms
           WHERE (?1 IS NULL OR merchant_id = ?1)
           ORDER BY id DESC LIMIT 200"#,
        merchant_id
    )
    .fetch_all(pool)
    .await
}
