//! Settlement on SQLite: one statement per event (no arrays), inside the batch's
//! transaction. A second copy of an event in the same batch finds the first applied and
//! changes nothing, as on PostgreSQL.

use std::collections::HashMap;

use linkdrop_domain::events::{OrderAccepted, OrderDrawn, OrderExpired, OrderPaid};
use serde_json::json;
use sqlx::{SqliteConnection, SqlitePool};

use super::{DrawnRow, DropMerchant, ExpiredOrder, PaidOrder};

pub(super) async fn drop_merchants(
    pool: &SqlitePool,
    drop_ids: &[String],
) -> Result<Vec<DropMerchant>, sqlx::Error> {
    let ids = json!(drop_ids).to_string();
    sqlx::query_as!(
        DropMerchant,
        r#"SELECT id AS "id!", merchant_id FROM drops
           WHERE id IN (SELECT value FROM json_each(?))"#,
        ids
    )
    .fetch_all(pool)
    .await
}

/// The ids of the orders inserted now.
pub(super) async fn insert_accepted(
    tx: &mut SqliteConnection,
    orders: &[&OrderAccepted],
    merchants: &HashMap<String, String>,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut inserted = Vec::new();
    for order in orders {
        let qty = i64::from(order.qty);
        let status = order.status.as_str();
        let row = sqlx::query_scalar!(
            r#"INSERT INTO orders (order_id, drop_id, merchant_id, user_id, qty, status,
                                   idempotency_key, admitted_at_ms, pay_by_ms, settled_at_ms)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (order_id) DO NOTHING
               RETURNING order_id AS "order_id!""#,
            order.order_id,
            order.drop_id,
            merchants[&order.drop_id],
            order.user_id,
            qty,
            status,
            order.idempotency_key,
            order.admitted_at_ms,
            order.pay_by_ms,
            now
        )
        .fetch_optional(&mut *tx)
        .await?;
        inserted.extend(row);
    }
    Ok(inserted)
}

/// The entries changed now, as they are after the change.
pub(super) async fn apply_drawn(
    tx: &mut SqliteConnection,
    drawn: &[&OrderDrawn],
) -> Result<Vec<DrawnRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for d in drawn {
        let status = d.status.as_str();
        let row = sqlx::query_as!(
            DrawnRow,
            r#"UPDATE orders SET status = ?2, pay_by_ms = ?3
               WHERE order_id = ?1 AND status = 'entered'
               RETURNING order_id AS "order_id!", drop_id, user_id, qty AS "qty: i32", status,
                         admitted_at_ms, pay_by_ms"#,
            d.order_id,
            status,
            d.pay_by_ms
        )
        .fetch_optional(&mut *tx)
        .await?;
        rows.extend(row);
    }
    Ok(rows)
}

/// The orders marked paid now, as they are after the change.
pub(super) async fn apply_paid(
    tx: &mut SqliteConnection,
    paid: &[&OrderPaid],
) -> Result<Vec<PaidOrder>, sqlx::Error> {
    let mut rows = Vec::new();
    for p in paid {
        let row = sqlx::query_as!(
            PaidOrder,
            r#"UPDATE orders SET status = 'paid', paid_at_ms = ?2, payment_ref = ?3
               WHERE order_id = ?1 AND status = 'reserved'
               RETURNING order_id AS "order_id!", drop_id, user_id, qty AS "qty: i32",
                         paid_at_ms, payment_ref"#,
            p.order_id,
            p.paid_at_ms,
            p.payment_ref
        )
        .fetch_optional(&mut *tx)
        .await?;
        rows.extend(row);
    }
    Ok(rows)
}

/// The orders marked expired now.
pub(super) async fn apply_expired(
    tx: &mut SqliteConnection,
    expired: &[&OrderExpired],
) -> Result<Vec<ExpiredOrder>, sqlx::Error> {
    let mut rows = Vec::new();
    for x in expired {
        let row = sqlx::query_as!(
            ExpiredOrder,
            r#"UPDATE orders SET status = 'expired'
               WHERE order_id = ? AND status = 'reserved'
               RETURNING order_id AS "order_id!", drop_id, user_id, qty AS "qty: i32",
                         pay_by_ms"#,
            x.order_id
        )
        .fetch_optional(&mut *tx)
        .await?;
        rows.extend(row);
    }
    Ok(rows)
}
