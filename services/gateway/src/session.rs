//! One viewer's WebSocket session, in one task: `hello`, what the viewer missed (after a
//! reconnect with `since`, or the room's current drops for a new viewer), then room events
//! from its queue, `pong` for its clock pings, server pings to find dead peers, and a close
//! with a code and reason for anything that breaks the protocol (API.md, WebSocket).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::{Frame, Hello, HelloType, Pong, PongType};
use linkdrop_domain::ids::{new_id, prefix};
use serde::Deserialize;

use crate::GatewayState;
use crate::fanout::{Catchup, Mailbox, Next, RoomMembers};
use crate::snapshot;

/// Room events waiting for one slow connection before it is closed as a slow consumer.
pub const QUEUE_CAPACITY: usize = 64;
/// How often the server pings a quiet connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A connection silent for this long (no frame, no pong) is dead and reaped.
pub const IDLE_TIMEOUT_MS: i64 = 60_000;
/// Largest frame a client may send.
pub const MAX_CLIENT_FRAME: usize = 4096;
/// What the read buffer of a connection starts with. Clients send small frames (clock
/// pings); the buffer grows for a bigger one up to `MAX_CLIENT_FRAME`. Most viewers never
/// send anything, so this is mostly idle memory, paid once per connection.
pub const READ_BUFFER: usize = 512;

/// Close codes the server uses.
mod close_code {
    pub const UNSUPPORTED: u16 = 1003;
    pub const TOO_BIG: u16 = 1009;
    pub const GOING_AWAY: u16 = 1001;
}

/// Who is connecting, and what they saw before.
pub struct Viewer {
    pub room_id: String,
    pub user_id: String,
    /// The last `seq` this viewer saw, when reconnecting.
    pub since: Option<u64>,
}

/// Runs the session of `viewer` in `room` until either side closes.
pub async fn run(
    mut socket: WebSocket,
    state: GatewayState,
    viewer: Viewer,
    room: Arc<RoomMembers>,
) {
    let mailbox = Mailbox::new(QUEUE_CAPACITY);
    let member = mailbox.clone();
    let joined = state.fanout.join(&room, member.clone(), viewer.since);
    state.fanout.join_user(&viewer.user_id, joined.id, member);
    state.analytics.joined(&viewer.room_id, &viewer.user_id);
    let mut opening = vec![hello(&viewer, &room, joined.seq)];
    // Boxed: the catch-up reads Redis, and its large future would otherwise be part of
    // every session's task for the session's whole life.
    opening.extend(Box::pin(catch_up(&state, &viewer, joined.seq, joined.catchup)).await);
    for frame in opening {
        if socket.send(Message::Text(frame)).await.is_err() {
            leave(&state, &room, &viewer, joined.id, &mailbox);
            return;
        }
    }

    let mut last_heard = now_ms();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    loop {
        let step = tokio::select! {
            biased;
            next = mailbox.next() => match next {
                Next::Send(frame) => Step::Send(Message::Text(frame)),
                Next::Close(reason) => Step::Close(reason.code(), reason.text()),
            },
            received = socket.recv() => {
                last_heard = now_ms();
                answer(received)
            }
            _ = ping.tick() => {
                if now_ms() - last_heard > IDLE_TIMEOUT_MS {
                    metrics::counter!("linkdrop_gateway_reaped_total").increment(1);
                    Step::Close(close_code::GOING_AWAY, "ping timeout")
                } else {
                    Step::Send(Message::Ping(Default::default()))
                }
            }
        };
        match step {
            Step::Send(message) => {
                if socket.send(message).await.is_err() {
                    break;
                }
            }
            Step::Continue => {}
            Step::Close(code, reason) => {
                let _ = socket.send(close(code, reason)).await;
                break;
            }
            Step::End => break,
        }
    }
    leave(&state, &room, &viewer, joined.id, &mailbox);
}

/// The `hello` frame. Built apart so that its strings are freed at once rather than
/// living in the session's task for as long as the viewer stays.
fn hello(viewer: &Viewer, room: &RoomMembers, seq: u64) -> Utf8Bytes {
    let hello = Hello {
        room_id: viewer.room_id.clone(),
        seq,
        server_time_ms: now_ms(),
        session_id: new_id(prefix::SESSION),
        kind: HelloType,
        viewers: room.viewers_total.load(Ordering::Relaxed).max(room.len()),
    };
    Utf8Bytes::from(hello.to_text())
}

fn leave(state: &GatewayState, room: &RoomMembers, viewer: &Viewer, id: u64, mailbox: &Mailbox) {
    mailbox.close();
    // Counted before the viewer leaves the room, so that a viewer count without it comes
    // after its leave is counted.
    state.analytics.left(&viewer.room_id);
    state.fanout.leave(room, id);
    state.fanout.leave_user(&viewer.user_id, id);
}

/// The frames that bring a viewer up to `seq`: what it missed, or — when that is more
/// than the room's history keeps, or it is new — a `resync` snapshot of the room's drops.
async fn catch_up(
    state: &GatewayState,
    viewer: &Viewer,
    seq: u64,
    catchup: Catchup,
) -> Vec<Utf8Bytes> {
    let missed = match catchup {
        Catchup::UpToDate if viewer.since.is_some() => return Vec::new(),
        Catchup::UpToDate => None,
        Catchup::Frames(frames) => Some(frames),
        Catchup::FromHistory { after, until } => {
            match state.bus.history(&viewer.room_id, after, until).await {
                Ok(frames) if frames.len() as u64 == until - after => {
                    Some(frames.into_iter().map(Utf8Bytes::from).collect())
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(room_id = %viewer.room_id, error = %e, "could not read the room history");
                    None
                }
            }
        }
    };
    if let Some(frames) = missed {
        metrics::counter!("linkdrop_gateway_resumed_total").increment(1);
        return frames;
    }
    match snapshot::resync(state, &viewer.room_id, seq).await {
        Ok(Some(frame)) => vec![Utf8Bytes::from(frame)],
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(room_id = %viewer.room_id, error = %e, "could not build a resync snapshot");
            Vec::new()
        }
    }
}

/// What to do next.
enum Step {
    Send(Message),
    Continue,
    Close(u16, &'static str),
    End,
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// What a client may send: `{"type": "ping", "t": <client ms>}`.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    t: Option<serde_json::Number>,
}

/// The answer to one frame from the client.
fn answer(received: Option<Result<Message, axum::Error>>) -> Step {
    let message = match received {
        Some(Ok(message)) => message,
        Some(Err(e)) if is_too_big(&e) => {
            return Step::Close(close_code::TOO_BIG, "frame too large (max 4096 bytes)");
        }
        Some(Err(_)) | None => return Step::End,
    };
    match message {
        Message::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage { kind, t }) if kind == "ping" => {
                let pong = Pong {
                    server_time_ms: now_ms(),
                    t,
                    kind: PongType,
                };
                Step::Send(Message::Text(pong.to_text().into()))
            }
            _ => Step::Close(
                close_code::UNSUPPORTED,
                "unsupported message (only {\"type\":\"ping\"} is accepted)",
            ),
        },
        Message::Binary(_) => {
            Step::Close(close_code::UNSUPPORTED, "binary frames are not accepted")
        }
        Message::Close(_) => Step::End,
        Message::Ping(_) | Message::Pong(_) => Step::Continue,
    }
}

fn is_too_big(error: &axum::Error) -> bool {
    use std::error::Error;
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(tungstenite) = e.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(
                tungstenite,
                tokio_tungstenite::tungstenite::Error::Capacity(_)
            );
        }
        source = e.source();
    }
    false
}
