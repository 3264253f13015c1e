//! The relay role: moves order events from the drops' Redis outbox streams to the Kafka
//! orders topic.
//!
//! It acknowledges an outbox entry only after Kafka confirmed the message (idempotent
//! producer, `acks=all`), so a relay killed at any moment loses nothing: what it read but
//! did not acknowledge stays pending and is produced again, by itself after a failed
//! produce or by another relay that claims it. Kafka may then hold an order twice;
//! settlement inserts by `order_id`, so the effect is once.

pub mod outbox;

use std::time::Duration;

use linkdrop_domain::backends::{BackendError, ensure_topic, kafka_config};
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::ids::new_id;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::role::RoleHandle;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::outbox::{Entry, Malformed, Outboxes};

/// How long one blocking read of the outboxes waits for new entries.
const BLOCK_MS: usize = 500;
/// How often the relay looks for outboxes of newly launched drops and abandoned entries.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// How long the producer may keep retrying one message before it reports failure.
const DELIVERY_TIMEOUT_MS: &str = "30000";

/// Settings of one relay.
pub struct RelayDeps {
    /// A Redis connection for the relay alone (it blocks on reads).
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub brokers: String,
    pub partitions: i32,
    pub batch_max: usize,
    /// Entries left unacknowledged this long by another relay are claimed.
    pub claim_idle_ms: usize,
}

/// Creates the orders topic if needed, then runs the relay until `shutdown`.
pub async fn start(
    deps: RelayDeps,
    shutdown: CancellationToken,
) -> Result<RoleHandle, BackendError> {
    ensure_topic(&deps.brokers, &deps.keys.orders_topic(), deps.partitions).await?;
    let producer: FutureProducer = kafka_config(&deps.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", DELIVERY_TIMEOUT_MS)
        .create()?;
    let consumer = new_id("relay");
    tracing::info!(%consumer, topic = %deps.keys.orders_topic(), "relay started");
    let relay = Relay {
        topic: deps.keys.orders_topic(),
        outboxes: Outboxes::new(deps.redis, deps.keys, consumer),
        producer,
        batch_max: deps.batch_max,
        claim_idle_ms: deps.claim_idle_ms,
    };
    Ok(RoleHandle::new("relay").with_task(tokio::spawn(relay.run(shutdown))))
}

struct Relay {
    topic: String,
    outboxes: Outboxes,
    producer: FutureProducer,
    batch_max: usize,
    claim_idle_ms: usize,
}

impl Relay {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        while !shutdown.is_cancelled() {
            let round = tokio::select! {
                _ = housekeeping.tick() => self.housekeep().await,
                batch = self.outboxes.next_batch(self.batch_max, BLOCK_MS) => match batch {
                    Ok(batch) => self.forward(batch).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = round {
                tracing::warn!(error = %e, "relay round failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(error = %e, "relay could not flush the producer on shutdown");
        }
        tracing::info!(consumer = %self.outboxes.consumer(), "relay stopped");
    }

    async fn housekeep(&mut self) -> redis::RedisResult<()> {
        self.outboxes.refresh().await?;
        let claimed = self
            .outboxes
            .claim_abandoned(self.claim_idle_ms, self.batch_max)
            .await?;
        if !claimed.0.is_empty() {
            tracing::info!(
                entries = claimed.0.len(),
                "claimed outbox entries abandoned by another relay"
            );
            metrics::counter!("linkdrop_relay_claimed_total").increment(claimed.0.len() as u64);
        }
        self.forward(claimed).await?;
        let length = self.outboxes.length().await?;
        metrics::gauge!("linkdrop_outbox_length").set(length as f64);
        Ok(())
    }

    /// Produces every entry, waits for Kafka's confirmations, and acknowledges exactly the
    /// confirmed ones.
    async fn forward(
        &mut self,
        (entries, malformed): (Vec<Entry>, Vec<Malformed>),
    ) -> redis::RedisResult<()> {
        if !malformed.is_empty() {
            // Not ours to interpret: acknowledge so it cannot block the outbox, and say so.
            tracing::error!(
                count = malformed.len(),
                "outbox entries without an order; dropped"
            );
            metrics::counter!("linkdrop_relay_malformed_total").increment(malformed.len() as u64);
            let ids: Vec<_> = malformed.into_iter().map(|m| (m.stream, m.id)).collect();
            self.outboxes.acknowledge(&ids).await?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        let deliveries = entries.iter().map(|entry| {
            let payload = serde_json::to_string(&entry.event).expect("order events serialize");
            let producer = &self.producer;
            let topic = &self.topic;
            async move {
                let record = FutureRecord::to(topic)
                    .key(entry.event.drop_id())
                    .payload(&payload);
                producer.send(record, Duration::from_secs(5)).await
            }
        });
        let results = futures::future::join_all(deliveries).await;
        let mut confirmed = Vec::with_capacity(entries.len());
        for (entry, result) in entries.iter().zip(results) {
            match result {
                Ok(_) => {
                    metrics::histogram!("linkdrop_relay_lag_seconds")
                        .record((now_ms() - entry.event.decided_at_ms()) as f64 / 1000.0);
                    confirmed.push((entry.stream.clone(), entry.id.clone()));
                }
                Err((e, _)) => {
                    tracing::warn!(order_id = ?entry.event.order_id(), error = %e, "produce failed; will retry");
                }
            }
        }
        metrics::counter!("linkdrop_relay_produced_total").increment(confirmed.len() as u64);
        self.outboxes.acknowledge(&confirmed).await
    }
}
