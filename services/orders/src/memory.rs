//! One drop's live state and decisions in memory, with the semantics of its Redis scripts
//! (`admission.lua`, `draw.lua`, `pay.lua`, `expire.lua`): the admission engine of the embedded
//! backend (issue 9), where one process holds every drop and no Redis runs. Each method is
//! one atomic decision, as each script is; the caller serialises calls per drop (a mutex)
//! and gives the time, so that decisions are deterministic and testable.
//!
//! `tests/admission_model.rs` runs the same random operations against the scripts in Redis
//! and against this engine and requires the same answers and the same state after every
//! step. Not yet used by the binary: the embedded backend's queue and SQLite store come
//! next (see the issue notes).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::model::{Fairness, IdempotencyKey, OrderStatus, Quantity};

use crate::admission::{Answer, Decision, Rejection};
use crate::lifecycle::{Expiry, Payment};
use crate::lottery::{self, Draw, Entry};

/// What a drop sells and how, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub stock: u32,
    pub max_per_user: u32,
    pub pay_within_ms: i64,
    pub fairness: Fairness,
}

/// What a lottery draw came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrawOutcome {
    /// Drawn now: who won, the stock left and the sell-out time if the winners took it all.
    Drawn {
        draw: Draw,
        stock_left: i64,
        sold_out_at_ms: Option<i64>,
    },
    /// Drawn before (or not a lottery: nothing to draw).
    Already,
    /// The entry window is still open (or the drop not launched): not before `draw_at_ms`.
    TooEarly { draw_at_ms: Option<i64> },
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

/// One drop, first come first served or by lottery.
#[derive(Debug)]
pub struct MemoryDrop {
    drop_id: String,
    terms: Terms,
    phase: Phase,
    /// Whether the lottery was drawn (always false for first come, first served).
    drawn: bool,
    /// Lottery entries: user id → (order id, units).
    entries: BTreeMap<String, (String, u32)>,
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
    /// Every event the drop's decisions produced, oldest first.
    outbox: Vec<OrderEvent>,
}

