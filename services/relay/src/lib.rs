//! The relay role: moves order events from the drops' Redis outbox streams to the Kafka
//! orders topic, in order, without losing any. On the embedded backend there is no Kafka:
//! the relay hands each batch straight to settlement ([`Sink::Settle`]) and acknowledges it
//! once the records are committed, so the outbox is the in-process queue.
//!
//! - An entry is acknowledged only after Kafka confirmed it (idempotent producer,
//!   `acks=all`); what a relay read but did not acknowledge stays pending in Redis.
//! - One relay at a time holds a drop ([`lease`]); the relay that takes a drop over first
//!   claims every pending entry of it and produces those before anything newer, so a
//!   drop's events reach Kafka (keyed by drop, so one partition) in the order they
//!   happened, also when relays die or several run.
//! - Per drop, only the entries before the first failed produce are acknowledged; the rest
//!   are produced again in order. Kafka may so hold an event twice; settlement applies
//!   each event once.
//! - With Redis persisting every second (`appendfsync everysec`) an entry is produced only
//!   once older than that second (see [`Relay::take_mature`]): an order a Redis crash
//!   takes back can never have been settled.

pub mod lease;
pub mod outbox;

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::ids::new_id;
use linkdrop_domain::keys::Keys;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::backends::{BackendError, TopicLayout, ensure_topic, kafka_config};
use linkdrop_infra::config::RelayConfig;
use linkdrop_infra::failpoint;
use linkdrop_infra::role::RoleHandle;
use linkdrop_infra::trace::{Settling, SpanKind, Trace};
use linkdrop_records::db::Db;
use linkdrop_records::settlement::settle_traced_batch;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::lease::{Lease, Leases};
use crate::outbox::{Batch, Entry, Outboxes};

/// Longest wait of one blocking read of the outboxes.
const BLOCK_MS: i64 = 500;
/// How often the relay renews its leases, looks for new drops and reports the outbox.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// How long the producer may keep retrying one message before it reports failure.
const DELIVERY_TIMEOUT_MS: &str = "30000";
/// Pause after a failed round before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Where the relay delivers order events.
pub enum SinkConfig {
    /// The Kafka orders topic (created with this layout if missing).
    Kafka { brokers: String, topic: TopicLayout },
    /// Settlement into the records, in this process (the embedded backend).
    Settle(Db),
}

enum Sink {
    Kafka {
        producer: FutureProducer,
        topic: String,
    },
    Settle(Db),
}

impl Sink {
    async fn open(config: SinkConfig, keys: &Keys) -> Result<Sink, BackendError> {
        Ok(match config {
            SinkConfig::Kafka { brokers, topic } => {
                ensure_topic(&brokers, &keys.orders_topic(), topic).await?;
                let producer: FutureProducer = kafka_config(&brokers)
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "2")
                    .set("message.timeout.ms", DELIVERY_TIMEOUT_MS)
                    .create()?;
                Sink::Kafka {
                    producer,
                    topic: keys.orders_topic(),
                }
            }
            SinkConfig::Settle(db) => Sink::Settle(db),
        })
    }

    /// Delivers `entries`; per entry, whether it is durably accepted.
    async fn deliver(&self, entries: &[Entry]) -> Vec<Result<(), String>> {
        match self {
            Sink::Kafka { producer, topic } => {
                let deliveries = entries.iter().map(|entry| produce(producer, topic, entry));
                futures::future::join_all(deliveries).await
            }
            Sink::Settle(db) => {
                let events: Vec<_> = entries.iter().map(|e| e.event.clone()).collect();
                let settling = Settling::start(traced(entries), entries.len());
                let result = settle_traced_batch(db, &events, &settling.traces, || {
                    failpoint::hit("settle.before_commit")
                })
                .await
                .map(drop)
                .map_err(|e| e.to_string());
                settling.end(result.as_ref().err().map(String::as_str));
                vec![result; entries.len()]
            }
        }
    }

    fn flush(&self) {
        if let Sink::Kafka { producer, .. } = self
            && let Err(e) = producer.flush(Duration::from_secs(10))
        {
            tracing::warn!(error = %e, "relay could not flush the producer on shutdown");
        }
    }
}

