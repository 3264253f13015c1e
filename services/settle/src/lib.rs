//! The settlement role: a Kafka consumer-group member that writes order events to the
//! system of record (PostgreSQL on the stack) in batches; [`linkdrop_records::settlement::settle_batch`] is the
//! write itself, on either backend.
//!
//! Offsets are committed only after the batch's transaction committed, so a worker killed
//! at any moment re-reads what it had not settled; the insert is by `order_id`, so nothing
//! is written twice. A batch that cannot be written is retried, never skipped; a message
//! that is not an order at all is logged, counted and skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::OrderEvent;
use linkdrop_domain::keys::Keys;
use linkdrop_infra::backends::{BackendError, TopicLayout, ensure_topic, kafka_config};
use linkdrop_infra::config::SettleConfig;
use linkdrop_infra::failpoint;
use linkdrop_infra::role::RoleHandle;
use linkdrop_records::db::Db;
use rdkafka::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use linkdrop_infra::trace::Settling;
use linkdrop_records::settlement::{self, settle_traced_batch};

/// While idle, settlement re-enters `recv` this often: librdkafka counts only calls into
/// it as polls, and a consumer that does not poll for `max.poll.interval.ms` (5 minutes)
/// is dropped from its group.
const IDLE_REPOLL: Duration = Duration::from_secs(10);
/// How often librdkafka reports statistics, consumer lag among them.
const STATS_INTERVAL_MS: &str = "5000";

/// Turns librdkafka's statistics into `linkdrop_settle_consumer_lag`: messages on this
/// worker's partitions that it has not consumed yet.
struct LagReporter;

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .map(|partition| partition.consumer_lag.max(0))
            .sum();
        metrics::gauge!("linkdrop_settle_consumer_lag").set(lag as f64);
    }
}

impl ConsumerContext for LagReporter {}
/// Pause before retrying a batch that could not be written.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Settings of one settlement worker.
pub struct SettleDeps {
    pub db: Db,
    pub keys: Keys,
    pub brokers: String,
    pub topic: TopicLayout,
    /// Its section of the configuration: batches and the group's session timeout
    /// (`LINKDROP_SETTLE_*`).
    pub config: SettleConfig,
}

/// Declares settlement's metrics, at zero, so that they are exported from the start. Only
/// a settlement worker on Kafka has them: on the embedded backend the relay settles.
pub fn register_metrics() {
    use linkdrop_infra::telemetry::{declare_counter, declare_gauge, declare_seconds};
    declare_gauge(
        "linkdrop_settle_consumer_lag",
        "Messages on this worker's partitions of the orders topic not consumed yet",
    );
    declare_seconds(
        "linkdrop_settle_latency_seconds",
        "From an order's decision to its settlement in the records",
    );
    declare_seconds(
        "linkdrop_settle_batch_seconds",
        "Time of one settlement transaction",
    );
    metrics::describe_histogram!(
        "linkdrop_settle_batch_size",
        "Order events per settlement transaction"
    );
    let _ = metrics::histogram!("linkdrop_settle_batch_size");
    declare_counter("linkdrop_settle_inserted_total", "Orders inserted");
    declare_counter(
        "linkdrop_settle_duplicates_total",
        "Order events already settled (delivered again), ignored",
    );
    declare_counter("linkdrop_settle_drawn_total", "Lottery results settled");
    declare_counter("linkdrop_settle_paid_total", "Payments settled");
    declare_counter("linkdrop_settle_expired_total", "Expiries settled");
    declare_counter(
        "linkdrop_settle_malformed_total",
        "Messages on the orders topic that are not order events, skipped",
    );
}

/// Joins the settlement consumer group and settles until `shutdown`.
pub async fn start(
    deps: SettleDeps,
    shutdown: CancellationToken,
) -> Result<RoleHandle, BackendError> {
    ensure_topic(&deps.brokers, &deps.keys.orders_topic(), deps.topic).await?;
    let consumer: StreamConsumer<LagReporter> = kafka_config(&deps.brokers)
        .set("group.id", deps.keys.settle_group())
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "session.timeout.ms",
            deps.config.session_timeout_ms.to_string(),
        )
        .set("statistics.interval.ms", STATS_INTERVAL_MS)
        .create_with_context(LagReporter)?;
    consumer.subscribe(&[&deps.keys.orders_topic()])?;
    tracing::info!(group = %deps.keys.settle_group(), "settlement started");
    let worker = Worker {
        consumer,
        db: deps.db,
        batch_max: deps.config.batch_max,
        batch_wait: Duration::from_millis(deps.config.batch_wait_ms),
    };
    Ok(RoleHandle::new("settle").with_task(tokio::spawn(worker.run(shutdown))))
}

struct Worker {
    consumer: StreamConsumer<LagReporter>,
    db: Db,
    batch_max: usize,
    batch_wait: Duration,
}

