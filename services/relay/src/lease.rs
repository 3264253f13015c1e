//! Per-drop leases of the relays (`lease.lua`): one relay at a time produces a drop's
//! events, so Kafka keeps them in the order they happened even when several relays run.

use linkdrop_domain::keys::Keys;
use linkdrop_infra::backends::RedisConn;

/// What asking for a lease came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This relay now holds the drop, which another relay may have left half done.
    Acquired,
    Renewed,
    HeldElsewhere,
}

/// The leases of one relay.
#[derive(Clone)]
pub struct Leases {
    redis: RedisConn,
    keys: Keys,
    consumer: String,
    /// How long a lease lasts without renewal. The relay renews every housekeeping round
    /// (a second), so a live relay keeps its drops and a dead one loses them within this.
    lease_ms: u64,
    script: redis::Script,
}

impl Leases {
    pub fn new(redis: RedisConn, keys: Keys, consumer: String, lease_ms: u64) -> Self {
        Self {
            redis,
            keys,
            consumer,
            lease_ms,
            script: redis::Script::new(include_str!("lease.lua")),
        }
    }

    /// Takes or renews the lease on `drop_id`.
    pub async fn hold(&self, drop_id: &str) -> redis::RedisResult<Lease> {
        let answer: u8 = self.call(drop_id, self.lease_ms).await?;
        Ok(match answer {
            2 => Lease::Acquired,
            1 => Lease::Renewed,
            _ => Lease::HeldElsewhere,
        })
    }

    /// Gives `drop_id` up (on shutdown), so that another relay need not wait for expiry.
    pub async fn release(&self, drop_id: &str) -> redis::RedisResult<()> {
        self.call(drop_id, 0).await.map(drop)
    }

    async fn call(&self, drop_id: &str, ttl_ms: u64) -> redis::RedisResult<u8> {
        self.script
            .key(self.keys.relay_lease(drop_id))
            .arg(&self.consumer)
            .arg(ttl_ms)
            .invoke_async(&mut self.redis.clone())
            .await
    }
}
