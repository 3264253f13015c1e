//! Settlement on PostgreSQL: each kind of event of a batch in one statement over arrays.

use std::collections::HashMap;

use linkdrop_domain::events::{OrderAccepted, OrderDrawn, OrderExpired, OrderPaid};
use sqlx::{PgConnection, PgPool};

use super::{DrawnRow, DropMerchant, ExpiredOrder, PaidOrder};

pub(super) async fn drop_merchants(
    pool: &PgPool,
    drop_ids: &[String],
) -> Result<Vec<DropMerchant>, sqlx::Error> {
    sqlx::query_as!(
        DropMerchant,
        "SELECT id, merchant_id FROM drops WHERE id = ANY($1)",
        drop_ids
    )
    .fetch_all(pool)
    .await
}

/// The ids of the orders inserted now.
pub(super) async fn insert_accepted(
    tx: &mut PgConnection,
    orders: &[&OrderAccepted],
    merchants: &HashMap<String, String>,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut cols = Columns::default();
    for order in orders {
        cols.push(order, &merchants[&order.drop_id]);
    }
    sqlx::query_scalar!(
        "INSERT INTO orders (order_id, drop_id, merchant_id, user_id, qty, status,
                             idempotency_key, admitted_at_ms, pay_by_ms, settled_at_ms)
         SELECT o.order_id, o.drop_id, o.merchant_id, o.user_id, o.qty, o.status,
                o.idempotency_key, o.admitted_at_ms, o.pay_by_ms, $10
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[],
                     $7::text[], $8::int8[], $9::int8[])
              AS o(order_id, drop_id, merchant_id, user_id, qty, status, idempotency_key,
                   admitted_at_ms, pay_by_ms)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING order_id",
        &cols.order_ids,
        &cols.drop_ids,
        &cols.merchant_ids,
        &cols.user_ids,
        &cols.qtys,
        &cols.statuses,
        &cols.keys,
        &cols.admitted,
        &cols.pay_by as &[Option<i64>],
        now
    )
    .fetch_all(tx)
    .await
}

/// Column arrays for one UNNEST insert.
#[derive(Default)]
struct Columns {
    order_ids: Vec<String>,
    drop_ids: Vec<String>,
    merchant_ids: Vec<String>,
    user_ids: Vec<String>,
    qtys: Vec<i32>,
    statuses: Vec<String>,
    keys: Vec<String>,
    admitted: Vec<i64>,
    pay_by: Vec<Option<i64>>,
}

impl Columns {
    fn push(&mut self, order: &OrderAccepted, merchant_id: &str) {
        self.order_ids.push(order.order_id.clone());
        self.drop_ids.push(order.drop_id.clone());
        self.merchant_ids.push(merchant_id.to_string());
        self.user_ids.push(order.user_id.clone());
        self.qtys.push(order.qty as i32);
        self.statuses.push(order.status.as_str().to_string());
        self.keys.push(order.idempotency_key.clone());
        self.admitted.push(order.admitted_at_ms);
        self.pay_by.push(order.pay_by_ms);
    }
}

/// The entries changed now, as they are after the change.
pub(super) async fn apply_drawn(
    tx: &mut PgConnection,
    drawn: &[&OrderDrawn],
) -> Result<Vec<DrawnRow>, sqlx::Error> {
    let ids: Vec<String> = drawn.iter().map(|d| d.order_id.clone()).collect();
    let statuses: Vec<String> = drawn
        .iter()
        .map(|d| d.status.as_str().to_string())
        .collect();
    let pay_by: Vec<Option<i64>> = drawn.iter().map(|d| d.pay_by_ms).collect();
    sqlx::query_as!(
        DrawnRow,
        "UPDATE orders o SET status = u.status, pay_by_ms = u.pay_by_ms
         FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(order_id, status, pay_by_ms)
         WHERE o.order_id = u.order_id AND o.status = 'entered'
         RETURNING o.order_id, o.drop_id, o.user_id, o.qty, o.status, o.admitted_at_ms,
                   o.pay_by_ms",
        &ids,
        &statuses,
        &pay_by as &[Option<i64>]
    )
    .fetch_all(tx)
    .await
}

/// The orders marked paid now, as they are after the change.
pub(super) async fn apply_paid(
    tx: &mut PgConnection,
    paid: &[&OrderPaid],
) -> Result<Vec<PaidOrder>, sqlx::Error> {
    let ids: Vec<String> = paid.iter().map(|p| p.order_id.clone()).collect();
    let at: Vec<i64> = paid.iter().map(|p| p.paid_at_ms).collect();
    let refs: Vec<String> = paid.iter().map(|p| p.payment_ref.clone()).collect();
    sqlx::query_as!(
        PaidOrder,
        "UPDATE orders o SET status = 'paid', paid_at_ms = u.paid_at_ms, payment_ref = u.payment_ref
         FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(order_id, paid_at_ms, payment_ref)
         WHERE o.order_id = u.order_id AND o.status = 'reserved'
         RETURNING o.order_id, o.drop_id, o.user_id, o.qty, o.paid_at_ms, o.payment_ref",
        &ids,
        &at,
        &refs
    )
    .fetch_all(tx)
    .await
}

/// The orders marked expired now.
pub(super) async fn apply_expired(
    tx: &mut PgConnection,
    expired: &[&OrderExpired],
) -> Result<Vec<ExpiredOrder>, sqlx::Error> {
    let ids: Vec<String> = expired.iter().map(|x| x.order_id.clone()).collect();
    sqlx::query_as!(
        ExpiredOrder,
        "UPDATE orders SET status = 'expired'
         WHERE order_id = ANY($1) AND status = 'reserved'
         RETURNING order_id, drop_id, user_id, qty, pay_by_ms",
        &ids
    )
    .fetch_all(tx)
    .await
}
