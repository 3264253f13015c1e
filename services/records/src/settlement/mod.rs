//! Writing a batch of order events to the system of record (PostgreSQL, or SQLite in the
//! embedded backend) in one transaction: new orders (once
//! each, by `order_id`), then lottery outcomes (only onto entries still `entered`), then
//! payments and expiries (only onto orders still `reserved`), and for every change applied
//! now its merchant event (`order.created`, `order.paid`, `order.expired`,
//! `drop.sold_out`) with the deliveries to subscribed endpoints. An event exists if and
//! only if its change does, and a redelivered message changes nothing. Within a drop the
//! topic keeps events in order, and a batch applies them kind by kind in the order an
//! order lives (accepted, drawn, paid or expired), so a batch holding an order's whole
//! life applies it correctly.

use std::collections::{HashMap, HashSet};

use crate::db::{Db, Tx};
use crate::webhook_outbox::{self, MerchantEvent};
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid, merchant_event,
};
use linkdrop_domain::model::OrderStatus;
use serde_json::json;

/// Outcome of one settled batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Orders written now.
    pub inserted: usize,
    /// Lottery outcomes applied now.
    pub drawn: usize,
    /// Payments and expiries applied now.
    pub paid: usize,
    pub expired: usize,
    /// Events that were applied before (redelivered messages).
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// An order of a drop the system of record does not know; retried, never dropped.
    #[error("orders of unknown drops: {0:?}")]
    UnknownDrops(Vec<String>),
}

/// An order as its `order.created` event describes it.
struct CreatedOrder {
    order_id: String,
    drop_id: String,
    user_id: String,
    qty: i64,
    admitted_at_ms: i64,
    pay_by_ms: Option<i64>,
}

/// Settles `events` in one transaction; nothing is written if anything fails.
/// `before_commit` runs with everything written, just before the commit (the crash tests
/// kill the process there).
pub async fn settle_batch(
    db: &Db,
    events: &[OrderEvent],
    before_commit: impl FnOnce(),
) -> Result<Settled, SettleError> {
    let accepted: Vec<&OrderAccepted> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::Accepted(a) => Some(a),
            _ => None,
        })
        .collect();
    let drawn: Vec<&OrderDrawn> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::Drawn(d) => Some(d),
            _ => None,
        })
        .collect();
    let paid: Vec<&OrderPaid> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::Paid(p) => Some(p),
            _ => None,
        })
        .collect();
    let expired: Vec<&OrderExpired> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::Expired(x) => Some(x),
            _ => None,
        })
        .collect();
    let sold_out: Vec<&DropSoldOut> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::SoldOut(d) => Some(d),
            _ => None,
        })
        .collect();
    let merchants = merchants_of(db, events).await?;
    let now = now_ms();
    let mut tx = db.begin().await?;
    let inserted = insert_accepted(&mut tx, &accepted, &merchants, now).await?;
    let (winners, drawn_now) = apply_drawn(&mut tx, &drawn).await?;
    let mut created: Vec<CreatedOrder> = accepted
        .iter()
        .filter(|a| a.status == OrderStatus::Reserved && inserted.contains(a.order_id.as_str()))
        .map(|a| CreatedOrder {
            order_id: a.order_id.clone(),
            drop_id: a.drop_id.clone(),
            user_id: a.user_id.clone(),
            qty: i64::from(a.qty),
            admitted_at_ms: a.admitted_at_ms,
            pay_by_ms: a.pay_by_ms,
        })
        .collect();
    created.extend(winners);
    let mut events_now: Vec<MerchantEvent> = created
        .iter()
        .map(|order| created_event(order, &merchants[&order.drop_id], now))
        .collect();
    let paid_now = apply_paid(&mut tx, &paid, &merchants, now, &mut events_now).await?;
    let expired_now = apply_expired(&mut tx, &expired, &merchants, now, &mut events_now).await?;
    for drop in &sold_out {
        let merchant_id = &merchants[&drop.drop_id];
        let data = json!({"drop_id": drop.drop_id, "merchant_id": merchant_id,
                          "sold_out_at_ms": drop.sold_out_at_ms});
        let subject = format!("{}_{}", drop.drop_id, drop.sold_out_at_ms);
        events_now.push(MerchantEvent::new(
            &subject,
            merchant_id,
            merchant_event::DROP_SOLD_OUT,
            &data,
            now,
        ));
    }
    webhook_outbox::enqueue(&mut tx, &events_now, now).await?;
    before_commit();
    tx.commit().await?;
    let applied = inserted.len() + drawn_now + paid_now + expired_now + sold_out.len();
    Ok(Settled {
        inserted: inserted.len(),
        drawn: drawn_now,
        paid: paid_now,
        expired: expired_now,
        duplicates: events.len() - applied,
    })
}