impl MemoryDrop {
    pub fn new(drop_id: &str, terms: Terms) -> Self {
        Self {
            drop_id: drop_id.to_string(),
            stock_left: i64::from(terms.stock),
            terms,
            phase: Phase::Draft,
            drawn: false,
            entries: BTreeMap::new(),
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

    /// Events appended since the drop was created.
    pub fn events_appended(&self) -> usize {
        self.outbox.len()
    }

    /// The events appended after the first `n`, oldest first.
    pub fn events_since(&self, n: usize) -> &[OrderEvent] {
        self.outbox.get(n..).unwrap_or_default()
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
        let (answer, sold_out_at_ms) = if let Some(draw_at_ms) = self.entry_window(opens_at_ms) {
            if now_ms >= draw_at_ms {
                return Decision::Reject(Rejection::DrawPending { draw_at_ms });
            }
            (
                self.enter(now_ms, user_id, key, qty, order_id, draw_at_ms),
                None,
            )
        } else {
            self.decide(now_ms, user_id, key, qty, order_id)
        };
        self.recorded.insert(field, (fingerprint, answer.clone()));
        Decision::Fresh {
            answer,
            stock_left: self.stock_left,
            sold_out_at_ms,
        }
    }

    /// When the lottery's entry window of a drop opened at `opens_at_ms` ends, while the
    /// lottery is not drawn; `None` otherwise (orders are first come, first served).
    fn entry_window(&self, opens_at_ms: i64) -> Option<i64> {
        match self.terms.fairness {
            Fairness::Lottery { window_ms } if !self.drawn => {
                Some(opens_at_ms + i64::from(window_ms))
            }
            _ => None,
        }
    }

    /// A lottery entry: one per shopper (a second request gets the entry it has), no
    /// stock taken.
    fn enter(
        &mut self,
        now_ms: i64,
        user_id: &str,
        key: &IdempotencyKey,
        qty: u32,
        order_id: &str,
        draw_at_ms: i64,
    ) -> Answer {
        if let Some((order_id, qty)) = self.entries.get(user_id) {
            return Answer::Entered {
                order_id: order_id.clone(),
                qty: *qty,
                draw_at_ms,
            };
        }
        self.entries
            .insert(user_id.to_string(), (order_id.to_string(), qty));
        self.orders.insert(
            order_id.to_string(),
            LiveOrder {
                status: OrderStatus::Entered,
                user_id: user_id.to_string(),
                qty,
                pay_by_ms: 0,
                paid: None,
            },
        );
        self.outbox.push(OrderEvent::Accepted(OrderAccepted {
            order_id: order_id.to_string(),
            drop_id: self.drop_id.clone(),
            user_id: user_id.to_string(),
            qty,
            status: OrderStatus::Entered,
            admitted_at_ms: now_ms,
            pay_by_ms: None,
            idempotency_key: key.as_str().to_string(),
        }));
        Answer::Entered {
            order_id: order_id.to_string(),
            qty,
            draw_at_ms,
        }
    }

    /// First come, first served: the shopper's limit, then the stock.
    fn decide(
        &mut self,
        now_ms: i64,
        user_id: &str,
        key: &IdempotencyKey,
        qty: u32,
        order_id: &str,
    ) -> (Answer, Option<i64>) {
        let max_per_user = self.terms.max_per_user;
        let held = self.holders.get(user_id).copied().unwrap_or(0);
        if held + qty > max_per_user {
            (Answer::LimitReached { max_per_user }, None)
        } else if self.stock_left < i64::from(qty) {
            (Answer::SoldOut, None)
        } else {
            self.reserve(now_ms, user_id, key, qty, order_id)
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
        let pay_by_ms = self.take_units(now_ms, user_id, qty, order_id);
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
        let sold_out_at_ms = self.note_sell_out(now_ms);
        let answer = Answer::Reserved {
            order_id: order_id.to_string(),
            qty,
            pay_by_ms,
        };
        (answer, sold_out_at_ms)
    }

    /// Gives `order_id` (a new order or a winning entry) `qty` units, reserved until its
    /// payment deadline, which it returns.
    fn take_units(&mut self, now_ms: i64, user_id: &str, qty: u32, order_id: &str) -> i64 {
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
        pay_by_ms
    }

    /// When the stock just ran out: records the sell-out at `now_ms` and returns it.
    fn note_sell_out(&mut self, now_ms: i64) -> Option<i64> {
        let sold_out_at_ms = (self.stock_left == 0).then_some(now_ms);
        if let Some(at) = sold_out_at_ms {
            self.sold_out_at_ms = Some(at);
            self.outbox.push(OrderEvent::SoldOut(DropSoldOut {
                drop_id: self.drop_id.clone(),
                sold_out_at_ms: at,
            }));
        }
        sold_out_at_ms
    }

    /// Draws the lottery at `now_ms` with `seed`, as the lottery role and `draw.lua` do:
    /// once, after the entry window, over every entry; winners get their units and a
    /// payment deadline, the others lose.
    pub fn draw(&mut self, now_ms: i64, seed: &[u8]) -> DrawOutcome {
        let Phase::Launched { opens_at_ms } = self.phase else {
            return DrawOutcome::TooEarly { draw_at_ms: None };
        };
        let Some(draw_at_ms) = self.entry_window(opens_at_ms) else {
            return DrawOutcome::Already;
        };
        if now_ms < draw_at_ms {
            return DrawOutcome::TooEarly {
                draw_at_ms: Some(draw_at_ms),
            };
        }
        let entries = self
            .entries
            .iter()
            .map(|(user_id, (order_id, qty))| Entry {
                user_id: user_id.clone(),
                order_id: order_id.clone(),
                qty: *qty,
            })
            .collect();
        let stock = u32::try_from(self.stock_left.max(0)).unwrap_or(u32::MAX);
        let draw = lottery::draw(seed, entries, stock);
        for (_, entry, won) in &draw.ranked {
            self.settle_entry(now_ms, entry, *won);
        }
        self.drawn = true;
        DrawOutcome::Drawn {
            stock_left: self.stock_left,
            sold_out_at_ms: self.note_sell_out(now_ms),
            draw,
        }
    }

    /// One entry's result: its units and a deadline when it won, lost otherwise.
    fn settle_entry(&mut self, now_ms: i64, entry: &Entry, won: bool) {
        let pay_by_ms = if won {
            Some(self.take_units(now_ms, &entry.user_id, entry.qty, &entry.order_id))
        } else {
            if let Some(order) = self.orders.get_mut(&entry.order_id) {
                order.status = OrderStatus::Lost;
            }
            None
        };
        self.outbox.push(OrderEvent::Drawn(OrderDrawn {
            order_id: entry.order_id.clone(),
            drop_id: self.drop_id.clone(),
            user_id: entry.user_id.clone(),
            status: if won {
                OrderStatus::Reserved
            } else {
                OrderStatus::Lost
            },
            drawn_at_ms: now_ms,
            pay_by_ms,
        }));
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
        lottery_of(stock, Fairness::Fcfs)
    }

    fn lottery_of(stock: u32, fairness: Fairness) -> MemoryDrop {
        MemoryDrop::new(
            "drp_1",
            Terms {
                stock,
                max_per_user: 2,
                pay_within_ms: 1_000,
                fairness,
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

    #[test]
    fn a_lottery_takes_one_entry_per_shopper_and_draws_once_after_its_window() {
        let mut drop = lottery_of(2, Fairness::Lottery { window_ms: 500 });
        drop.launch(1_000);
        let entered = order(&mut drop, 1_100, "u1", "ord_a");
        assert!(matches!(
            entered,
            Decision::Fresh {
                answer: Answer::Entered {
                    draw_at_ms: 1_500,
                    ..
                },
                stock_left: 2,
                ..
            }
        ));
        // Another key of the same shopper gets the entry it has.
        let key = IdempotencyKey::parse(Some("other")).unwrap();
        let again = drop.admit(1_200, "u1", &key, Quantity::parse(2).unwrap(), "ord_x");
        assert!(matches!(
            again,
            Decision::Fresh { answer: Answer::Entered { ref order_id, qty: 1, .. }, .. } if order_id == "ord_a"
        ));
        for (user, id) in [("u2", "ord_b"), ("u3", "ord_c")] {
            order(&mut drop, 1_300, user, id);
        }
        assert_eq!(
            order(&mut drop, 1_500, "u4", "ord_d"),
            Decision::Reject(Rejection::DrawPending { draw_at_ms: 1_500 })
        );
        assert_eq!(
            drop.draw(1_499, b"seed"),
            DrawOutcome::TooEarly {
                draw_at_ms: Some(1_500)
            }
        );
        let DrawOutcome::Drawn {
            draw,
            stock_left,
            sold_out_at_ms,
        } = drop.draw(1_500, b"seed")
        else {
            panic!("the lottery draws after its window");
        };
        // The same winners as the lottery role computes for these entries.
        let entries = [("u1", "ord_a"), ("u2", "ord_b"), ("u3", "ord_c")]
            .map(|(user_id, order_id)| Entry {
                user_id: user_id.into(),
                order_id: order_id.into(),
                qty: 1,
            })
            .to_vec();
        assert_eq!(draw, lottery::draw(b"seed", entries, 2));
        assert_eq!((stock_left, sold_out_at_ms), (0, Some(1_500)));
        assert_eq!(drop.holders().values().sum::<u32>(), 2);
        assert_eq!(drop.draw(1_600, b"seed"), DrawOutcome::Already);
        // After the draw, orders are first come, first served: sold out.
        assert!(matches!(
            order(&mut drop, 1_600, "u5", "ord_e"),
            Decision::Fresh {
                answer: Answer::SoldOut,
                ..
            }
        ));
        // Three entries, three draw results, one sell-out.
        assert_eq!(drop.events_appended(), 7);
    }
}
