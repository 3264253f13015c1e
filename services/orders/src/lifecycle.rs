//! Payment and expiry of reserved orders, decided in Redis next to the stock they concern.
//!
//! `pay.lua` and `expire.lua` each act only on an order that is still `reserved`, so an
//! order is paid or expired, never both, and expiry returns its units exactly once. A
//! payment that arrives after the deadline is refused (`expired`) and the order expired on
//! the spot. Every change goes to the drop's outbox, so PostgreSQL and the merchant learn of
//! it the way they learn of new orders.

use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_news::with_news;
use linkdrop_domain::ids::drop_of_order;
use linkdrop_domain::keys::Keys;
use linkdrop_infra::backends::RedisConn;
use tokio_util::sync::CancellationToken;

use crate::stock::StockTicker;

/// Most overdue orders one drop has expired per round of the expiry worker.
const EXPIRE_BATCH: usize = 500;

/// What a payment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    /// Paid now or before (the first payment's time and reference).
    Paid {
        paid_at_ms: i64,
        payment_ref: String,
        qty: u32,
    },
    /// The deadline passed: the units went (or go now) back to the stock.
    Expired,
    /// The order is not a reservation (`entered`, `lost`).
    NotPayable { status: String },
    /// No such order of this shopper.
    NotFound,
}

/// What an expiry attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    Expired { stock_left: i64 },
    NotReserved,
    NotDue,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("lifecycle script answered {0:?}")]
    Protocol(Vec<String>),
}

/// Pays and expires orders.
#[derive(Clone)]
pub struct Lifecycle {
    redis: RedisConn,
    keys: Keys,
    stock: StockTicker,
    pay: redis::Script,
    expire: redis::Script,
}

impl Lifecycle {
    pub fn new(redis: RedisConn, keys: Keys, stock: StockTicker) -> Self {
        Self {
            redis,
            keys,
            stock,
            pay: redis::Script::new(include_str!("pay.lua")),
            expire: redis::Script::new(&with_news(include_str!("expire.lua"))),
        }
    }

    /// Pays `order_id` on behalf of `user_id`.
    pub async fn pay(
        &self,
        order_id: &str,
        user_id: &str,
        payment_ref: &str,
    ) -> Result<Payment, LifecycleError> {
        let Some(drop_id) = drop_of_order(order_id) else {
            return Ok(Payment::NotFound);
        };
        let reply: Vec<String> = self
            .pay
            .key(self.keys.drop_meta(&drop_id))
            .key(self.keys.drop_orders(&drop_id))
            .key(self.keys.drop_outbox(&drop_id))
            .key(self.keys.drop_deadlines(&drop_id))
            .arg(order_id)
            .arg(user_id)
            .arg(payment_ref)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let bad = || LifecycleError::Protocol(reply.clone());
        match reply
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["paid", at, reference, qty] => Ok(Payment::Paid {
                paid_at_ms: at.parse().map_err(|_| bad())?,
                payment_ref: reference.to_string(),
                qty: qty.parse().map_err(|_| bad())?,
            }),
            ["expired"] => Ok(Payment::Expired),
            ["past_due"] => {
                self.expire(&drop_id, order_id).await?;
                Ok(Payment::Expired)
            }
            ["not_reserved", status] => Ok(Payment::NotPayable {
                status: status.to_string(),
            }),
            ["not_found"] => Ok(Payment::NotFound),
            _ => Err(bad()),
        }
    }

    /// Expires `order_id` of `drop_id` if it is reserved and overdue.
    pub async fn expire(&self, drop_id: &str, order_id: &str) -> Result<Expiry, LifecycleError> {
        let reply: Vec<String> = self
            .expire
            .key(self.keys.drop_meta(drop_id))
            .key(self.keys.drop_orders(drop_id))
            .key(self.keys.drop_holders(drop_id))
            .key(self.keys.drop_outbox(drop_id))
            .key(self.keys.drop_deadlines(drop_id))
            .arg(self.keys.drop_news_channel())
            .arg(drop_id)
            .arg(order_id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let outcome = match reply
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["expired", stock_left] => Expiry::Expired {
                stock_left: stock_left
                    .parse()
                    .map_err(|_| LifecycleError::Protocol(reply.clone()))?,
            },
            ["not_due", _] => Expiry::NotDue,
            ["not_reserved", _] | ["unknown"] => Expiry::NotReserved,
            _ => return Err(LifecycleError::Protocol(reply)),
        };
        if let Expiry::Expired { .. } = outcome {
            metrics::counter!("linkdrop_orders_expired_total").increment(1);
            self.stock.stock_changed(drop_id);
        }
        Ok(outcome)
    }

    /// Expires every overdue order of every drop with an outbox; how many expired.
    pub async fn expire_due(&self) -> Result<usize, LifecycleError> {
        let drops: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.outboxes())
            .query_async(&mut self.redis.clone())
            .await?;
        let mut expired = 0;
        for drop_id in drops {
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.drop_deadlines(&drop_id))
                .arg("-inf")
                .arg(now_ms())
                .arg("LIMIT")
                .arg(0)
                .arg(EXPIRE_BATCH)
                .query_async(&mut self.redis.clone())
                .await?;
            for order_id in due {
                if let Expiry::Expired { .. } = self.expire(&drop_id, &order_id).await? {
                    expired += 1;
                }
            }
        }
        Ok(expired)
    }

    /// Expires overdue orders every `poll` until `shutdown`. Every orders process runs
    /// one; the scripts make their overlap harmless.
    pub async fn run_expiry(self, poll: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(poll);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.expire_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expired unpaid orders"),
                Err(e) => tracing::warn!(error = %e, "expiry round failed"),
            }
        }
    }
}