/// Sends one entry to the orders topic, keyed by its drop. A traced order gets a producer
/// span, and its context travels on in the message's `traceparent` header.
async fn produce(producer: &FutureProducer, topic: &str, entry: &Entry) -> Result<(), String> {
    let payload = serde_json::to_string(&entry.event).expect("order events serialize");
    let span = entry.trace.as_deref().and_then(|parent| {
        Trace::continue_from(format!("{topic} publish"), SpanKind::Producer, Some(parent))
    });
    let traceparent = span
        .as_ref()
        .map(Trace::traceparent)
        .or(entry.trace.clone());
    let mut record = FutureRecord::to(topic)
        .key(entry.event.drop_id())
        .payload(&payload);
    if let Some(traceparent) = &traceparent {
        record = record.headers(OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(traceparent.as_bytes()),
        }));
    }
    let sent = producer
        .send(record, Duration::from_secs(5))
        .await
        .map(drop)
        .map_err(|(e, _)| e.to_string());
    if let Some(span) = span {
        span.set("messaging.system", "kafka");
        span.set("messaging.destination.name", topic.to_string());
        if let Some(order_id) = entry.event.order_id() {
            span.set("linkdrop.order_id", order_id.to_string());
        }
        if let Err(e) = &sent {
            span.fail(e);
        }
        span.end();
    }
    sent
}

/// The entries that carry a trace context, as (order id, `traceparent`).
fn traced(entries: &[Entry]) -> impl Iterator<Item = (&str, &str)> {
    entries
        .iter()
        .filter_map(|e| Some((e.event.order_id()?, e.trace.as_deref()?)))
}

/// Settings of one relay.
pub struct RelayDeps {
    /// A Redis connection for the relay alone (it blocks on reads).
    pub redis: RedisConn,
    pub keys: Keys,
    pub sink: SinkConfig,
    /// How old an entry must be before it is produced: Redis's fsync window.
    pub durability_lag_ms: i64,
    /// Its section of the configuration: batches and leases (`LINKDROP_RELAY_*`).
    pub config: RelayConfig,
}

/// Declares the relay's metrics, at zero, so that they are exported from the start.
pub fn register_metrics() {
    use linkdrop_infra::telemetry::{declare_counter, declare_gauge, declare_seconds};
    declare_gauge(
        "linkdrop_outbox_length",
        "Order events waiting in the outboxes of the drops this relay holds",
    );
    declare_seconds(
        "linkdrop_relay_lag_seconds",
        "From an order's decision to its event being durably delivered (Kafka, or the records embedded)",
    );
    declare_counter(
        "linkdrop_relay_produced_total",
        "Order events delivered and acknowledged",
    );
    declare_counter(
        "linkdrop_relay_claimed_total",
        "Unacknowledged outbox entries taken over from another relay",
    );
    declare_counter(
        "linkdrop_relay_malformed_total",
        "Outbox entries without an order event, dropped",
    );
    declare_counter(
        "linkdrop_relay_drop_errors_total",
        "Rounds in which a drop's keys could not be read (its Redis node is down)",
    );
}

/// Creates the orders topic if needed, then runs the relay until `shutdown`.
pub async fn start(
    deps: RelayDeps,
    shutdown: CancellationToken,
) -> Result<RoleHandle, BackendError> {
    let sink = Sink::open(deps.sink, &deps.keys).await?;
    let consumer = new_id("relay");
    tracing::info!(%consumer, topic = %deps.keys.orders_topic(), "relay started");
    let relay = Relay {
        leases: Leases::new(
            deps.redis.clone(),
            deps.keys.clone(),
            consumer.clone(),
            deps.config.lease_ms,
        ),
        outboxes: Outboxes::new(deps.redis, deps.keys, consumer),
        sink,
        batch_max: deps.config.batch_max,
        durability_lag_ms: deps.durability_lag_ms,
        owned: Vec::new(),
        held: VecDeque::new(),
        reread: true,
        more_pending: false,
    };
    Ok(RoleHandle::new("relay").with_task(tokio::spawn(relay.run(shutdown))))
}

