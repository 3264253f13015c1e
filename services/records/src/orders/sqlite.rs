//! Order queries and draw figures on SQLite.

use sqlx::SqlitePool;

use super::{DrawFigures, OrderFilter, OrderRow};

pub(super) async fn find(
    pool: &SqlitePool,
    order_id: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as!(
        OrderRow,
        r#"SELECT order_id AS "order_id!", drop_id, user_id, qty AS "qty: i32", status,
                  admitted_at_ms, pay_by_ms, paid_at_ms, merchant_id
           FROM orders WHERE order_id = ?"#,
        order_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn list(
    pool: &SqlitePool,
    filter: &OrderFilter<'_>,
    status: Option<&str>,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query_as!(
        OrderRow,
        r#"SELECT order_id AS "order_id!", drop_id, user_id, qty AS "qty: i32", status,
                  admitted_at_ms, pay_by_ms, paid_at_ms, merchant_id
           FROM orders
           WHERE (?1 IS NULL OR merchant_id = ?1)
             AND (?2 IS NULL OR drop_id = ?2)
             AND (?3 IS NULL OR status = ?3)
             AND (?4 IS NULL OR order_id > ?4)
           ORDER BY order_id
           LIMIT ?5"#,
        filter.merchant_id,
        filter.drop_id,
        status,
        filter.after,
        filter.limit
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn record_draw(
    pool: &SqlitePool,
    drop_id: &str,
    draw: &DrawFigures<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE drops SET seed = ?2, cutoff_rank = ?3, draw_entries = ?4, draw_winners = ?5,
                          drawn_at_ms = ?6
         WHERE id = ?1",
        drop_id,
        draw.seed,
        draw.cutoff_rank,
        draw.entries,
        draw.winners,
        draw.drawn_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}
