//! Writing a batch of accepted orders to PostgreSQL in one transaction: the orders (once
//! each, by `order_id`) and, for the orders inserted now, their `order.created` merchant
//! events and the deliveries to subscribed endpoints. An event exists if and only if its
//! order does.

use std::collections::{HashMap, HashSet};

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::{OrderAccepted, merchant_event};
use linkdrop_domain::webhook_outbox::{self, MerchantEvent};
use serde_json::json;
use sqlx::PgPool;

/// Outcome of one settled batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Orders written now.
    pub inserted: usize,
    /// Orders that were already there (redelivered messages).
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// An order of a drop PostgreSQL does not know; retried, never dropped.
    #[error("orders of unknown drops: {0:?}")]
    UnknownDrops(Vec<String>),
}

/// Settles `orders` in one transaction; nothing is written if anything fails.
pub async fn settle_batch(db: &PgPool, orders: &[OrderAccepted]) -> Result<Settled, SettleError> {
    let merchants = merchants_of(db, orders).await?;
    let mut tx = db.begin().await?;
    let now = now_ms();
    let mut cols = Columns::default();
    for order in orders {
        cols.push(order, &merchants[&order.drop_id]);
    }
    let inserted: Vec<String> = sqlx::query_scalar!(
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
        &cols.pay_by,
        now
    )
    .fetch_all(&mut *tx)
    .await?;
    let inserted_ids: HashSet<&str> = inserted.iter().map(String::as_str).collect();
    let fresh: Vec<&OrderAccepted> = orders
        .iter()
        .filter(|o| inserted_ids.contains(o.order_id.as_str()))
        .collect();
    webhook_outbox::enqueue(&mut tx, &created_events(&fresh, &merchants, now), now).await?;
    tx.commit().await?;
    Ok(Settled {
        inserted: inserted.len(),
        duplicates: orders.len() - inserted.len(),
    })
}

async fn merchants_of(
    db: &PgPool,
    orders: &[OrderAccepted],
) -> Result<HashMap<String, String>, SettleError> {
    let mut drop_ids: Vec<String> = orders.iter().map(|o| o.drop_id.clone()).collect();
    drop_ids.sort();
    drop_ids.dedup();
    let rows = sqlx::query!(
        "SELECT id, merchant_id FROM drops WHERE id = ANY($1)",
        &drop_ids
    )
    .fetch_all(db)
    .await?;
    let merchants: HashMap<String, String> =
        rows.into_iter().map(|r| (r.id, r.merchant_id)).collect();
    let unknown: Vec<String> = drop_ids
        .into_iter()
        .filter(|d| !merchants.contains_key(d))
        .collect();
    if !unknown.is_empty() {
        return Err(SettleError::UnknownDrops(unknown));
    }
    Ok(merchants)
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
    pay_by: Vec<i64>,
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

/// The `order.created` events of newly inserted orders.
fn created_events(
    orders: &[&OrderAccepted],
    merchants: &HashMap<String, String>,
    now: i64,
) -> Vec<MerchantEvent> {
    orders
        .iter()
        .map(|order| {
            let merchant_id = &merchants[&order.drop_id];
            let data = json!({
                "order_id": order.order_id,
                "drop_id": order.drop_id,
                "merchant_id": merchant_id,
                "user_id": order.user_id,
                "qty": order.qty,
                "status": order.status,
                "admitted_at_ms": order.admitted_at_ms,
                "pay_by_ms": order.pay_by_ms,
            });
            MerchantEvent::new(
                &order.order_id,
                merchant_id,
                merchant_event::ORDER_CREATED,
                &data,
                now,
            )
        })
        .collect()
}
