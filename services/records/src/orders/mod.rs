//! Orders as settled (read by the orders API) and the published figures of a lottery's
//! draw. Settlement writes the orders ([`crate::settlement`]).

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use linkdrop_domain::model::OrderStatus;

use crate::db::{Db, dispatch, undecodable};

/// A settled order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub drop_id: String,
    pub merchant_id: String,
    pub user_id: String,
    pub qty: i32,
    pub status: OrderStatus,
    pub admitted_at_ms: i64,
    /// Absent for a lottery entry that has not been drawn (or lost).
    pub pay_by_ms: Option<i64>,
    pub paid_at_ms: Option<i64>,
}

/// A row of `orders` as both dialects read it.
struct OrderRow {
    order_id: String,
    drop_id: String,
    merchant_id: String,
    user_id: String,
    qty: i32,
    status: String,
    admitted_at_ms: i64,
    pay_by_ms: Option<i64>,
    paid_at_ms: Option<i64>,
}

impl TryFrom<OrderRow> for Order {
    type Error = sqlx::Error;

    fn try_from(row: OrderRow) -> Result<Self, sqlx::Error> {
        Ok(Order {
            status: OrderStatus::parse(&row.status).map_err(|e| undecodable("orders.status", e))?,
            order_id: row.order_id,
            drop_id: row.drop_id,
            merchant_id: row.merchant_id,
            user_id: row.user_id,
            qty: row.qty,
            admitted_at_ms: row.admitted_at_ms,
            pay_by_ms: row.pay_by_ms,
            paid_at_ms: row.paid_at_ms,
        })
    }
}

/// The settled order `order_id`, if settlement has written it.
pub async fn find(db: &Db, order_id: &str) -> Result<Option<Order>, sqlx::Error> {
    dispatch!(db, find(order_id))?
        .map(Order::try_from)
        .transpose()
}

/// Which orders [`list`] returns: every filter that is set must match.
#[derive(Debug, Clone, Copy)]
pub struct OrderFilter<'a> {
    pub merchant_id: Option<&'a str>,
    pub drop_id: Option<&'a str>,
    pub status: Option<OrderStatus>,
    /// Only orders with a greater id (the previous page's last).
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// Up to `filter.limit` orders matching `filter`, by id.
pub async fn list(db: &Db, filter: &OrderFilter<'_>) -> Result<Vec<Order>, sqlx::Error> {
    let status = filter.status.map(|s| s.as_str());
    dispatch!(db, list(filter, status))?
        .into_iter()
        .map(Order::try_from)
        .collect()
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
    dispatch!(db, record_draw(drop_id, draw))
}
