//! One drop's live state and decisions in memory, with the semantics of its Redis scripts
//! (`admission.lua`, `pay.lua`, `expire.lua`): the admission engine of the embedded
//! backend (issue 9), where one process holds every drop and no Redis runs. Each method is
//! one atomic decision, as each script is; the caller serialises calls per drop (a mutex)
//! and gives the time, so that decisions are deterministic and testable.
//!
//! `tests/admission_model.rs` runs the same random operations against the scripts in Redis
//! and against this engine and requires the same answers and the same state after every
//! step. Not yet used by the binary: the embedded backend's queue and SQLite store come
//! next (see the issue notes).

use std::collections::{BTreeSet, HashMap};

use linkdrop_domain::events::{DropSoldOut, OrderAccepted, OrderEvent, OrderExpired, OrderPaid};
use linkdrop_domain::model::{IdempotencyKey, OrderStatus, Quantity};

use crate::admission::{Answer, Decision, Rejection};
use crate::lifecycle::{Expiry, Payment};

/// What a drop sells and how, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub stock: u32,
    pub max_per_user: u32,
    pub pay_within_ms: i64,
}

/// Where the drop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Draft,
    Launched { opens_at_ms: i64 },
    Closed,
}

/// An order as its drop knows it while the drop is live.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveOrder {
    status: OrderStatus,
    user_id: String,
    qty: u32,
    pay_by_ms: i64,
    paid: Option<(i64, String)>,
}

/// One drop, first come first served.
#[derive(Debug)]
pub struct MemoryDrop {
    drop_id: String,
    terms: Terms,
    phase: Phase,
    stock_left: i64,
    paid: i64,
    sold_out_at_ms: Option<i64>,
    /// User id → units held.
    holders: HashMap<String, u32>,
    /// (user id, Idempotency-Key) → (fingerprint, the answer recorded).
    recorded: HashMap<(String, String), (String, Answer)>,
    orders: HashMap<String, LiveOrder>,
    /// Reserved orders by payment deadline.
    deadlines: BTreeSet<(i64, String)>,
    /// Events not yet taken by the queue, oldest first.
    outbox: Vec<OrderEvent>,
}

