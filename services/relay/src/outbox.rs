//! The Redis side of the relay: the outbox streams of launched drops, read through the
//! `relay` consumer group, so that an entry stays pending until it is acknowledged and
//! another relay can claim it if this one dies.

use std::collections::HashMap;

use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::OrderStatus;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};

/// One outbox entry: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: String,
    pub id: String,
    pub event: OrderEvent,
}

/// An entry whose fields do not make an order (never written by our script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub stream: String,
    pub id: String,
}

/// The outboxes as seen by one relay consumer.
pub struct Outboxes {
    /// For reads that block: a connection of its own, so blocking never delays others.
    reader: ConnectionManager,
    keys: Keys,
    consumer: String,
    /// Stream key → drop id, for every outbox whose group exists.
    streams: HashMap<String, String>,
}

impl Outboxes {
    pub fn new(reader: ConnectionManager, keys: Keys, consumer: String) -> Self {
        Self {
            reader,
            keys,
            consumer,
            streams: HashMap::new(),
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Streams watched now.
    pub fn streams(&self) -> impl Iterator<Item = &String> {
        self.streams.keys()
    }

    /// Picks up the outboxes of drops registered since the last call.
    pub async fn refresh(&mut self) -> RedisResult<()> {
        let drop_ids: Vec<String> = self.reader.smembers(self.keys.outboxes()).await?;
        for drop_id in drop_ids {
            let stream = self.keys.drop_outbox(&drop_id);
            if self.streams.contains_key(&stream) {
                continue;
            }
            let created: RedisResult<()> = self
                .reader
                .xgroup_create_mkstream(&stream, self.keys.relay_group(), "0")
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e),
            }
            self.streams.insert(stream, drop_id);
        }
        Ok(())
    }

    /// Entries this consumer read before but did not acknowledge (a failed produce), or,
    /// when there are none, new entries, waiting up to `block_ms` for them.
    pub async fn next_batch(
        &mut self,
        count: usize,
        block_ms: usize,
    ) -> RedisResult<(Vec<Entry>, Vec<Malformed>)> {
        if self.streams.is_empty() {
            // Nothing to block on in Redis: wait here instead, for the next refresh.
            tokio::time::sleep(std::time::Duration::from_millis(block_ms as u64)).await;
            return Ok((Vec::new(), Vec::new()));
        }
        let pending = self.read(count, "0", None).await?;
        if !pending.0.is_empty() || !pending.1.is_empty() {
            return Ok(pending);
        }
        self.read(count, ">", Some(block_ms)).await
    }

    async fn read(
        &mut self,
        count: usize,
        from: &str,
        block_ms: Option<usize>,
    ) -> RedisResult<(Vec<Entry>, Vec<Malformed>)> {
        if self.streams.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let keys: Vec<&String> = self.streams.keys().collect();
        let ids = vec![from; keys.len()];
        let mut options = StreamReadOptions::default()
            .group(self.keys.relay_group(), &self.consumer)
            .count(count);
        if let Some(ms) = block_ms {
            options = options.block(ms);
        }
        let reply: Option<StreamReadReply> =
            self.reader.xread_options(&keys, &ids, &options).await?;
        let mut batch = (Vec::new(), Vec::new());
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let drop_id = self.streams.get(&stream.key).cloned().unwrap_or_default();
            for entry in stream.ids {
                push_entry(&mut batch, &stream.key, &drop_id, &entry);
            }
        }
        Ok(batch)
    }

    /// Takes over entries that another consumer read and left unacknowledged for at least
    /// `min_idle_ms` (a relay that died between reading and acknowledging).
    pub async fn claim_abandoned(
        &mut self,
        min_idle_ms: usize,
        count: usize,
    ) -> RedisResult<(Vec<Entry>, Vec<Malformed>)> {
        let mut batch = (Vec::new(), Vec::new());
        let streams: Vec<(String, String)> = self
            .streams
            .iter()
            .map(|(s, d)| (s.clone(), d.clone()))
            .collect();
        for (stream, drop_id) in streams {
            let reply: StreamAutoClaimReply = self
                .reader
                .xautoclaim_options(
                    &stream,
                    self.keys.relay_group(),
                    &self.consumer,
                    min_idle_ms,
                    "0-0",
                    StreamAutoClaimOptions::default().count(count),
                )
                .await?;
            for entry in reply.claimed {
                push_entry(&mut batch, &stream, &drop_id, &entry);
            }
        }
        Ok(batch)
    }

    /// Acknowledges and deletes entries that Kafka has durably accepted.
    pub async fn acknowledge(&mut self, entries: &[(String, String)]) -> RedisResult<()> {
        let mut by_stream: HashMap<&str, Vec<&str>> = HashMap::new();
        for (stream, id) in entries {
            by_stream.entry(stream).or_default().push(id);
        }
        let mut pipe = redis::pipe();
        for (stream, ids) in by_stream {
            pipe.xack(stream, self.keys.relay_group(), &ids).ignore();
            pipe.xdel(stream, &ids).ignore();
        }
        pipe.query_async(&mut self.reader).await
    }

    /// Entries waiting in all watched outboxes.
    pub async fn length(&mut self) -> RedisResult<u64> {
        let mut pipe = redis::pipe();
        for stream in self.streams.keys() {
            pipe.xlen(stream);
        }
        let lengths: Vec<u64> = pipe.query_async(&mut self.reader).await?;
        Ok(lengths.iter().sum())
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
