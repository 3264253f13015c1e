//! The dispatcher: claims due deliveries from the webhook outbox, sends them signed per
//! Standard Webhooks, records every attempt and schedules the next one.
//!
//! Claiming marks a delivery locked for a while (`FOR UPDATE SKIP LOCKED` inside one
//! statement on PostgreSQL, one write transaction on SQLite), so several dispatchers share
//! the work without holding a transaction open across an HTTP call; a dispatcher that dies
//! leaves locks that simply expire. A delivery
//! is marked done only after a 2xx, so every event arrives at least once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use linkdrop_domain::clock::Clock;
use linkdrop_domain::model::DeliveryState;
use linkdrop_domain::secret::Secret;
use linkdrop_domain::webhook_secrets::SealingKey;
use linkdrop_domain::webhook_signature::sign;
use linkdrop_infra::config::WebhooksConfig;
use linkdrop_infra::failpoint;
use linkdrop_infra::trace::{SpanKind, Trace};
use linkdrop_records::db::{Db, Listener, Tx};
use linkdrop_records::webhooks::deliveries::{self, Claimed, Moved, NewAttempt};
use linkdrop_records::webhooks::{health, outbox, retention};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tokio_util::sync::CancellationToken;

use crate::guard::{Guard, GuardedResolver};
use crate::schedule::{MAX_ATTEMPTS, next_attempt_at};

/// Deliveries claimed per round.
const CLAIM_BATCH: i64 = 64;
/// Deliveries in flight at once per dispatcher.
const CONCURRENCY: usize = 32;
/// How long a claim holds a delivery beyond the attempt's own limit (`Settings::timeout`):
/// the time to record the attempt, retried while the database is away. A dispatcher that
/// dies mid-round leaves locks that lapse this soon after, and its deliveries are attempted
/// again on their schedule rather than minutes later.
const LOCK_MARGIN_MS: i64 = 30_000;
/// Pause between tries to record a round's attempts while the database is away.
const RECORD_RETRY: Duration = Duration::from_millis(500);
/// Bytes of a response body kept in the attempts log.
const KEEP_RESPONSE_BYTES: usize = 1024;
/// Connecting to an endpoint may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often attempts past their retention are deleted.
const PURGE_EVERY_MS: i64 = 60_000;

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

impl Settings {
    /// The settings the configuration asks for, with the key that opens signing secrets
    /// (a secret, so not part of the webhooks section).
    pub fn new(config: &WebhooksConfig, sealing: SealingKey) -> Self {
        Self {
            timeout: Duration::from_millis(config.timeout_ms),
            disable_after_ms: config.disable_after_ms,
            attempts_retention_ms: config.attempts_retention_ms,
            sealing,
        }
    }
}

/// Ends an attempt's span with what the attempt came to.
fn trace_attempt(span: Trace, delivery: &Claimed, attempt: &Attempt) {
    span.set("linkdrop.message_id", delivery.message_id.clone());
    span.set("linkdrop.endpoint_id", delivery.endpoint_id.clone());
    span.set("linkdrop.attempt", i64::from(delivery.attempts) + 1);
    if let Some(status) = attempt.status_code {
        span.set("http.response.status_code", i64::from(status));
    }
    if !attempt.succeeded() {
        span.fail(
            attempt
                .error
                .as_deref()
                .unwrap_or("the endpoint did not answer 2xx"),
        );
    }
    span.end();
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

    /// The attempt at `delivery` as the attempts log keeps it.
    pub fn logged<'a>(&'a self, delivery: &'a Claimed) -> NewAttempt<'a> {
        NewAttempt {
            message_id: &delivery.message_id,
            endpoint_id: &delivery.endpoint_id,
            status_code: self.status_code.map(i32::from),
            error: self.error.as_deref(),
            duration_ms: i32::try_from(self.duration_ms).unwrap_or(i32::MAX),
            response_body: self.response_body.as_deref(),
        }
    }
}

/// Sends webhooks.
#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    http: reqwest::Client,
    guard: Guard,
    settings: Settings,
    clock: Arc<dyn Clock>,
    /// When attempts were last purged.
    purged_at_ms: Arc<AtomicI64>,
}