impl MemoryDrop {
    pub fn new(drop_id: &str, terms: Terms) -> Self {
        Self {
            drop_id: drop_id.to_string(),
            stock_left: i64::from(terms.stock),
            terms,
            phase: Phase::Draft,
            paid: 0,
            sold_out_at_ms: None,
            holders: HashMap::new(),
            recorded: HashMap::new(),
            orders: HashMap::new(),
            deadlines: BTreeSet::new(),
            outbox: Vec::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn stock_left(&self) -> i64 {
        self.stock_left
    }

    /// Units of paid orders.
    pub fn paid(&self) -> i64 {
        self.paid
    }

    /// Units each shopper holds (reserved or paid).
    pub fn holders(&self) -> &HashMap<String, u32> {
        &self.holders
    }

    /// Events appended since the drop was created, including those already taken.
    pub fn events_appended(&self) -> usize {
        self.outbox.len()
    }

    /// Opens the drop at `opens_at_ms`; a launched or closed drop stays as it is.
    pub fn launch(&mut self, opens_at_ms: i64) {
        if self.phase == Phase::Draft {
            self.phase = Phase::Launched { opens_at_ms };
        }
    }

    pub fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Admits one order request at `now_ms`, as `admission.lua` does; `order_id` is the id
    /// an accepted order gets.
    pub fn admit(
        &mut self,
        now_ms: i64,
        user_id: &str,
        key: &IdempotencyKey,
        qty: Quantity,
        order_id: &str,
    ) -> Decision {
        let fingerprint = format!("qty={}", qty.get());
        let field = (user_id.to_string(), key.as_str().to_string());
        if let Some((recorded_fingerprint, answer)) = self.recorded.get(&field) {
            return if *recorded_fingerprint == fingerprint {
                Decision::Replay(answer.clone())
            } else {
                Decision::Reject(Rejection::IdempotencyConflict)
            };
        }
        let opens_at_ms = match self.phase {
            Phase::Closed => return Decision::Reject(Rejection::Closed),
            Phase::Draft => return Decision::Reject(Rejection::NotOpen { opens_at_ms: None }),
            Phase::Launched { opens_at_ms } => opens_at_ms,
        };
        if now_ms < opens_at_ms {
            return Decision::Reject(Rejection::NotOpen {
                opens_at_ms: Some(opens_at_ms),
            });
        }
        let qty = qty.get();
        let max_per_user = self.terms.max_per_user;
        if qty > max_per_user {
            return Decision::Reject(Rejection::QtyOverLimit { max_per_user });
        }
        let held = self.holders.get(user_id).copied().unwrap_or(0);
        let (answer, sold_out_at_ms) = if held + qty > max_per_user {
            (Answer::LimitReached { max_per_user }, None)
        } else if self.stock_left < i64::from(qty) {
            (Answer::SoldOut, None)
        } else {
            self.reserve(now_ms, user_id, key, qty, order_id)
        };
        self.recorded.insert(field, (fingerprint, answer.clone()));
        Decision::Fresh {
            answer,
            stock_left: self.stock_left,
            sold_out_at_ms,
        }
    }

    /// Takes `qty` units for a new reserved order; the answer, and the sell-out time when
    /// it took the last unit.
    fn reserve(
        &mut self,
        now_ms: i64,
        user_id: &str,
        key: &IdempotencyKey,
        qty: u32,
        order_id: &str,
    ) -> (Answer, Option<i64>) {
        self.stock_left -= i64::from(qty);
        *self.holders.entry(user_id.to_string()).or_default() += qty;
        let pay_by_ms = now_ms + self.terms.pay_within_ms;
        self.orders.insert(
            order_id.to_string(),
            LiveOrder {
                status: OrderStatus::Reserved,
                user_id: user_id.to_string(),
                qty,
                pay_by_ms,
                paid: None,
            },
        );
        self.deadlines.insert((pay_by_ms, order_id.to_string()));
        self.outbox.push(OrderEvent::Accepted(OrderAccepted {
            order_id: order_id.to_string(),
            drop_id: self.drop_id.clone(),
            user_id: user_id.to_string(),
            qty,
            status: OrderStatus::Reserved,
            admitted_at_ms: now_ms,
            pay_by_ms: Some(pay_by_ms),
            idempotency_key: key.as_str().to_string(),
        }));
        let sold_out_at_ms = (self.stock_left == 0).then_some(now_ms);
        if let Some(at) = sold_out_at_ms {
            self.sold_out_at_ms = Some(at);
            self.outbox.push(OrderEvent::SoldOut(DropSoldOut {
                drop_id: self.drop_id.clone(),
                sold_out_at_ms: at,
            }));
        }
        let answer = Answer::Reserved {
            order_id: order_id.to_string(),
            qty,
            pay_by_ms,
        };
        (answer, sold_out_at_ms)
    }

    /// Pays `order_id` for `user_id` at `now_ms`, as `pay.lua` does (a payment after the
    /// deadline expires the order instead, as the lifecycle does with the script's
    /// `past_due`).
    pub fn pay(
        &mut self,
        now_ms: i64,
        order_id: &str,
        user_id: &str,
        payment_ref: &str,
    ) -> Payment {
        let Some(order) = self
            .orders
            .get_mut(order_id)
            .filter(|o| o.user_id == user_id)
        else {
            return Payment::NotFound;
        };
        match order.status {
            OrderStatus::Paid => {
                let (paid_at_ms, payment_ref) = order.paid.clone().unwrap_or_default();
                return Payment::Paid {
                    paid_at_ms,
                    payment_ref,
                    qty: order.qty,
                };
            }
            OrderStatus::Expired => return Payment::Expired,
            OrderStatus::Reserved => {}
            other => {
                return Payment::NotPayable {
                    status: other.as_str().to_string(),
                };
            }
        }
        if now_ms > order.pay_by_ms {
            self.expire(now_ms, order_id);
            return Payment::Expired;
        }
        let order = self.orders.get_mut(order_id).expect("looked up above");
        order.status = OrderStatus::Paid;
        order.paid = Some((now_ms, payment_ref.to_string()));
        let (qty, pay_by_ms) = (order.qty, order.pay_by_ms);
        self.paid += i64::from(qty);
        self.deadlines.remove(&(pay_by_ms, order_id.to_string()));
        self.outbox.push(OrderEvent::Paid(OrderPaid {
            order_id: order_id.to_string(),
            drop_id: self.drop_id.clone(),
            user_id: user_id.to_string(),
            paid_at_ms: now_ms,
            payment_ref: payment_ref.to_string(),
        }));
        Payment::Paid {
            paid_at_ms: now_ms,
            payment_ref: payment_ref.to_string(),
            qty,
        }
    }

    /// Expires `order_id` if it is reserved and its deadline passed by `now_ms`, as
    /// `expire.lua` does: its units go back to the stock and its shopper's count.
    pub fn expire(&mut self, now_ms: i64, order_id: &str) -> Expiry {
        let Some(order) = self.orders.get_mut(order_id) else {
            return Expiry::NotReserved;
        };
        if order.status != OrderStatus::Reserved {
            return Expiry::NotReserved;
        }
        if now_ms <= order.pay_by_ms {
            return Expiry::NotDue;
        }
        order.status = OrderStatus::Expired;
        let (user_id, qty, pay_by_ms) = (order.user_id.clone(), order.qty, order.pay_by_ms);
        self.stock_left += i64::from(qty);
        if let Some(held) = self.holders.get_mut(&user_id) {
            *held = held.saturating_sub(qty);
            if *held == 0 {
                self.holders.remove(&user_id);
            }
        }
        self.deadlines.remove(&(pay_by_ms, order_id.to_string()));
        self.sold_out_at_ms = None;
        self.outbox.push(OrderEvent::Expired(OrderExpired {
            order_id: order_id.to_string(),
            drop_id: self.drop_id.clone(),
            user_id,
            qty,
            expired_at_ms: now_ms,
        }));
        Expiry::Expired {
            stock_left: self.stock_left,
        }
    }

    /// Reserved orders whose deadline passed by `now_ms`, soonest first.
    pub fn due(&self, now_ms: i64) -> Vec<String> {
        self.deadlines
            .iter()
            .take_while(|(pay_by_ms, _)| *pay_by_ms < now_ms)
            .map(|(_, order_id)| order_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_of(stock: u32) -> MemoryDrop {
        MemoryDrop::new(
            "drp_1",
            Terms {
                stock,
                max_per_user: 2,
                pay_within_ms: 1_000,
            },
        )
    }

    fn order(drop: &mut MemoryDrop, now_ms: i64, user: &str, order_id: &str) -> Decision {
        let key = IdempotencyKey::parse(Some("k")).unwrap();
        drop.admit(now_ms, user, &key, Quantity::parse(1).unwrap(), order_id)
    }

    #[test]
    fn orders_wait_for_the_announced_opening_time() {
        let mut drop = drop_of(5);
        drop.launch(10_000);
        assert_eq!(
            drop.phase(),
            Phase::Launched {
                opens_at_ms: 10_000
            }
        );
        assert_eq!(
            order(&mut drop, 9_999, "u1", "ord_a"),
            Decision::Reject(Rejection::NotOpen {
                opens_at_ms: Some(10_000)
            })
        );
        assert!(matches!(
            order(&mut drop, 10_000, "u1", "ord_a"),
            Decision::Fresh {
                answer: Answer::Reserved {
                    pay_by_ms: 11_000,
                    ..
                },
                stock_left: 4,
                sold_out_at_ms: None,
            }
        ));
    }

    #[test]
    fn the_last_unit_sells_out_and_an_expiry_brings_it_back() {
        let mut drop = drop_of(1);
        drop.launch(0);
        let sold = order(&mut drop, 100, "u1", "ord_a");
        assert!(matches!(
            sold,
            Decision::Fresh {
                sold_out_at_ms: Some(100),
                ..
            }
        ));
        assert!(matches!(
            order(&mut drop, 101, "u2", "ord_b"),
            Decision::Fresh {
                answer: Answer::SoldOut,
                ..
            }
        ));
        assert!(drop.due(1_100).is_empty(), "due only after the deadline");
        assert_eq!(drop.due(1_101), vec!["ord_a".to_string()]);
        assert_eq!(drop.expire(1_100, "ord_a"), Expiry::NotDue);
        assert_eq!(
            drop.expire(1_101, "ord_a"),
            Expiry::Expired { stock_left: 1 }
        );
        assert!(drop.due(5_000).is_empty());
        // Accepted, sold out, expired.
        assert_eq!(drop.events_appended(), 3);
    }
}
