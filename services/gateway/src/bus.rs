//! This node's subscription to the room bus: every room event published anywhere reaches
//! the local members of its room, and every `order.result` the local connections of its
//! shopper.
//!
//! The subscription (`linkdrop_infra::bus_listener`) reconnects by itself after a failure;
//! the first successful subscription is reported so that the node accepts viewers only once
//! it can deliver to them. Room events missed meanwhile are filled in from the room's
//! history when the next one arrives. On the embedded backend the bus is the engine's
//! in-process publishing, the same frames through the same path.

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::keys::Keys;
use linkdrop_infra::analytics::Analytics;
use linkdrop_infra::bus_listener::{BusSource, Heard, listen};
use linkdrop_infra::room_bus::{RoomBus, frame_seq, split_trace};
use linkdrop_infra::trace::{SpanKind, Trace};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::fanout::FanOut;
use crate::wire::Frame;
use std::sync::Arc;

/// Subscribes to every room channel of the namespace and fans each event out locally,
/// until `shutdown`. `subscribed` fires after the first successful subscription.
pub async fn run(
    source: BusSource,
    keys: Keys,
    history: RoomBus,
    fanout: Arc<FanOut>,
    analytics: Analytics,
    shutdown: CancellationToken,
    subscribed: oneshot::Sender<()>,
) {
    let patterns = vec![keys.room_channel_pattern(), keys.user_channel_pattern()];
    let on = move |heard| {
        let (keys, history, fanout) = (keys.clone(), history.clone(), fanout.clone());
        let analytics = analytics.clone();
        async move {
            match heard {
                Heard::Message { channel, payload } => {
                    let local = Local {
                        history: &history,
                        fanout: &fanout,
                        analytics: &analytics,
                    };
                    deliver(&keys, local, &channel, payload).await
                }
                Heard::Lost { error } => {
                    metrics::counter!("linkdrop_gateway_bus_reconnects_total").increment(1);
                    tracing::warn!(%error, "room bus subscription lost; resubscribing");
                }
                Heard::Subscribed => tracing::info!("room bus subscribed again"),
                Heard::Lagged { missed } => {
                    metrics::counter!("linkdrop_gateway_bus_reconnects_total").increment(1);
                    tracing::warn!(
                        missed,
                        "room bus fell behind; missed room events come from history"
                    );
                }
            }
        }
    };
    listen(source, patterns, shutdown, subscribed, on).await
}

/// What a bus message is delivered to on this node.
#[derive(Clone, Copy)]
struct Local<'a> {
    history: &'a RoomBus,
    fanout: &'a FanOut,
    analytics: &'a Analytics,
}

/// Sends one bus message to the local connections it is for: a shopper's, or a room's
/// (after any events this node missed before it).
async fn deliver(keys: &Keys, local: Local<'_>, channel: &str, message: String) {
    let Local {
        history,
        fanout,
        analytics,
    } = local;
    if let Some(user_id) = keys.user_of_channel(channel) {
        fanout.send_to_user(user_id, &Frame::text(&message));
        return;
    }
    let Some(room_id) = keys.room_of_channel(channel) else {
        return;
    };
    let (span, frame) = match split_trace(&message) {
        (None, _) => (None, message),
        (Some(parent), frame) => (
            Trace::continue_from("room fanout", SpanKind::Consumer, Some(parent)),
            frame.to_string(),
        ),
    };
    let seq = frame_seq(&frame);
    if let Some(seq) = seq {
        fill_gap(history, fanout, room_id, seq).await;
    }
    let countdown = countdown_of(analytics, &frame);
    let started = std::time::Instant::now();
    let delivery = fanout.broadcast(room_id, seq, &Frame::text(&frame));
    metrics::histogram!("linkdrop_gateway_broadcast_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(%room_id, ?seq, written = delivery.written, queued = delivery.queued, slow = delivery.slow, "room event fanned out");
    if let Some(countdown) = countdown
        && now_ms() < countdown.opens_at_ms
    {
        analytics.countdown_reached(&countdown.drop.id, delivery.reached() as u64);
    }
    if let Some(span) = span {
        span.set("linkdrop.room_id", room_id.to_string());
        span.set("linkdrop.viewers_written", delivery.written as i64);
        span.set("linkdrop.viewers_queued", delivery.queued as i64);
        span.set("linkdrop.viewers_slow", delivery.slow as i64);
        span.end();
    }
}

/// A drop's countdown, as far as the host's analytics read it.
#[derive(serde::Deserialize)]
struct Countdown {
    drop: CountdownDrop,
    opens_at_ms: i64,
}

#[derive(serde::Deserialize)]
struct CountdownDrop {
    id: String,
}

/// The drop and opening of a `drop.countdown` frame, when the analytics count its reach.
fn countdown_of(analytics: &Analytics, frame: &str) -> Option<Countdown> {
    if !analytics.is_on() || !frame.contains(r#""type":"drop.countdown""#) {
        return None;
    }
    serde_json::from_str(frame)
        .inspect_err(
            |e| tracing::warn!(error = %e, "a drop.countdown the analytics could not read"),
        )
        .ok()
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
                fanout.broadcast(room_id, frame_seq(&frame), &Frame::text(&frame));
            }
        }
        Err(e) => tracing::warn!(%room_id, error = %e, "could not fill a gap in the room's events"),
    }
}