async fn merchants_of(
    db: &Db,
    events: &[OrderEvent],
) -> Result<HashMap<String, String>, SettleError> {
    let mut drop_ids: Vec<String> = events.iter().map(|e| e.drop_id().to_string()).collect();
    drop_ids.sort();
    drop_ids.dedup();
    let merchants: HashMap<String, String> = match db {
        Db::Postgres(pool) => {
            let rows = sqlx::query!(
                "SELECT id, merchant_id FROM drops WHERE id = ANY($1)",
                &drop_ids
            )
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(|r| (r.id, r.merchant_id)).collect()
        }
        Db::Sqlite(pool) => sqlx::query_as::<_, (String, String)>(
            "SELECT id, merchant_id FROM drops WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(json!(drop_ids).to_string())
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect(),
    };
    let unknown: Vec<String> = drop_ids
        .into_iter()
        .filter(|d| !merchants.contains_key(d))
        .collect();
    if !unknown.is_empty() {
        return Err(SettleError::UnknownDrops(unknown));
    }
    Ok(merchants)
}

/// Inserts the accepted orders that are not there yet; the ids inserted now.
async fn insert_accepted(
    tx: &mut Tx,
    orders: &[&OrderAccepted],
    merchants: &HashMap<String, String>,
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(HashSet::new());
    }
    let tx = match tx {
        Tx::Postgres(tx) => tx,
        Tx::Sqlite { tx, .. } => {
            // One row at a time (SQLite has no arrays); a second copy of an order in the
            // same batch conflicts with the first and inserts nothing, as on PostgreSQL.
            let mut inserted = HashSet::new();
            for order in orders {
                let row: Option<String> = sqlx::query_scalar(
                    "INSERT INTO orders (order_id, drop_id, merchant_id, user_id, qty, status,
                                         idempotency_key, admitted_at_ms, pay_by_ms, settled_at_ms)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (order_id) DO NOTHING
                     RETURNING order_id",
                )
                .bind(&order.order_id)
                .bind(&order.drop_id)
                .bind(&merchants[&order.drop_id])
                .bind(&order.user_id)
                .bind(i64::from(order.qty))
                .bind(order.status.as_str())
                .bind(&order.idempotency_key)
                .bind(order.admitted_at_ms)
                .bind(order.pay_by_ms)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?;
                inserted.extend(row);
            }
            return Ok(inserted);
        }
    };
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
        &cols.pay_by as &[Option<i64>],
        now
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Applies lottery outcomes to entries still `entered`; the winners changed now (for their
/// `order.created`) and how many outcomes were applied now.
async fn apply_drawn(
    tx: &mut Tx,
    drawn: &[&OrderDrawn],
) -> Result<(Vec<CreatedOrder>, usize), sqlx::Error> {
    if drawn.is_empty() {
        return Ok((Vec::new(), 0));
    }
    // Each changed entry: its new status and the order as it is now.
    let rows: Vec<(String, CreatedOrder)> = match tx {
        Tx::Postgres(tx) => {
            let ids: Vec<String> = drawn.iter().map(|d| d.order_id.clone()).collect();
            let statuses: Vec<String> = drawn
                .iter()
                .map(|d| d.status.as_str().to_string())
                .collect();
            let pay_by: Vec<Option<i64>> = drawn.iter().map(|d| d.pay_by_ms).collect();
            let rows = sqlx::query!(
                "UPDATE orders o SET status = u.status, pay_by_ms = u.pay_by_ms
         FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(order_id, status, pay_by_ms)
         WHERE o.order_id = u.order_id AND o.status = 'entered'
         RETURNING o.order_id, o.drop_id, o.user_id, o.qty, o.status, o.admitted_at_ms,
                   o.pay_by_ms",
                &ids,
                &statuses,
                &pay_by as &[Option<i64>]
            )
            .fetch_all(&mut **tx)
            .await?;
            rows.into_iter()
                .map(|r| {
                    let order = CreatedOrder {
                        order_id: r.order_id,
                        drop_id: r.drop_id,
                        user_id: r.user_id,
                        qty: i64::from(r.qty),
                        admitted_at_ms: r.admitted_at_ms,
                        pay_by_ms: r.pay_by_ms,
                    };
                    (r.status, order)
                })
                .collect()
        }
        Tx::Sqlite { tx, .. } => {
            let mut rows = Vec::new();
            for d in drawn {
                let row =
                    sqlx::query_as::<_, (String, String, String, i64, String, i64, Option<i64>)>(
                        "UPDATE orders SET status = ?2, pay_by_ms = ?3
                     WHERE order_id = ?1 AND status = 'entered'
                     RETURNING order_id, drop_id, user_id, qty, status, admitted_at_ms, pay_by_ms",
                    )
                    .bind(&d.order_id)
                    .bind(d.status.as_str())
                    .bind(d.pay_by_ms)
                    .fetch_optional(&mut **tx)
                    .await?;
                rows.extend(row.map(
                    |(order_id, drop_id, user_id, qty, status, admitted_at_ms, pay_by_ms)| {
                        let order = CreatedOrder {
                            order_id,
                            drop_id,
                            user_id,
                            qty,
                            admitted_at_ms,
                            pay_by_ms,
                        };
                        (status, order)
                    },
                ));
            }
            rows
        }
    };
    let applied = rows.len();
    let won = rows
        .into_iter()
        .filter(|(status, _)| status == OrderStatus::Reserved.as_str())
        .map(|(_, order)| order)
        .collect();
    Ok((won, applied))
}

/// A reserved order marked paid now, as it is after the change.
struct PaidOrder {
    order_id: String,
    drop_id: String,
    user_id: String,
    qty: i64,
    paid_at_ms: Option<i64>,
    payment_ref: Option<String>,
}

/// Marks reserved orders paid; adds an `order.paid` event per order changed now.
async fn apply_paid(
    tx: &mut Tx,
    paid: &[&OrderPaid],
    merchants: &HashMap<String, String>,
    now: i64,
    events: &mut Vec<MerchantEvent>,
) -> Result<usize, sqlx::Error> {
    if paid.is_empty() {
        return Ok(0);
    }
    let rows: Vec<PaidOrder> = match tx {
        Tx::Postgres(tx) => {
            let ids: Vec<String> = paid.iter().map(|p| p.order_id.clone()).collect();
            let at: Vec<i64> = paid.iter().map(|p| p.paid_at_ms).collect();
            let refs: Vec<String> = paid.iter().map(|p| p.payment_ref.clone()).collect();
            let rows = sqlx::query!(
                "UPDATE orders o SET status = 'paid', paid_at_ms = u.paid_at_ms, payment_ref = u.payment_ref
         FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(order_id, paid_at_ms, payment_ref)
         WHERE o.order_id = u.order_id AND o.status = 'reserved'
         RETURNING o.order_id, o.drop_id, o.user_id, o.qty, o.paid_at_ms, o.payment_ref",
                &ids,
                &at,
                &refs
            )
            .fetch_all(&mut **tx)
            .await?;
            rows.into_iter()
                .map(|r| PaidOrder {
                    order_id: r.order_id,
                    drop_id: r.drop_id,
                    user_id: r.user_id,
                    qty: i64::from(r.qty),
                    paid_at_ms: r.paid_at_ms,
                    payment_ref: r.payment_ref,
                })
                .collect()
        }
        Tx::Sqlite { tx, .. } => {
            let mut rows = Vec::new();
            for p in paid {
                type Row = (String, String, String, i64, Option<i64>, Option<String>);
                let row = sqlx::query_as::<_, Row>(
                    "UPDATE orders SET status = 'paid', paid_at_ms = ?2, payment_ref = ?3
                     WHERE order_id = ?1 AND status = 'reserved'
                     RETURNING order_id, drop_id, user_id, qty, paid_at_ms, payment_ref",
                )
                .bind(&p.order_id)
                .bind(p.paid_at_ms)
                .bind(&p.payment_ref)
                .fetch_optional(&mut **tx)
                .await?;
                rows.extend(row.map(
                    |(order_id, drop_id, user_id, qty, paid_at_ms, payment_ref)| PaidOrder {
                        order_id,
                        drop_id,
                        user_id,
                        qty,
                        paid_at_ms,
                        payment_ref,
                    },
                ));
            }
            rows
        }
    };
    let applied = rows.len();
    for r in rows {
        let merchant_id = &merchants[&r.drop_id];
        let data = json!({"order_id": r.order_id, "drop_id": r.drop_id, "merchant_id": merchant_id,
                          "user_id": r.user_id, "qty": r.qty, "status": "paid",
                          "paid_at_ms": r.paid_at_ms, "payment_ref": r.payment_ref});
        events.push(MerchantEvent::new(
            &r.order_id,
            merchant_id,
            merchant_event::ORDER_PAID,
            &data,
            now,
        ));
    }
    Ok(applied)
}

/// A reserved order marked expired now.
struct ExpiredOrder {
    order_id: String,
    drop_id: String,
    user_id: String,
    qty: i64,
    pay_by_ms: Option<i64>,
}

/// Marks reserved orders expired; adds an `order.expired` event per order changed now.
async fn apply_expired(
    tx: &mut Tx,
    expired: &[&OrderExpired],
    merchants: &HashMap<String, String>,
    now: i64,
    events: &mut Vec<MerchantEvent>,
) -> Result<usize, sqlx::Error> {
    if expired.is_empty() {
        return Ok(0);
    }
    let rows: Vec<ExpiredOrder> = match tx {
        Tx::Postgres(tx) => {
            let ids: Vec<String> = expired.iter().map(|x| x.order_id.clone()).collect();
            let rows = sqlx::query!(
                "UPDATE orders SET status = 'expired'
         WHERE order_id = ANY($1) AND status = 'reserved'
         RETURNING order_id, drop_id, user_id, qty, pay_by_ms",
                &ids
            )
            .fetch_all(&mut **tx)
            .await?;
            rows.into_iter()
                .map(|r| ExpiredOrder {
                    order_id: r.order_id,
                    drop_id: r.drop_id,
                    user_id: r.user_id,
                    qty: i64::from(r.qty),
                    pay_by_ms: r.pay_by_ms,
                })
                .collect()
        }
        Tx::Sqlite { tx, .. } => {
            let mut rows = Vec::new();
            for x in expired {
                let row = sqlx::query_as::<_, (String, String, String, i64, Option<i64>)>(
                    "UPDATE orders SET status = 'expired'
                     WHERE order_id = ? AND status = 'reserved'
                     RETURNING order_id, drop_id, user_id, qty, pay_by_ms",
                )
                .bind(&x.order_id)
                .fetch_optional(&mut **tx)
                .await?;
                rows.extend(row.map(
                    |(order_id, drop_id, user_id, qty, pay_by_ms)| ExpiredOrder {
                        order_id,
                        drop_id,
                        user_id,
                        qty,
                        pay_by_ms,
                    },
                ));
            }
            rows
        }
    };
    let at: HashMap<&str, i64> = expired
        .iter()
        .map(|x| (x.order_id.as_str(), x.expired_at_ms))
        .collect();
    let applied = rows.len();
    for r in rows {
        let merchant_id = &merchants[&r.drop_id];
        let data = json!({"order_id": r.order_id, "drop_id": r.drop_id, "merchant_id": merchant_id,
                          "user_id": r.user_id, "qty": r.qty, "status": "expired",
                          "pay_by_ms": r.pay_by_ms, "expired_at_ms": at.get(r.order_id.as_str())});
        events.push(MerchantEvent::new(
            &r.order_id,
            merchant_id,
            merchant_event::ORDER_EXPIRED,
            &data,
            now,
        ));
    }
    Ok(applied)
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

/// The `order.created` event of an order that is now reserved.
fn created_event(order: &CreatedOrder, merchant_id: &str, now: i64) -> MerchantEvent {
    let data = json!({
        "order_id": order.order_id,
        "drop_id": order.drop_id,
        "merchant_id": merchant_id,
        "user_id": order.user_id,
        "qty": order.qty,
        "status": "reserved",
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
}
