//! This node's subscription to the room bus: every room event published anywhere reaches
//! the local members of its room, and every `order.result` the local connections of its
//! shopper.
//!
//! The subscription reconnects by itself after a failure (with backoff, to the next Redis
//! node given when there are several); the first successful subscription is reported so
//! that the node accepts viewers only once it can deliver to them. On the embedded backend
//! the bus is the engine's in-process publishing, the same frames through the same path.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::room_bus::{RoomBus, frame_seq};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::fanout::FanOut;
use std::sync::Arc;

/// Longest pause between two attempts to resubscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where room events come from.
pub enum BusSource {
    /// Redis pub/sub: the nodes the subscription may use, tried in turn when one fails
    /// (one server, or some nodes of a cluster: PUBLISH reaches every node's subscribers).
    Redis(Vec<redis::Client>),
    /// The embedded engine of this process.
    Embedded(linkdrop_engine::Engine),
}

/// Subscribes to every room channel of the namespace and fans each event out locally,
/// until `shutdown`. `subscribed` fires after the first successful subscription.
pub async fn run(
    source: BusSource,
    keys: Keys,
    history: RoomBus,
    fanout: Arc<FanOut>,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
) {
    match source {
        BusSource::Redis(nodes) => {
            run_on_redis(nodes, keys, history, fanout, shutdown, subscribed).await
        }
        BusSource::Embedded(engine) => {
            run_embedded(engine, keys, history, fanout, shutdown, subscribed).await
        }
    }
}

/// The engine's messages, until `shutdown`. A gateway that fell behind the engine's
/// backlog catches up on room events from the history (`fill_gap`), as after a Redis
/// reconnection.
async fn run_embedded(
    engine: linkdrop_engine::Engine,
    keys: Keys,
    history: RoomBus,
    fanout: Arc<FanOut>,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
) {
    let mut messages = engine.subscribe();
    let _ = subscribed.send(());
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = messages.recv() => message,
        };
        match message {
            Ok(message) => {
                deliver(&keys, &history, &fanout, &message.channel, message.payload).await
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                metrics::counter!("linkdrop_gateway_bus_reconnects_total").increment(1);
                tracing::warn!(
                    missed,
                    "room bus fell behind; missed room events come from history"
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn run_on_redis(
    nodes: Vec<redis::Client>,
    keys: Keys,
    history: RoomBus,
    fanout: Arc<FanOut>,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut backoff = Duration::from_millis(100);
    for client in nodes.iter().cycle() {
        match subscribe(client, &keys, &history, &fanout, &shutdown, &mut subscribed).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!("linkdrop_gateway_bus_reconnects_total").increment(1);
                tracing::warn!(error = %e, ?backoff, "room bus subscription lost; resubscribing");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    client: &redis::Client,
    keys: &Keys,
    history: &RoomBus,
    fanout: &FanOut,
    shutdown: &CancellationToken,
    subscribed: &mut Option<oneshot::Sender<()>>,
) -> Result<(), redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(keys.room_channel_pattern()).await?;
    pubsub.psubscribe(keys.user_channel_pattern()).await?;
    if let Some(tx) = subscribed.take() {
        let _ = tx.send(());
    }
    tracing::info!(pattern = %keys.room_channel_pattern(), "subscribed to the room bus");
    let mut messages = pubsub.on_message();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "room bus connection closed",
            )));
        };
        let frame: String = match message.get_payload() {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(error = %e, "room bus message is not text");
                continue;
            }
        };
        deliver(keys, history, fanout, message.get_channel_name(), frame).await;
    }
}

/// Sends one bus message to the local connections it is for: a shopper's, or a room's
/// (after any events this node missed before it).
async fn deliver(keys: &Keys, history: &RoomBus, fanout: &FanOut, channel: &str, frame: String) {
    if let Some(user_id) = keys.user_of_channel(channel) {
        fanout.send_to_user(user_id, &Utf8Bytes::from(frame));
        return;
    }
    let Some(room_id) = keys.room_of_channel(channel) else {
        return;
    };
    let seq = frame_seq(&frame);
    if let Some(seq) = seq {
        fill_gap(history, fanout, room_id, seq).await;
    }
    let started = std::time::Instant::now();
    let delivery = fanout.broadcast(room_id, seq, &Utf8Bytes::from(frame));
    metrics::histogram!("linkdrop_gateway_broadcast_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(%room_id, ?seq, queued = delivery.queued, slow = delivery.slow, "room event fanned out");
}

/// Delivers from the room's history the events before `seq` that this node never heard
/// (published while its subscription was down), so that its viewers miss nothing.
async fn fill_gap(history: &RoomBus, fanout: &FanOut, room_id: &str, seq: u64) {
    let Some(last) = fanout.room(room_id).and_then(|room| room.last_seq()) else {
        return;
    };
    if seq <= last + 1 {
        return;
    }
    match history.history(room_id, last, seq - 1).await {
        Ok(frames) => {
            metrics::counter!("linkdrop_gateway_gap_events_total").increment(frames.len() as u64);
            for frame in frames {
                fanout.broadcast(room_id, frame_seq(&frame), &Utf8Bytes::from(frame));
            }
        }
        Err(e) => tracing::warn!(%room_id, error = %e, "could not fill a gap in the room's events"),
    }
}