impl Worker {
    async fn run(self, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = tokio::time::timeout(IDLE_REPOLL, self.consumer.recv()) => message,
            };
            let first = match first {
                // A fresh `recv` polls librdkafka, which counts as the application polling.
                Err(_idle) => continue,
                Ok(Ok(message)) => message,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    continue;
                }
            };
            let mut batch = vec![first];
            self.fill(&mut batch).await;
            self.settle_until_done(&batch, &shutdown).await;
        }
        tracing::info!("settlement stopped");
    }

    /// Adds messages that arrive within the batch wait, up to the batch size.
    async fn fill<'a>(&'a self, batch: &mut Vec<BorrowedMessage<'a>>) {
        let deadline = tokio::time::Instant::now() + self.batch_wait;
        while batch.len() < self.batch_max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message),
                Ok(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
                Err(_) => break,
            }
        }
    }

    /// Writes the batch, retrying until it is written or the worker stops; then commits
    /// the offsets after it.
    async fn settle_until_done(&self, batch: &[BorrowedMessage<'_>], shutdown: &CancellationToken) {
        let (events, traced) = decode(batch);
        let settling = Settling::start(
            traced.iter().map(|(o, t)| (o.as_str(), t.as_str())),
            events.len(),
        );
        loop {
            let started = std::time::Instant::now();
            let settled = settle_traced_batch(&self.db, &events, &settling.traces, || {
                failpoint::hit("settle.before_commit")
            })
            .await;
            match settled {
                Ok(settled) => {
                    record_batch(&events, settled, started.elapsed());
                    settling.end(None);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = events.len(), "settlement batch failed; retrying");
                    tokio::select! {
                        // Uncommitted: the next member of the group settles it.
                        _ = shutdown.cancelled() => {
                            settling.end(Some("stopped before the batch was settled"));
                            return;
                        }
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
            }
        }
        failpoint::hit("settle.before_offset_commit");
        if let Err(e) = self
            .consumer
            .commit(&next_offsets(batch), CommitMode::Async)
        {
            // Harmless: the batch will be read again and inserts nothing twice.
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

/// The order events of a batch, and (order id, `traceparent`) of those that carry a trace
/// context in their message's header.
fn decode(batch: &[BorrowedMessage<'_>]) -> (Vec<OrderEvent>, Vec<(String, String)>) {
    let mut traced = Vec::new();
    let events = batch
        .iter()
        .filter_map(|message| {
            let parsed = message.payload().map(serde_json::from_slice::<OrderEvent>);
            match parsed {
                Some(Ok(order)) => {
                    if let (Some(order_id), Some(traceparent)) =
                        (order.order_id(), traceparent_of(message))
                    {
                        traced.push((order_id.to_string(), traceparent));
                    }
                    Some(order)
                }
                other => {
                    tracing::error!(
                        partition = message.partition(),
                        offset = message.offset(),
                        error = ?other.map(|r| r.err()),
                        "message on the orders topic is not an order event; skipped"
                    );
                    metrics::counter!("linkdrop_settle_malformed_total").increment(1);
                    None
                }
            }
        })
        .collect();
    (events, traced)
}

/// The message's `traceparent` header, when it has one.
fn traceparent_of(message: &BorrowedMessage<'_>) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == "traceparent")
        .and_then(|h| std::str::from_utf8(h.value?).ok())
        .map(str::to_string)
}

/// For every partition in the batch, the offset after its last message.
fn next_offsets(batch: &[BorrowedMessage<'_>]) -> TopicPartitionList {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let offset = next
            .entry((message.topic(), message.partition()))
            .or_default();
        *offset = (*offset).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        // Only fails for an invalid offset, which `max(… + 1)` cannot produce.
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    list
}

fn record_batch(events: &[OrderEvent], settled: settlement::Settled, took: Duration) {
    metrics::histogram!("linkdrop_settle_batch_size").record(events.len() as f64);
    metrics::histogram!("linkdrop_settle_batch_seconds").record(took.as_secs_f64());
    metrics::counter!("linkdrop_settle_inserted_total").increment(settled.inserted as u64);
    metrics::counter!("linkdrop_settle_duplicates_total").increment(settled.duplicates as u64);
    let now = now_ms();
    for event in events {
        metrics::histogram!("linkdrop_settle_latency_seconds")
            .record((now - event.decided_at_ms()) as f64 / 1000.0);
    }
    metrics::counter!("linkdrop_settle_drawn_total").increment(settled.drawn as u64);
    metrics::counter!("linkdrop_settle_paid_total").increment(settled.paid as u64);
    metrics::counter!("linkdrop_settle_expired_total").increment(settled.expired as u64);
    tracing::debug!(
        inserted = settled.inserted,
        drawn = settled.drawn,
        duplicates = settled.duplicates,
        "batch settled"
    );
}