impl Dispatcher {
    pub fn new(db: Db, guard: Guard, settings: Settings, clock: Arc<dyn Clock>) -> Self {
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
        // Listening starts before the first round: what is written after that round
        // began wakes the next wait.
        let mut wakeup = match self.db.listen(outbox::DUE).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for due webhooks; polling only");
                None
            }
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
                _ = due(&mut wakeup) => {}
            }
        }
        tracing::info!("webhook dispatcher stopped");
    }

    /// Claims the due deliveries and attempts each once; returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let claimed_at = Instant::now();
        let claimed = self.claim().await?;
        let count = claimed.len();
        // Attempts run concurrently; whatever has finished is recorded together, in one
        // transaction, while the rest are still under way.
        let mut finished = futures::stream::iter(claimed)
            .map(|delivery| async move {
                let attempt = self.attempt(&delivery).await;
                (delivery, attempt)
            })
            .buffer_unordered(CONCURRENCY)
            .ready_chunks(CONCURRENCY);
        let mut unrecorded = Vec::new();
        while let Some(outcomes) = finished.next().await {
            failpoint::hit("webhooks.before_record");
            if let Err(e) = self.record(&outcomes).await {
                tracing::warn!(error = %e, deliveries = outcomes.len(), "could not record attempts; retrying");
                unrecorded.extend(outcomes);
            }
        }
        // The database was away (a restart, a failover): record once it is back, while the
        // claims still hold, so that each delivery moves on to its next attempt on schedule.
        // Past that the locks lapse and the deliveries are attempted again: at least once.
        let record_until = claimed_at + Duration::from_millis(self.lock_ms() as u64) - RECORD_RETRY;
        while !unrecorded.is_empty() && Instant::now() < record_until {
            tokio::time::sleep(RECORD_RETRY).await;
            match self.record(&unrecorded).await {
                Ok(()) => unrecorded.clear(),
                Err(e) => tracing::debug!(error = %e, "could not record attempts yet"),
            }
        }
        if !unrecorded.is_empty() {
            tracing::warn!(
                deliveries = unrecorded.len(),
                "attempts not recorded; their locks lapse and they are attempted again"
            );
        }
        Ok(count)
    }

    /// How long a claim holds its deliveries: the attempt's limit and the margin to record it.
    fn lock_ms(&self) -> i64 {
        self.settings.timeout.as_millis() as i64 + LOCK_MARGIN_MS
    }

    /// Deletes attempts older than the retention, at most once a minute; how many.
    pub async fn purge_old_attempts(&self) -> Result<u64, sqlx::Error> {
        let now = self.clock.now_ms();
        let last = self.purged_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PURGE_EVERY_MS {
            return Ok(0);
        }
        self.purged_at_ms.store(now, Ordering::Relaxed);
        retention::purge_attempts(&self.db, now - self.settings.attempts_retention_ms).await
    }

    /// Claims due deliveries of enabled endpoints (a disabled endpoint's wait for it to be
    /// enabled again).
    async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        deliveries::claim(&self.db, self.clock.now_ms(), CLAIM_BATCH, self.lock_ms()).await
    }

    /// One signed POST of the message to the endpoint; a client span in the trace of
    /// what the message reports, when that was traced.
    async fn attempt(&self, delivery: &Claimed) -> Attempt {
        let span = delivery.traceparent.as_deref().and_then(|parent| {
            Trace::continue_from("webhook deliver", SpanKind::Client, Some(parent))
        });
        let started = Instant::now();
        let outcome = self.send(delivery, span.as_ref()).await;
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
        if let Some(span) = span {
            trace_attempt(span, delivery, &attempt);
        }
        attempt
    }

    async fn send(
        &self,
        delivery: &Claimed,
        span: Option<&Trace>,
    ) -> Result<(u16, Option<i64>, String), String> {
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
        let mut request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
        if let Some(span) = span {
            // The merchant's server may continue the trace.
            request = request.header("traceparent", span.traceparent());
        }
        let response = request
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

    /// Logs the attempts and moves each delivery on — done, retried later, or dead — and
    /// updates the health of their endpoints, in one transaction.
    async fn record(&self, outcomes: &[(Claimed, Attempt)]) -> Result<(), sqlx::Error> {
        let now = self.clock.now_ms();
        let moves: Vec<Move> = outcomes
            .iter()
            .map(|(d, a)| Move::after(d, a, now))
            .collect();
        let moved: Vec<Moved> = outcomes
            .iter()
            .zip(&moves)
            .map(|((d, _), m)| Moved {
                message_id: &d.message_id,
                endpoint_id: &d.endpoint_id,
                state: m.state,
                attempts: m.attempts,
                next_attempt_at_ms: m.next_attempt_at_ms,
            })
            .collect();
        let attempts: Vec<NewAttempt> = outcomes.iter().map(|(d, a)| a.logged(d)).collect();
        let mut tx = self.db.begin().await?;
        deliveries::log_attempts(&mut tx, now, &attempts).await?;
        deliveries::move_on(&mut tx, &moved).await?;
        for (endpoint_id, health) in endpoint_health(outcomes) {
            self.update_endpoint_health(&mut tx, endpoint_id, health, now)
                .await?;
        }
        tx.commit().await?;
        for ((delivery, _), m) in outcomes.iter().zip(&moves) {
            if m.state == DeliveryState::Dead {
                tracing::warn!(message_id = %delivery.message_id, endpoint_id = %delivery.endpoint_id, attempts = m.attempts, "webhook dead-lettered");
                metrics::counter!("linkdrop_webhook_dead_total").increment(1);
            }
        }
        Ok(())
    }

    /// A success clears the endpoint's failing streak; a failure starts one or, once it
    /// has lasted the configured period, disables the endpoint. A 410 disables at once.
    async fn update_endpoint_health(
        &self,
        tx: &mut Tx,
        endpoint_id: &str,
        health: Health,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if health == Health::Answered {
            return health::answered(tx, endpoint_id).await;
        }
        let gone = health == Health::Gone;
        let disabled =
            health::failed(tx, endpoint_id, now, self.settings.disable_after_ms, gone).await?;
        if disabled == Some(true) {
            tracing::warn!(%endpoint_id, gone, "webhook endpoint disabled");
            metrics::counter!("linkdrop_webhook_endpoints_disabled_total").increment(1);
        }
        Ok(())
    }
}

