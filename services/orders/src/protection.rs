//! What stands between a flood of requests and the admission script: per-IP and per-user
//! rate limits (429 `rate_limited` with Retry-After) and a cap on requests in flight that
//! sheds load (503 `overloaded` with Retry-After) instead of queueing without bound.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use linkdrop_infra::ApiError;
use linkdrop_infra::config::OrdersConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How often idle limiter keys are forgotten, so memory follows the active shoppers.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);

/// Limits of the orders API; a rate of 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_user_per_s: u32,
    pub per_ip_per_s: u32,
    pub max_in_flight: usize,
}

impl From<&OrdersConfig> for Limits {
    fn from(config: &OrdersConfig) -> Self {
        Self {
            per_user_per_s: config.per_user_per_s,
            per_ip_per_s: config.per_ip_per_s,
            max_in_flight: config.max_in_flight,
        }
    }
}

/// The limiters of one orders process.
#[derive(Clone)]
pub struct Protection {
    per_user: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    in_flight: Arc<Semaphore>,
}

impl Protection {
    pub fn new(limits: Limits) -> Self {
        Self {
            per_user: limiter(limits.per_user_per_s),
            per_ip: limiter(limits.per_ip_per_s),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        }
    }

    /// 429 when `ip` sent more than its share.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.per_ip.as_deref(), &ip, "ip")
    }

    /// 429 when `user_id` sent more than its share.
    pub fn check_user(&self, user_id: &str) -> Result<(), ApiError> {
        check(self.per_user.as_deref(), &user_id.to_string(), "user")
    }

    /// A place among the requests in flight, or 503 when all are taken. Held until the
    /// answer is decided.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("linkdrop_orders_shed_total").increment(1);
            ApiError::Overloaded { retry_after_s: 1 }
        })
    }

    /// Forgets idle keys every minute until `shutdown`.
    pub async fn clean_up(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(CLEANUP_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Some(l) = &self.per_user {
                l.retain_recent();
            }
            if let Some(l) = &self.per_ip {
                l.retain_recent();
            }
        }
    }
}

/// A keyed limiter allowing `per_s` requests a second with bursts of the same size.
fn limiter<K: Hash + Eq + Clone>(per_s: u32) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    NonZeroU32::new(per_s).map(|rate| Arc::new(RateLimiter::keyed(Quota::per_second(rate))))
}

fn check<K: Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    scope: &'static str,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        metrics::counter!("linkdrop_orders_rate_limited_total", "scope" => scope).increment(1);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_the_rate_is_told_when_to_retry() {
        let protection = Protection::new(Limits {
            per_user_per_s: 2,
            per_ip_per_s: 0,
            max_in_flight: 10,
        });
        assert!(protection.check_user("u").is_ok());
        assert!(protection.check_user("u").is_ok());
        let err = protection.check_user("u").unwrap_err();
        assert!(
            matches!(err, ApiError::RateLimited { retry_after_s: 1 }),
            "{err:?}"
        );
        assert!(protection.check_user("someone-else").is_ok());
    }

    #[test]
    fn a_zero_rate_means_unlimited() {
        let protection = Protection::new(Limits {
            per_user_per_s: 0,
            per_ip_per_s: 0,
            max_in_flight: 1,
        });
        for _ in 0..1000 {
            protection.check_ip("127.0.0.1".parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn requests_beyond_the_in_flight_cap_are_shed() {
        let protection = Protection::new(Limits {
            per_user_per_s: 0,
            per_ip_per_s: 0,
            max_in_flight: 2,
        });
        let first = protection.enter().unwrap();
        let _second = protection.enter().unwrap();
        assert!(matches!(
            protection.enter(),
            Err(ApiError::Overloaded { .. })
        ));
        drop(first);
        assert!(protection.enter().is_ok());
    }
}
