//! The dispatcher: claims due deliveries from the webhook outbox, sends them signed per
//! Standard Webhooks, records every attempt and schedules the next one.
//!
//! Claiming marks a delivery locked for a while (`FOR UPDATE SKIP LOCKED` inside one
//! statement), so several dispatchers share the work without holding a transaction open
//! across an HTTP call; a dispatcher that dies leaves locks that simply expire. A delivery
//! is marked done only after a 2xx, so every event arrives at least once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use linkdrop_domain::clock::Clock;
use linkdrop_domain::secret::Secret;
use linkdrop_domain::webhook_secrets::SealingKey;
use linkdrop_domain::webhook_signature::sign;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::guard::{Guard, GuardedResolver};
use crate::schedule::{MAX_ATTEMPTS, next_attempt_at};

/// Deliveries claimed per round.
const CLAIM_BATCH: i64 = 64;
/// Deliveries in flight at once per dispatcher.
const CONCURRENCY: usize = 32;
/// How long a claim holds a delivery: longer than any attempt can take.
const LOCK_MS: i64 = 5 * 60_000;
/// Bytes of a response body kept in the attempts log.
const KEEP_RESPONSE_BYTES: usize = 1024;
/// Connecting to an endpoint may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often attempts past their retention are deleted.
const PURGE_EVERY_MS: i64 = 60_000;

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
struct Claimed {
    message_id: String,
    endpoint_id: String,
    attempts: i32,
    body: String,
    url: String,
    /// Sealed (see `webhook_secrets`), like the previous secret.
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until_ms: Option<i64>,
}

/// How a dispatcher behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Total time allowed for one attempt.
    pub timeout: Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after_ms: i64,
    /// Attempts are kept this long.
    pub attempts_retention_ms: i64,
    /// Opens the stored signing secrets.
    pub sealing: SealingKey,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub retry_after_ms: Option<i64>,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }

    /// 410 Gone: the endpoint asks never to be called again.
    fn endpoint_gone(&self) -> bool {
        self.status_code == Some(410)
    }
}

/// Sends webhooks.
#[derive(Clone)]
pub struct Dispatcher {
    db: PgPool,
    http: reqwest::Client,
    guard: Guard,
    settings: Settings,
    clock: Arc<dyn Clock>,
    /// When attempts were last purged.
    purged_at_ms: Arc<AtomicI64>,
}

