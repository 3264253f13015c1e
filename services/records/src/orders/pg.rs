//! Order queries and draw figures on PostgreSQL.

use sqlx::PgPool;

use super::{DrawFigures, OrderFilter, OrderRow};

pub(super) async fn find(pool: &PgPool, order_id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as!(
        OrderRow,
        "SELECT order_id, drop_id, user_id, qty, status, admitted_at_ms,
                  pay_by_ms, paid_at_ms, merchant_id
           FROM orders WHERE order_id = $1",
        order_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &OrderFilter<'_>,
    status: Option<&str>,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query_as!(
        OrderRow,
        "SELECT order_id, drop_id, user_id, qty, status, admitted_at_ms,
                  pay_by_ms, paid_at_ms, merchant_id
         FROM orders
         WHERE ($1::text IS NULL OR merchant_id = $1)
           AND ($2::text IS NULL OR drop_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR order_id > $4)
         ORDER BY order_id
         LIMIT $5",
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
    pool: &PgPool,
    drop_id: &str,
    draw: &DrawFigures<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE drops SET seed = $2, cutoff_rank = $3, draw_entries = $4, draw_winners = $5,
                              drawn_at_ms = $6
             WHERE id = $1",
        drop_id,
        draw.seed,
        draw.cutoff_rank,
        draw.entries as i32,
        draw.winners as i32,
        draw.drawn_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}
