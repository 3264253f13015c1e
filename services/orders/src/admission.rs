//! Admission: the atomic decision on order requests, made by `admission.lua` in Redis for a
//! batch of requests to one drop at a time (a batch of one is a single request).
//!
//! This module never acknowledges an order itself: an order is accepted only when the
//! script has taken the stock and appended the order to the drop's outbox in the same step.

use linkdrop_domain::drop_news::{DropNews, with_news};
use linkdrop_domain::ids::new_order_id;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::{IdempotencyKey, Quantity};
use linkdrop_infra::backends::RedisConn;
use redis::Value;

/// Most requests one script call decides (the script takes six values per request).
pub const MAX_BATCH: usize = 1000;

/// A final answer to an order request, recorded under its Idempotency-Key.
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
    LimitReached {
        max_per_user: u32,
    },
}

/// What the script decided for one request.
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

/// Refusals that are not recorded: the same key may succeed later (after opening, when
/// units come back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotFound,
    IdempotencyConflict,
    NotOpen {
        opens_at_ms: Option<i64>,
    },
    Closed,
    SoldOut,
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
    #[error("admission script answered {0}")]
    Protocol(String),
}

/// One order request as the script takes it.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub user_id: String,
    pub key: IdempotencyKey,
    pub qty: Quantity,
    /// The trace context (`traceparent`) the order carries on to settlement; None when
    /// the request is not traced.
    pub trace: Option<String>,
}

/// What one script call decided: a decision per request, in their order, and the drop's
/// news when the call changed the drop.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decisions: Vec<Decision>,
    pub news: Option<DropNews>,
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
            script: redis::Script::new(&with_news(include_str!("admission.lua"))),
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
        let request = OrderRequest {
            user_id: user_id.to_string(),
            key: key.clone(),
            qty,
            trace: None,
        };
        let mut decided = self
            .admit_batch(drop_id, std::slice::from_ref(&request))
            .await?;
        decided
            .decisions
            .pop()
            .ok_or_else(|| AdmissionError::Protocol("no decision".into()))
    }

    /// Decides `requests` (at most [`MAX_BATCH`]) for `drop_id` in one atomic step, in
    /// their order: each gets the answer it would get alone at its place.
    pub async fn admit_batch(
        &self,
        drop_id: &str,
        requests: &[OrderRequest],
    ) -> Result<Decided, AdmissionError> {
        debug_assert!(requests.len() <= MAX_BATCH);
        let keys = &self.keys;
        let mut invocation = self.script.key(keys.drop_meta(drop_id));
        invocation
            .key(keys.drop_holders(drop_id))
            .key(keys.drop_idempotency(drop_id))
            .key(keys.drop_outbox(drop_id))
            .key(keys.drop_entries(drop_id))
            .key(keys.drop_orders(drop_id))
            .key(keys.drop_deadlines(drop_id))
            .arg(keys.drop_news_channel())
            .arg(drop_id);
        for request in requests {
            invocation
                .arg(&request.user_id)
                .arg(request.key.as_str())
                .arg(fingerprint(request.qty))
                .arg(request.qty.get())
                .arg(new_order_id(drop_id))
                .arg(request.trace.as_deref().unwrap_or(""));
        }
        let reply: Vec<Value> = invocation.invoke_async(&mut self.redis.clone()).await?;
        let decided = parse_batch(&reply)?;
        if decided.decisions.len() != requests.len() {
            return Err(AdmissionError::Protocol(format!(
                "{} decisions for {} requests",
                decided.decisions.len(),
                requests.len()
            )));
        }
        Ok(decided)
    }
}

/// What identifies a request body: the same key with another fingerprint is a conflict.
fn fingerprint(qty: Quantity) -> String {
    format!("qty={}", qty.get())
}

fn parse_batch(reply: &[Value]) -> Result<Decided, AdmissionError> {
    let (news, replies) = reply
        .split_first()
        .ok_or_else(|| AdmissionError::Protocol("an empty reply".into()))?;
    let news = match text(news) {
        Some(line) if line.is_empty() => None,
        Some(line) => {
            Some(DropNews::parse(&line).map_err(|e| AdmissionError::Protocol(e.to_string()))?)
        }
        None => return Err(AdmissionError::Protocol(format!("news {news:?}"))),
    };
    let decisions = replies
        .iter()
        .map(|r| match r {
            Value::Array(parts) => {
                let parts: Option<Vec<String>> = parts.iter().map(text).collect();
                parts
                    .ok_or_else(|| AdmissionError::Protocol(format!("{r:?}")))
                    .and_then(|parts| parse_reply(&parts))
            }
            other => Err(AdmissionError::Protocol(format!("{other:?}"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Decided { decisions, news })
}

/// A script value as text (Lua numbers come back as integers).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
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
                "sold_out" => Rejection::SoldOut,
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
/// `entered\t<id>\t<qty>\t<draw_at_ms>` or `limit_reached\t<max>`.
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

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
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
    fn a_batch_reply_has_news_then_one_decision_per_request() {
        let news = "change\tdrp_1\t4\tlaunched\t1000\t0\tfcfs\t\t\t1\tu1";
        let reply = [
            bulk(news),
            Value::Array(vec![
                bulk("fresh"),
                bulk("reserved\tord_1\t1\t1700"),
                Value::Int(0),
                Value::Int(1600),
            ]),
            Value::Array(vec![bulk("reject"), bulk("sold_out"), Value::Int(0)]),
        ];
        let decided = parse_batch(&reply).unwrap();
        assert_eq!(decided.news.unwrap().users, ["u1"]);
        assert_eq!(decided.decisions[1], Decision::Reject(Rejection::SoldOut));
        assert!(parse_batch(&[bulk("")]).unwrap().news.is_none());
    }

    #[test]
    fn an_unknown_reply_is_a_protocol_error() {
        assert!(parse_reply(&reply(&["fresh", "reserved\tord_1"])).is_err());
        assert!(parse_reply(&reply(&["maybe"])).is_err());
        assert!(parse_reply(&[]).is_err());
        assert!(parse_batch(&[]).is_err());
    }
}
