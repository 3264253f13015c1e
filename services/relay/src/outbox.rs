//! The Redis side of the relay: the outbox streams of launched drops, read through the
//! `relay` consumer group, so that an entry stays pending until it is acknowledged and the
//! relay that takes a drop over after this one can claim it.

use std::collections::HashMap;
use std::time::Duration;

use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::OrderStatus;
use linkdrop_infra::backends::RedisConn;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};

/// In a Redis Cluster, how long a read of several drops' outboxes that found nothing waits
/// before the relay reads again (it cannot block there).
const CLUSTER_POLL: Duration = Duration::from_millis(20);

/// One outbox entry: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: String,
    pub id: String,
    pub event: OrderEvent,
    /// The order's trace context (`traceparent`) when its request was traced.
    pub trace: Option<String>,
}

/// An entry whose fields do not make an order (never written by our script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub stream: String,
    pub id: String,
}

/// The outbox streams, as read by one relay consumer.
pub struct Outboxes {
    /// For reads that block: a connection of its own, so blocking never delays others.
    reader: RedisConn,
    keys: Keys,
    consumer: String,
}

/// Entries read in one call.
pub type Batch = (Vec<Entry>, Vec<Malformed>);

impl Outboxes {
    pub fn new(reader: RedisConn, keys: Keys, consumer: String) -> Self {
        Self {
            reader,
            keys,
            consumer,
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The drops whose outboxes exist (registered at creation and launch).
    pub async fn drops(&mut self) -> RedisResult<Vec<String>> {
        self.reader.smembers(self.keys.outboxes()).await
    }

    /// Makes sure the relay group exists on the outbox of `drop_id`.
    pub async fn ensure_group(&mut self, drop_id: &str) -> RedisResult<()> {
        let created: RedisResult<()> = self
            .reader
            .xgroup_create_mkstream(self.keys.drop_outbox(drop_id), self.keys.relay_group(), "0")
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes every entry that any consumer read but did not acknowledge this consumer's,
    /// so that [`Outboxes::read_pending`] produces them again, first and in order. Called
    /// when this relay takes a drop over (its previous relay died or let go).
    pub async fn take_over(&mut self, drop_id: &str) -> RedisResult<usize> {
        let stream = self.keys.drop_outbox(drop_id);
        let mut cursor = "0-0".to_string();
        let mut claimed = 0;
        loop {
            let reply: StreamAutoClaimReply = self
                .reader
                .xautoclaim_options(
                    &stream,
                    self.keys.relay_group(),
                    &self.consumer,
                    0,
                    &cursor,
                    StreamAutoClaimOptions::default().count(1000).with_justid(),
                )
                .await?;
            claimed += reply.claimed.len();
            if reply.next_stream_id == "0-0" {
                return Ok(claimed);
            }
            cursor = reply.next_stream_id;
        }
    }

    /// This consumer's unacknowledged entries of `drop_ids`, oldest first, up to `count`
    /// per drop.
    pub async fn read_pending(&mut self, drop_ids: &[String], count: usize) -> RedisResult<Batch> {
        self.read(drop_ids, count, "0", None).await
    }

    /// New entries of `drop_ids`, up to `count` per drop, waiting up to `block_ms` for some
    /// (not at all when `None`).
    pub async fn read_new(
        &mut self,
        drop_ids: &[String],
        count: usize,
        block_ms: Option<usize>,
    ) -> RedisResult<Batch> {
        self.read(drop_ids, count, ">", block_ms).await
    }

    async fn read(
        &mut self,
        drop_ids: &[String],
        count: usize,
        from: &str,
        block_ms: Option<usize>,
    ) -> RedisResult<Batch> {
        if drop_ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        if !self.reader.is_cluster() || drop_ids.len() == 1 {
            return self.read_streams(drop_ids, count, from, block_ms).await;
        }
        // In a cluster each outbox lives on the node of its drop's tag: one read per drop,
        // none blocking (a blocked read would hold back the other drops of its node), and a
        // short pause instead of the block when none had anything.
        let reads = drop_ids
            .chunks(1)
            .map(|drop| self.read_streams(drop, count, from, None));
        let mut batch: Batch = (Vec::new(), Vec::new());
        for (entries, malformed) in futures::future::try_join_all(reads).await? {
            batch.0.extend(entries);
            batch.1.extend(malformed);
        }
        if batch.0.is_empty() && batch.1.is_empty() && block_ms.is_some() {
            let pause = block_ms.map_or(CLUSTER_POLL, |ms| {
                CLUSTER_POLL.min(Duration::from_millis(ms as u64))
            });
            tokio::time::sleep(pause).await;
        }
        Ok(batch)
    }

    /// One XREADGROUP over the outboxes of `drop_ids` (all in one slot, or not a cluster).
    async fn read_streams(
        &self,
        drop_ids: &[String],
        count: usize,
        from: &str,
        block_ms: Option<usize>,
    ) -> RedisResult<Batch> {
        let streams: Vec<String> = drop_ids.iter().map(|d| self.keys.drop_outbox(d)).collect();
        let ids = vec![from; streams.len()];
        let mut options = StreamReadOptions::default()
            .group(self.keys.relay_group(), &self.consumer)
            .count(count);
        if let Some(ms) = block_ms {
            options = options.block(ms);
        }
        // A clone shares the connection; reads of several drops go out together.
        let reply: Option<StreamReadReply> = self
            .reader
            .clone()
            .xread_options(&streams, &ids, &options)
            .await?;
        let mut batch = (Vec::new(), Vec::new());
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(i) = streams.iter().position(|s| *s == stream.key) else {
                continue;
            };
            for entry in stream.ids {
                push_entry(&mut batch, &stream.key, &drop_ids[i], &entry);
            }
        }
        Ok(batch)
    }

    /// Acknowledges and deletes entries that Kafka has durably accepted.
    pub async fn acknowledge(&mut self, entries: &[(String, String)]) -> RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut by_stream: HashMap<&str, Vec<&str>> = HashMap::new();
        for (stream, id) in entries {
            by_stream.entry(stream).or_default().push(id);
        }
        // One pipeline per stream (a cluster keeps each on its own node), sent together.
        let acks = by_stream.into_iter().map(|(stream, ids)| {
            let mut reader = self.reader.clone();
            let group = self.keys.relay_group();
            async move {
                redis::pipe()
                    .xack(stream, group, &ids)
                    .ignore()
                    .xdel(stream, &ids)
                    .ignore()
                    .query_async::<()>(&mut reader)
                    .await
            }
        });
        futures::future::try_join_all(acks).await.map(drop)
    }

    /// Entries waiting in the outboxes of `drop_ids` that could be read.
    pub async fn length(&mut self, drop_ids: &[String]) -> u64 {
        let lengths = drop_ids.iter().map(|drop_id| {
            let mut reader = self.reader.clone();
            let stream = self.keys.drop_outbox(drop_id);
            async move { reader.xlen::<_, u64>(stream).await }
        });
        futures::future::join_all(lengths)
            .await
            .into_iter()
            .flatten()
            .sum()
    }
}

fn push_entry(
    batch: &mut (Vec<Entry>, Vec<Malformed>),
    stream: &str,
    drop_id: &str,
    entry: &StreamId,
) {
    match parse_event(drop_id, entry) {
        Some(event) => batch.0.push(Entry {
            stream: stream.to_string(),
            id: entry.id.clone(),
            event,
            trace: entry.get("tp"),
        }),
        None => batch.1.push(Malformed {
            stream: stream.to_string(),
            id: entry.id.clone(),
        }),
    }
}

/// The order event in an entry written by one of the drop's scripts (admission, draw,
/// pay, expire).
fn parse_event(drop_id: &str, entry: &StreamId) -> Option<OrderEvent> {
    let text = |field: &str| entry.get::<String>(field);
    let drop_id = drop_id.to_string();
    let at_ms: i64 = text("at_ms")?.parse().ok()?;
    let kind = text("kind")?;
    if kind == "sold_out" {
        return Some(OrderEvent::SoldOut(DropSoldOut {
            drop_id,
            sold_out_at_ms: at_ms,
        }));
    }
    let order_id = text("order_id")?;
    let user_id = text("user_id")?;
    let pay_by_ms = match text("pay_by_ms") {
        Some(ms) => Some(ms.parse().ok()?),
        None => None,
    };
    let status = match text("status")?.as_str() {
        "reserved" => OrderStatus::Reserved,
        "entered" => OrderStatus::Entered,
        "lost" => OrderStatus::Lost,
        "paid" => OrderStatus::Paid,
        "expired" => OrderStatus::Expired,
        _ => return None,
    };
    match kind.as_str() {
        "accepted" => Some(OrderEvent::Accepted(OrderAccepted {
            order_id,
            drop_id,
            user_id,
            qty: text("qty")?.parse().ok()?,
            status,
            admitted_at_ms: at_ms,
            pay_by_ms,
            idempotency_key: text("idempotency_key")?,
        })),
        "drawn" => Some(OrderEvent::Drawn(OrderDrawn {
            order_id,
            drop_id,
            user_id,
            status,
            drawn_at_ms: at_ms,
            pay_by_ms,
        })),
        "paid" => Some(OrderEvent::Paid(OrderPaid {
            order_id,
            drop_id,
            user_id,
            paid_at_ms: at_ms,
            payment_ref: text("payment_ref")?,
        })),
        "expired" => Some(OrderEvent::Expired(OrderExpired {
            order_id,
            drop_id,
            user_id,
            qty: text("qty")?.parse().ok()?,
            expired_at_ms: at_ms,
        })),
        _ => None,
    }
}