/// Where one delivery goes after an attempt.
struct Move {
    state: DeliveryState,
    attempts: i32,
    next_attempt_at_ms: i64,
}

impl Move {
    fn after(delivery: &Claimed, attempt: &Attempt, now: i64) -> Move {
        let attempts = delivery.attempts + 1;
        let (state, next_attempt_at_ms) = if attempt.succeeded() {
            (DeliveryState::Delivered, now)
        } else if attempt.endpoint_gone() {
            (DeliveryState::Dead, now)
        } else {
            let throttled = matches!(attempt.status_code, Some(429 | 502 | 503 | 504));
            let retry_after = attempt.retry_after_ms.filter(|_| throttled);
            match next_attempt_at(now, attempts, retry_after, &mut rand::rng()) {
                Some(at) if attempts < MAX_ATTEMPTS => (DeliveryState::Pending, at),
                _ => (DeliveryState::Dead, now),
            }
        };
        Move {
            state,
            attempts,
            next_attempt_at_ms,
        }
    }
}

/// What a round's attempts say of an endpoint, in rising order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    /// Every attempt failed.
    Failing,
    /// It answered 2xx at least once.
    Answered,
    /// It answered 410 Gone.
    Gone,
}

/// Each endpoint of the round once: gone if it said so, answered if any attempt succeeded,
/// failing otherwise.
fn endpoint_health(outcomes: &[(Claimed, Attempt)]) -> Vec<(&str, Health)> {
    let mut health: Vec<(&str, Health)> = Vec::new();
    for (delivery, attempt) in outcomes {
        let this = if attempt.endpoint_gone() {
            Health::Gone
        } else if attempt.succeeded() {
            Health::Answered
        } else {
            Health::Failing
        };
        match health
            .iter_mut()
            .find(|(id, _)| *id == delivery.endpoint_id)
        {
            Some((_, seen)) => *seen = (*seen).max(this),
            None => health.push((&delivery.endpoint_id, this)),
        }
    }
    health
}

/// Resolves when deliveries may be due (a writer's commit notified the dispatchers);
/// never without a listener.
async fn due(wakeup: &mut Option<Listener>) {
    match wakeup {
        Some(listener) => listener.notified().await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(endpoint: &str, status: u16) -> (Claimed, Attempt) {
        let delivery = Claimed {
            message_id: format!("msg_{endpoint}_{status}"),
            endpoint_id: endpoint.into(),
            attempts: 0,
            body: "{}".into(),
            url: "http://127.0.0.1/".into(),
            secret: String::new(),
            previous_secret: None,
            previous_secret_until_ms: None,
            traceparent: None,
        };
        let attempt = Attempt {
            status_code: Some(status),
            error: None,
            duration_ms: 1,
            response_body: None,
            retry_after_ms: None,
        };
        (delivery, attempt)
    }

    #[test]
    fn a_rounds_verdict_per_endpoint_puts_gone_before_answered_before_failing() {
        let outcomes = [
            outcome("a", 500),
            outcome("a", 200),
            outcome("b", 500),
            outcome("c", 200),
            outcome("c", 410),
            outcome("b", 503),
        ];
        assert_eq!(
            endpoint_health(&outcomes),
            vec![
                ("a", Health::Answered),
                ("b", Health::Failing),
                ("c", Health::Gone)
            ]
        );
    }

    #[test]
    fn a_failed_attempt_moves_the_delivery_to_its_retry_and_the_last_one_to_dead() {
        let (mut delivery, failed) = outcome("a", 500);
        let next = Move::after(&delivery, &failed, 1_000);
        assert_eq!((next.state, next.attempts), (DeliveryState::Pending, 1));
        assert!(next.next_attempt_at_ms > 1_000);
        delivery.attempts = MAX_ATTEMPTS - 1;
        let last = Move::after(&delivery, &failed, 1_000);
        assert_eq!(
            (last.state, last.attempts),
            (DeliveryState::Dead, MAX_ATTEMPTS)
        );
        let (delivery, ok) = outcome("a", 204);
        assert_eq!(
            Move::after(&delivery, &ok, 1_000).state,
            DeliveryState::Delivered
        );
    }
}
