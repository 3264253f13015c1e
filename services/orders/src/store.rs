//! The orders role's reads and writes in the system of record: PostgreSQL on the stack,
//! SQLite in the embedded backend. Each function keeps both dialects side by side.

use linkdrop_records::db::Db;

use crate::queries::OrderView;

/// A row of `orders` as SQLite returns it (integers are 64-bit there).
type OrderRow = (
    String,
    String,
    String,
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
);

fn order_view(
    (order_id, drop_id, user_id, qty, status, admitted_at_ms, pay_by_ms, paid_at_ms, merchant_id): OrderRow,
) -> Result<OrderView, sqlx::Error> {
    Ok(OrderView {
        order_id,
        drop_id,
        user_id,
        qty: i32::try_from(qty).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        status,
        admitted_at_ms: Some(admitted_at_ms),
        pay_by_ms,
        paid_at_ms,
        merchant_id,
    })
}

/// The settled order `order_id`, if settlement has written it.
pub async fn find_order(db: &Db, order_id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    Ok(match db {
        Db::Postgres(pool) => sqlx::query_as!(
            OrderView,
            r#"SELECT order_id, drop_id, user_id, qty, status, admitted_at_ms AS "admitted_at_ms?",
                  pay_by_ms, paid_at_ms, merchant_id
           FROM orders WHERE order_id = $1"#,
            order_id
        )
        .fetch_optional(pool)
        .await?,
        Db::Sqlite(pool) => sqlx::query_as::<_, OrderRow>(
            "SELECT order_id, drop_id, user_id, qty, status, admitted_at_ms,
                    pay_by_ms, paid_at_ms, merchant_id
             FROM orders WHERE order_id = ?",
        )
        .bind(order_id)
        .fetch_optional(pool)
        .await?
        .map(order_view)
        .transpose()?,
    })
}

/// Which orders [`list_orders`] returns: every filter that is set must match.
#[derive(Debug, Clone, Copy)]
pub struct OrderFilter<'a> {
    pub merchant_id: Option<&'a str>,
    pub drop_id: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Only orders with a greater id (the previous page's last).
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// Up to `filter.limit` orders matching `filter`, by id.
pub async fn list_orders(db: &Db, filter: &OrderFilter<'_>) -> Result<Vec<OrderView>, sqlx::Error> {
    Ok(match db {
        Db::Postgres(pool) => sqlx::query_as!(
            OrderView,
            r#"SELECT order_id, drop_id, user_id, qty, status, admitted_at_ms AS "admitted_at_ms?",
                  pay_by_ms, paid_at_ms, merchant_id
         FROM orders
         WHERE ($1::text IS NULL OR merchant_id = $1)
           AND ($2::text IS NULL OR drop_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR order_id > $4)
         ORDER BY order_id
         LIMIT $5"#,
            filter.merchant_id,
            filter.drop_id,
            filter.status,
            filter.after,
            filter.limit
        )
        .fetch_all(pool)
        .await?,
        Db::Sqlite(pool) => sqlx::query_as::<_, OrderRow>(
            "SELECT order_id, drop_id, user_id, qty, status, admitted_at_ms,
                    pay_by_ms, paid_at_ms, merchant_id
             FROM orders
             WHERE (?1 IS NULL OR merchant_id = ?1)
               AND (?2 IS NULL OR drop_id = ?2)
               AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR order_id > ?4)
             ORDER BY order_id
             LIMIT ?5",
        )
        .bind(filter.merchant_id)
        .bind(filter.drop_id)
        .bind(filter.status)
        .bind(filter.after)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(order_view)
        .collect::<Result<_, _>>()?,
    })
}

/// The published figures of a lottery draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawFigures<'a> {
    /// The seed, hex.
    pub seed: &'a str,
    /// The largest winning rank; `None` when nobody won.
    pub cutoff_rank: Option<&'a str>,
    pub entries: i64,
    pub winners: i64,
    pub drawn_at_ms: i64,
}

/// Records a drop's draw on its row.
pub async fn record_draw(
    db: &Db,
    drop_id: &str,
    draw: &DrawFigures<'_>,
) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
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
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "UPDATE drops SET seed = ?2, cutoff_rank = ?3, draw_entries = ?4, draw_winners = ?5,
                                  drawn_at_ms = ?6
                 WHERE id = ?1",
            )
            .bind(drop_id)
            .bind(draw.seed)
            .bind(draw.cutoff_rank)
            .bind(draw.entries)
            .bind(draw.winners)
            .bind(draw.drawn_at_ms)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}
