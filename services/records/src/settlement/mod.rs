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

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use std::collections::{HashMap, HashSet};

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid, merchant_event,
};
use linkdrop_domain::model::OrderStatus;
use serde_json::json;

use crate::db::{Db, Tx, dispatch, undecodable};
use crate::webhooks::outbox::{self, MerchantEvent};

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
    qty: i32,
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
    settle_traced_batch(db, events, &HashMap::new(), before_commit).await
}

/// [`settle_batch`], where `traces` gives, by order id, the trace context
/// (`traceparent`) that an order's `order.created` event carries to its deliveries.
pub async fn settle_traced_batch(
    db: &Db,
    events: &[OrderEvent],
    traces: &HashMap<String, String>,
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
            qty: a.qty as i32,
            admitted_at_ms: a.admitted_at_ms,
            pay_by_ms: a.pay_by_ms,
        })
        .collect();
    created.extend(winners);
    let mut events_now: Vec<MerchantEvent> = created
        .iter()
        .map(|order| {
            created_event(order, &merchants[&order.drop_id], now)
                .traced(traces.get(&order.order_id))
        })
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
    outbox::enqueue(&mut tx, &events_now, now).await?;
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
    let merchants: HashMap<String, String> = dispatch!(db, drop_merchants(&drop_ids))?
        .into_iter()
        .map(|d| (d.id, d.merchant_id))
        .collect();
    let unknown: Vec<String> = drop_ids
        .into_iter()
        .filter(|d| !merchants.contains_key(d))
        .collect();
    if !unknown.is_empty() {
        return Err(SettleError::UnknownDrops(unknown));
    }
    Ok(merchants)
}

/// A drop and its merchant.
struct DropMerchant {
    id: String,
    merchant_id: String,
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
    let inserted = dispatch!(tx, insert_accepted(orders, merchants, now))?;
    Ok(inserted.into_iter().collect())
}

/// An entry of a lottery as a draw left it.
struct DrawnRow {
    order_id: String,
    drop_id: String,
    user_id: String,
    qty: i32,
    status: String,
    admitted_at_ms: i64,
    pay_by_ms: Option<i64>,
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
    let rows = dispatch!(tx, apply_drawn(drawn))?;
    let applied = rows.len();
    let mut won = Vec::new();
    for row in rows {
        let status =
            OrderStatus::parse(&row.status).map_err(|e| undecodable("orders.status", e))?;
        if status == OrderStatus::Reserved {
            won.push(CreatedOrder {
                order_id: row.order_id,
                drop_id: row.drop_id,
                user_id: row.user_id,
                qty: row.qty,
                admitted_at_ms: row.admitted_at_ms,
                pay_by_ms: row.pay_by_ms,
            });
        }
    }
    Ok((won, applied))
}

/// A reserved order marked paid now, as it is after the change.
struct PaidOrder {
    order_id: String,
    drop_id: String,
    user_id: String,
    qty: i32,
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
    let rows = dispatch!(tx, apply_paid(paid))?;
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
    qty: i32,
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
    let rows = dispatch!(tx, apply_expired(expired))?;
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