struct Relay {
    leases: Leases,
    outboxes: Outboxes,
    sink: Sink,
    batch_max: usize,
    durability_lag_ms: i64,
    /// Drops whose lease this relay holds.
    owned: Vec<String>,
    /// Entries read, in order, not yet produced (waiting to be old enough).
    held: VecDeque<Entry>,
    /// Read this consumer's pending entries again before new ones (after a failure or a
    /// takeover), dropping what is held: pending entries come back in order.
    reread: bool,
    /// The last read of pending entries was full: read on once the held ones are gone.
    more_pending: bool,
}

impl Relay {
    async fn run(mut self, shutdown: CancellationToken) {
        // Rounds are never cancelled half way (a produced entry must be acknowledged or
        // read again), so housekeeping runs between rounds; a round blocks at most BLOCK_MS.
        let mut next_housekeeping = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let round = if tokio::time::Instant::now() >= next_housekeeping {
                next_housekeeping += HOUSEKEEPING_INTERVAL;
                self.housekeep().await
            } else {
                self.step().await
            };
            if let Err(e) = round {
                tracing::warn!(error = %e, "relay round failed; retrying");
                self.reread = true;
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                }
            }
        }
        self.stop().await;
    }

    /// Produces what is ready, or reads more.
    async fn step(&mut self) -> redis::RedisResult<()> {
        let mature = self.take_mature();
        if !mature.0.is_empty() {
            return self.forward(mature).await;
        }
        if self.reread || (self.more_pending && self.held.is_empty()) {
            // Everything held is pending in Redis too: read it all again, in order.
            self.held.clear();
            self.reread = false;
            let (entries, malformed) = self
                .outboxes
                .read_pending(&self.owned, self.batch_max)
                .await?;
            self.more_pending = entries.len() + malformed.len() >= self.batch_max;
            self.held.extend(entries);
            return self.forward((Vec::new(), malformed)).await;
        }
        let block = match self.held.front() {
            Some(oldest) => (oldest.event.decided_at_ms() + self.durability_lag_ms - now_ms())
                .clamp(0, BLOCK_MS),
            None => BLOCK_MS,
        };
        if self.owned.is_empty() || self.more_pending {
            // Nothing to read (no drops), or older pending entries must go first.
            tokio::time::sleep(Duration::from_millis(block as u64)).await;
            return Ok(());
        }
        let block = (block > 0).then_some(block as usize);
        let (entries, malformed) = self
            .outboxes
            .read_new(&self.owned, self.batch_max, block)
            .await?;
        self.held.extend(entries);
        self.forward((Vec::new(), malformed)).await
    }

    /// Held entries old enough to be durable in Redis, oldest first, up to a batch.
    fn take_mature(&mut self) -> Batch {
        let cutoff = now_ms() - self.durability_lag_ms;
        let mut mature = Vec::new();
        while mature.len() < self.batch_max
            && self
                .held
                .front()
                .is_some_and(|e| e.event.decided_at_ms() <= cutoff)
        {
            mature.extend(self.held.pop_front());
        }
        (mature, Vec::new())
    }

    /// Renews leases, takes new drops, reports the outbox length. A drop whose keys fail
    /// (its Redis Cluster node is down, a key holds something else) is left out of this
    /// round and said so; it never holds up the other drops.
    async fn housekeep(&mut self) -> redis::RedisResult<()> {
        let mut owned = Vec::new();
        for drop_id in self.outboxes.drops().await? {
            match self.hold(&drop_id).await {
                Ok(true) => owned.push(drop_id),
                Ok(false) => {}
                Err(e) => {
                    metrics::counter!("linkdrop_relay_drop_errors_total").increment(1);
                    tracing::warn!(%drop_id, error = %e, "cannot relay this drop now; left out of this round");
                }
            }
        }
        let lost: HashSet<&String> = self.owned.iter().filter(|d| !owned.contains(d)).collect();
        if !lost.is_empty() {
            tracing::warn!(
                drops = lost.len(),
                "lost leases; leaving those drops to another relay"
            );
            self.reread = true;
        }
        self.owned = owned;
        let length = self.outboxes.length(&self.owned).await;
        metrics::gauge!("linkdrop_outbox_length").set(length as f64);
        Ok(())
    }

    /// Holds the lease of `drop_id` (taking the drop over when newly acquired); whether
    /// this relay now owns it.
    async fn hold(&mut self, drop_id: &str) -> redis::RedisResult<bool> {
        match self.leases.hold(drop_id).await? {
            Lease::Renewed => Ok(true),
            Lease::Acquired => {
                self.outboxes.ensure_group(drop_id).await?;
                let claimed = self.outboxes.take_over(drop_id).await?;
                if claimed > 0 {
                    tracing::info!(%drop_id, entries = claimed, "took over a drop's unacknowledged entries");
                    metrics::counter!("linkdrop_relay_claimed_total").increment(claimed as u64);
                }
                self.reread = true;
                Ok(true)
            }
            Lease::HeldElsewhere => Ok(false),
        }
    }

    /// Produces every entry, waits for Kafka's confirmations, and acknowledges, per drop,
    /// the entries before the first failure.
    async fn forward(&mut self, (entries, malformed): Batch) -> redis::RedisResult<()> {
        if !malformed.is_empty() {
            // Not ours to interpret: acknowledge so it cannot block the outbox, and say so.
            tracing::error!(
                count = malformed.len(),
                "outbox entries without an order event; dropped"
            );
            metrics::counter!("linkdrop_relay_malformed_total").increment(malformed.len() as u64);
            let ids: Vec<_> = malformed.into_iter().map(|m| (m.stream, m.id)).collect();
            self.outboxes.acknowledge(&ids).await?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        failpoint::hit("relay.before_produce");
        let results = self.sink.deliver(&entries).await;
        let mut failed_streams: HashSet<&str> = HashSet::new();
        let mut confirmed = Vec::with_capacity(entries.len());
        for (entry, result) in entries.iter().zip(results) {
            match result {
                Ok(_) if !failed_streams.contains(entry.stream.as_str()) => {
                    metrics::histogram!("linkdrop_relay_lag_seconds")
                        .record((now_ms() - entry.event.decided_at_ms()) as f64 / 1000.0);
                    confirmed.push((entry.stream.clone(), entry.id.clone()));
                }
                Ok(_) => {}
                Err(e) => {
                    failed_streams.insert(&entry.stream);
                    tracing::warn!(order_id = ?entry.event.order_id(), error = %e, "produce failed; will retry");
                }
            }
        }
        if !failed_streams.is_empty() {
            self.reread = true;
        }
        metrics::counter!("linkdrop_relay_produced_total").increment(confirmed.len() as u64);
        failpoint::hit("relay.before_ack");
        self.outboxes.acknowledge(&confirmed).await
    }

    /// Produces what is durable, flushes, and gives the drops up for another relay.
    async fn stop(mut self) {
        let mature = self.take_mature();
        if let Err(e) = self.forward(mature).await {
            tracing::warn!(error = %e, "relay could not hand over its last entries; they stay pending");
        }
        self.sink.flush();
        for drop_id in &self.owned {
            let _ = self.leases.release(drop_id).await;
        }
        tracing::info!(consumer = %self.outboxes.consumer(), "relay stopped");
    }
}
