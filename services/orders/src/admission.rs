//! Admission: the one atomic decision per order request, made by `admission.lua` in Redis.
//!
//! This module never acknowledges an order itself: an order is accepted only when the
//! script has taken the stock and appended the order to the drop's outbox in the same step.

use linkdrop_domain::backends::RedisConn;
use linkdrop_domain::ids::new_order_id;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::{IdempotencyKey, Quantity};

/// The answer to an order request, as recorded under its Idempotency-Key when final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reserved {
        order_id: String,
        qty: u32,
        pay_by_ms: i64,
    },
    /// A lottery entry; the draw at `draw_at_ms` decides.
    Entered {
        order_id: String,
        qty: u32,
        draw_at_ms: i64,
    },
    SoldOut,
    LimitReached {
        max_per_user: u32,
    },
}

/// What the script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A final answer decided by this request. `stock_left` is the drop's stock after it;
    /// `sold_out_at_ms` is set for the one request that took the last unit.
    Fresh {
        answer: Answer,
        stock_left: i64,
        sold_out_at_ms: Option<i64>,
    },
    /// The answer recorded earlier for the same user and key.
    Replay(Answer),
    /// Refused without recording anything.
    Reject(Rejection),
}

/// Refusals that are not recorded: the same key may succeed later (e.g. after opening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotFound,
    IdempotencyConflict,
    NotOpen {
        opens_at_ms: Option<i64>,
    },
    Closed,
    QtyOverLimit {
        max_per_user: u32,
    },
    /// The lottery window closed and the draw has not run yet.
    DrawPending {
        draw_at_ms: i64,
    },
}

/// A request the script could not make sense of: a bug, never a client error.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("admission script answered {0:?}")]
    Protocol(String),
}

/// Calls the admission script (loaded once, called by SHA, reloaded on NOSCRIPT).
#[derive(Clone)]
pub struct Admission {
    redis: RedisConn,
    keys: Keys,
    script: redis::Script,
}

impl Admission {
    pub fn new(redis: RedisConn, keys: Keys) -> Self {
        Self {
            redis,
            keys,
            script: redis::Script::new(include_str!("admission.lua")),
        }
    }

    /// Asks for `qty` units of `drop_id` on behalf of `user_id`.
    pub async fn admit(
        &self,
        drop_id: &str,
        user_id: &str,
        key: &IdempotencyKey,
        qty: Quantity,
    ) -> Result<Decision, AdmissionError> {
        let reply: Vec<String> = self
            .script
            .key(self.keys.drop_meta(drop_id))
            .key(self.keys.drop_holders(drop_id))
            .key(self.keys.drop_idempotency(drop_id))
            .key(self.keys.drop_outbox(drop_id))
            .key(self.keys.drop_entries(drop_id))
            .key(self.keys.drop_orders(drop_id))
            .key(self.keys.drop_deadlines(drop_id))
            .arg(user_id)
            .arg(key.as_str())
            .arg(fingerprint(qty))
            .arg(qty.get())
            .arg(new_order_id(drop_id))
            .invoke_async(&mut self.redis.clone())
            .await?;
        parse_reply(&reply)
    }
}

/// What identifies a request body: the same key with another fingerprint is a conflict.
fn fingerprint(qty: Quantity) -> String {
    format!("qty={}", qty.get())
}

fn parse_reply(reply: &[String]) -> Result<Decision, AdmissionError> {
    let bad = || AdmissionError::Protocol(reply.join(" | "));
    let field = |i: usize| reply.get(i).map(String::as_str).ok_or_else(bad);
    match field(0)? {
        "fresh" => Ok(Decision::Fresh {
            answer: parse_answer(field(1)?).ok_or_else(bad)?,
            stock_left: field(2)?.parse().map_err(|_| bad())?,
            sold_out_at_ms: match field(3)?.parse().map_err(|_| bad())? {
                0 => None,
                at => Some(at),
            },
        }),
        "replay" => Ok(Decision::Replay(parse_answer(field(1)?).ok_or_else(bad)?)),
        "reject" => {
            let number: i64 = field(2)?.parse().map_err(|_| bad())?;
            let rejection = match field(1)? {
                "not_found" => Rejection::NotFound,
                "idempotency_conflict" => Rejection::IdempotencyConflict,
                "not_open" => Rejection::NotOpen {
                    opens_at_ms: (number >= 0).then_some(number),
                },
                "closed" => Rejection::Closed,
                "invalid_qty" => Rejection::QtyOverLimit {
                    max_per_user: u32::try_from(number).map_err(|_| bad())?,
                },
                "draw_pending" => Rejection::DrawPending { draw_at_ms: number },
                _ => return Err(bad()),
            };
            Ok(Decision::Reject(rejection))
        }
        _ => Err(bad()),
    }
}

/// Parses a recorded answer: `reserved\t<id>\t<qty>\t<pay_by_ms>`,
/// `entered\t<id>\t<qty>\t<draw_at_ms>`, `sold_out` or `limit_reached\t<max>`.
fn parse_answer(text: &str) -> Option<Answer> {
    let parts: Vec<&str> = text.split('\t').collect();
    match parts.as_slice() {
        ["reserved", order_id, qty, pay_by_ms] => Some(Answer::Reserved {
            order_id: order_id.to_string(),
            qty: qty.parse().ok()?,
            pay_by_ms: pay_by_ms.parse().ok()?,
        }),
        ["entered", order_id, qty, draw_at_ms] => Some(Answer::Entered {
            order_id: order_id.to_string(),
            qty: qty.parse().ok()?,
            draw_at_ms: draw_at_ms.parse().ok()?,
        }),
        ["sold_out"] => Some(Answer::SoldOut),
        ["limit_reached", max] => Some(Answer::LimitReached {
            max_per_user: max.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_fresh_reservation_parses_with_its_stock() {
        let decision =
            parse_reply(&reply(&["fresh", "reserved\tord_1\t2\t1700", "0", "1600"])).unwrap();
        assert_eq!(
            decision,
            Decision::Fresh {
                answer: Answer::Reserved {
                    order_id: "ord_1".into(),
                    qty: 2,
                    pay_by_ms: 1700
                },
                stock_left: 0,
                sold_out_at_ms: Some(1600),
            }
        );
    }

    #[test]
    fn not_open_without_a_known_time_has_no_opens_at() {
        let decision = parse_reply(&reply(&["reject", "not_open", "-1"])).unwrap();
        assert_eq!(
            decision,
            Decision::Reject(Rejection::NotOpen { opens_at_ms: None })
        );
    }

    #[test]
    fn an_unknown_reply_is_a_protocol_error() {
        assert!(parse_reply(&reply(&["fresh", "reserved\tord_1"])).is_err());
        assert!(parse_reply(&reply(&["maybe"])).is_err());
        assert!(parse_reply(&[]).is_err());
    }
}