impl Dispatcher {
    pub fn new(db: PgPool, guard: Guard, settings: Settings, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .user_agent(concat!("linkdrop-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook HTTP client builds");
        Self {
            db,
            http,
            guard,
            settings,
            clock,
            purged_at_ms: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Runs until `shutdown`: a round whenever a delivery may be due (notified by the
    /// writers, or every `poll` at the latest).
    pub async fn run(self, poll: Duration, shutdown: CancellationToken) {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&self.db).await {
            Ok(mut l) => match l.listen("webhook_due").await {
                Ok(()) => Some(l),
                Err(_) => None,
            },
            Err(_) => None,
        };
        loop {
            if let Err(e) = self.purge_old_attempts().await {
                tracing::warn!(error = %e, "could not purge old webhook attempts");
            }
            match self.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook round failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
                _ = notified(&mut listener) => {}
            }
        }
        tracing::info!("webhook dispatcher stopped");
    }

    /// Claims the due deliveries and attempts each once; returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let claimed = self.claim().await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(CONCURRENCY, |delivery| async move {
                let attempt = self.attempt(&delivery).await;
                if let Err(e) = self.record(&delivery, &attempt).await {
                    // The lock expires and the delivery is attempted again: at least once.
                    tracing::warn!(error = %e, message_id = %delivery.message_id, "could not record attempt");
                }
            })
            .await;
        Ok(count)
    }

    /// Deletes attempts older than the retention, at most once a minute; how many.
    pub async fn purge_old_attempts(&self) -> Result<u64, sqlx::Error> {
        let now = self.clock.now_ms();
        let last = self.purged_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PURGE_EVERY_MS {
            return Ok(0);
        }
        self.purged_at_ms.store(now, Ordering::Relaxed);
        let purged = sqlx::query!(
            "DELETE FROM webhook_attempts WHERE attempted_at_ms < $1",
            now - self.settings.attempts_retention_ms
        )
        .execute(&self.db)
        .await?
        .rows_affected();
        Ok(purged)
    }

    /// Claims due deliveries of enabled endpoints (a disabled endpoint's wait for it to be
    /// enabled again).
    async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        let now = self.clock.now_ms();
        sqlx::query_as!(
            Claimed,
            r#"WITH due AS (
                   SELECT d.message_id, d.endpoint_id
                   FROM webhook_deliveries d
                   JOIN webhook_endpoints e ON e.id = d.endpoint_id
                   WHERE d.state = 'pending' AND d.next_attempt_at_ms <= $1
                     AND (d.locked_until_ms IS NULL OR d.locked_until_ms < $1)
                     AND e.disabled_at_ms IS NULL
                   ORDER BY d.next_attempt_at_ms
                   LIMIT $2
                   FOR UPDATE OF d SKIP LOCKED
               ), claimed AS (
                   UPDATE webhook_deliveries d SET locked_until_ms = $1 + $3
                   FROM due
                   WHERE d.message_id = due.message_id AND d.endpoint_id = due.endpoint_id
                   RETURNING d.message_id, d.endpoint_id, d.attempts
               )
               SELECT c.message_id AS "message_id!", c.endpoint_id AS "endpoint_id!",
                      c.attempts AS "attempts!", m.body, e.url, e.secret,
                      e.previous_secret, e.previous_secret_until_ms
               FROM claimed c
               JOIN webhook_messages m ON m.id = c.message_id
               JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
            now,
            CLAIM_BATCH,
            LOCK_MS
        )
        .fetch_all(&self.db)
        .await
    }

    /// One signed POST of the message to the endpoint.
    async fn attempt(&self, delivery: &Claimed) -> Attempt {
        let started = Instant::now();
        let outcome = self.send(delivery).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let attempt = match outcome {
            Ok((status, retry_after_ms, body)) => Attempt {
                status_code: Some(status),
                error: None,
                duration_ms,
                response_body: Some(body),
                retry_after_ms,
            },
            Err(error) => Attempt {
                status_code: None,
                error: Some(error),
                duration_ms,
                response_body: None,
                retry_after_ms: None,
            },
        };
        let result = if attempt.succeeded() {
            "delivered"
        } else {
            "failed"
        };
        metrics::counter!("linkdrop_webhook_attempts_total", "result" => result).increment(1);
        attempt
    }

    async fn send(&self, delivery: &Claimed) -> Result<(u16, Option<i64>, String), String> {
        let url = Url::parse(&delivery.url).map_err(|_| "stored URL does not parse".to_string())?;
        // Addresses written in the URL skip DNS, so the resolver cannot check them.
        if let Some(ip) = url
            .host_str()
            .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
            && !self.guard.permits(ip)
        {
            return Err(format!("{ip} is not a permitted address"));
        }
        let now_ms = self.clock.now_ms();
        let timestamp = now_ms / 1000;
        let signature = self
            .signing_secrets(delivery, now_ms)?
            .iter()
            .map(|secret| sign(secret, &delivery.message_id, timestamp, &delivery.body))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?
            .join(" ");
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| describe(e.without_url()))?;
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|s| s * 1000);
        let body = response.bytes().await.unwrap_or_default();
        let kept = &body[..body.len().min(KEEP_RESPONSE_BYTES)];
        Ok((
            status,
            retry_after_ms,
            String::from_utf8_lossy(kept).into_owned(),
        ))
    }

    /// The endpoint's secret, and the previous one while a rotation overlaps.
    fn signing_secrets(&self, delivery: &Claimed, now_ms: i64) -> Result<Vec<Secret>, String> {
        let open = |stored: &str| {
            self.settings
                .sealing
                .open(stored, &delivery.endpoint_id)
                .map_err(|e| e.to_string())
        };
        let mut secrets = vec![open(&delivery.secret)?];
        if let (Some(previous), Some(until)) =
            (&delivery.previous_secret, delivery.previous_secret_until_ms)
            && now_ms < until
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }

    /// Logs the attempt and moves the delivery on: done, retried later, or dead.
    async fn record(&self, delivery: &Claimed, attempt: &Attempt) -> Result<(), sqlx::Error> {
        let now = self.clock.now_ms();
        let attempts = delivery.attempts + 1;
        let (state, next) = if attempt.succeeded() {
            ("delivered", now)
        } else if attempt.endpoint_gone() {
            ("dead", now)
        } else {
            let throttled = matches!(attempt.status_code, Some(429 | 502 | 503 | 504));
            let retry_after = attempt.retry_after_ms.filter(|_| throttled);
            match next_attempt_at(now, attempts, retry_after, &mut rand::rng()) {
                Some(at) if attempts < MAX_ATTEMPTS => ("pending", at),
                _ => ("dead", now),
            }
        };
        let mut tx = self.db.begin().await?;
        sqlx::query!(
            "INSERT INTO webhook_attempts (message_id, endpoint_id, attempted_at_ms, status_code,
                                           error, duration_ms, response_body)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            delivery.message_id,
            delivery.endpoint_id,
            now,
            attempt.status_code.map(i32::from),
            attempt.error,
            attempt.duration_ms as i32,
            attempt.response_body
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE webhook_deliveries
             SET state = $3, attempts = $4, next_attempt_at_ms = $5, locked_until_ms = NULL
             WHERE message_id = $1 AND endpoint_id = $2",
            delivery.message_id,
            delivery.endpoint_id,
            state,
            attempts,
            next
        )
        .execute(&mut *tx)
        .await?;
        self.update_endpoint_health(&mut tx, delivery, attempt, now)
            .await?;
        tx.commit().await?;
        if state == "dead" {
            tracing::warn!(message_id = %delivery.message_id, endpoint_id = %delivery.endpoint_id, attempts, "webhook dead-lettered");
            metrics::counter!("linkdrop_webhook_dead_total").increment(1);
        }
        Ok(())
    }

    /// A success clears the endpoint's failing streak; a failure starts one or, once it
    /// has lasted the configured period, disables the endpoint. A 410 disables at once.
    async fn update_endpoint_health(
        &self,
        tx: &mut sqlx::PgConnection,
        delivery: &Claimed,
        attempt: &Attempt,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if attempt.succeeded() {
            sqlx::query!(
                "UPDATE webhook_endpoints SET failing_since_ms = NULL
                 WHERE id = $1 AND failing_since_ms IS NOT NULL",
                delivery.endpoint_id
            )
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        let gone = attempt.endpoint_gone();
        let disabled = sqlx::query_scalar!(
            "UPDATE webhook_endpoints
             SET failing_since_ms = coalesce(failing_since_ms, $2),
                 disabled_at_ms = CASE
                     WHEN $4 OR coalesce(failing_since_ms, $2) <= $2 - $3 THEN $2
                     ELSE disabled_at_ms END,
                 disabled_reason = CASE
                     WHEN $4 THEN 'the endpoint answered 410 Gone'
                     WHEN coalesce(failing_since_ms, $2) <= $2 - $3
                         THEN 'every attempt failed for too long'
                     ELSE disabled_reason END
             WHERE id = $1 AND disabled_at_ms IS NULL
             RETURNING disabled_at_ms IS NOT NULL AS \"disabled!\"",
            delivery.endpoint_id,
            now,
            self.settings.disable_after_ms,
            gone
        )
        .fetch_optional(&mut *tx)
        .await?;
        if disabled == Some(true) {
            tracing::warn!(endpoint_id = %delivery.endpoint_id, gone, "webhook endpoint disabled");
            metrics::counter!("linkdrop_webhook_endpoints_disabled_total").increment(1);
        }
        Ok(())
    }
}

/// Resolves when the listener hears a notification; never when there is no listener.
async fn notified(listener: &mut Option<sqlx::postgres::PgListener>) {
    match listener {
        Some(l) => {
            if l.recv().await.is_err() {
                // The listener reconnects by itself; fall back to polling meanwhile.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// A failed request, with its causes but without the URL (which may carry a token).
fn describe(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
