//! One viewer's WebSocket session: `hello`, then room events from its queue, `pong` for
//! its clock pings, server pings to find dead peers, and a close with a code and reason
//! for anything that breaks the protocol (API.md, WebSocket).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::ids::{new_id, prefix};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::GatewayState;
use crate::fanout::{Kill, Member, RoomMembers};

/// Room events waiting for one slow connection before it is closed as a slow consumer.
pub const QUEUE_CAPACITY: usize = 64;
/// How often the server pings a quiet connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A connection silent for this long (no frame, no pong) is dead and reaped.
pub const IDLE_TIMEOUT_MS: i64 = 60_000;
/// Largest frame a client may send.
pub const MAX_CLIENT_FRAME: usize = 4096;

/// Close codes the server uses.
mod close_code {
    pub const UNSUPPORTED: u16 = 1003;
    pub const TOO_BIG: u16 = 1009;
    pub const GOING_AWAY: u16 = 1001;
    pub const INTERNAL: u16 = 1011;
}

/// A frame the writer must send besides room events.
enum Control {
    Text(String),
    Close(u16, &'static str),
}

/// Runs the session of a viewer of `room` until either side closes.
pub async fn run(
    socket: WebSocket,
    state: GatewayState,
    room_id: String,
    room: Arc<RoomMembers>,
    user_id: String,
) {
    let (queue, events) = mpsc::channel(QUEUE_CAPACITY);
    let kill = Arc::new(Kill::default());
    let member = Member {
        queue,
        kill: kill.clone(),
    };
    let (member_id, seq) = state.fanout.join(&room, member.clone());
    state.fanout.join_user(&user_id, member_id, member);
    let hello = json!({
        "type": "hello",
        "session_id": new_id(prefix::SESSION),
        "room_id": room_id,
        "server_time_ms": now_ms(),
        "seq": seq,
        "viewers": room.viewers_total.load(Ordering::Relaxed).max(room.len()),
    })
    .to_string();
    tracing::debug!(%room_id, %user_id, seq, "viewer joined");

    let (sink, stream) = socket.split();
    let (control, control_rx) = mpsc::channel(8);
    let last_heard = Arc::new(AtomicI64::new(now_ms()));
    let writer = tokio::spawn(write_frames(
        sink,
        hello,
        events,
        control_rx,
        kill,
        last_heard.clone(),
    ));
    read_frames(stream, &control, &last_heard).await;
    drop(control);
    let _ = writer.await;
    state.fanout.leave(&room, member_id);
    state.fanout.leave_user(&user_id, member_id);
    tracing::debug!(%room_id, %user_id, "viewer left");
}

/// Sends `hello`, then queued room events and control frames, until told to close.
async fn write_frames(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    hello: String,
    mut events: mpsc::Receiver<Utf8Bytes>,
    mut control: mpsc::Receiver<Control>,
    kill: Arc<Kill>,
    last_heard: Arc<AtomicI64>,
) {
    if sink.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    loop {
        let outcome = tokio::select! {
            biased;
            reason = kill.fired() => {
                let _ = sink.send(close(reason.code(), reason.text())).await;
                return;
            }
            command = control.recv() => match command {
                Some(Control::Text(text)) => sink.send(Message::Text(text.into())).await,
                Some(Control::Close(code, reason)) => {
                    let _ = sink.send(close(code, reason)).await;
                    return;
                }
                // The reader ended: the peer closed or the connection broke.
                None => return,
            },
            frame = events.recv() => match frame {
                Some(frame) => sink.send(Message::Text(frame)).await,
                None => return,
            },
            _ = ping.tick() => {
                if now_ms() - last_heard.load(Ordering::Relaxed) > IDLE_TIMEOUT_MS {
                    metrics::counter!("linkdrop_gateway_reaped_total").increment(1);
                    let _ = sink.send(close(close_code::GOING_AWAY, "ping timeout")).await;
                    return;
                }
                sink.send(Message::Ping(Default::default())).await
            }
        };
        if outcome.is_err() {
            return;
        }
    }
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

/// Reads client frames until the peer closes or breaks the protocol.
async fn read_frames(
    mut stream: futures::stream::SplitStream<WebSocket>,
    control: &mpsc::Sender<Control>,
    last_heard: &AtomicI64,
) {
    while let Some(received) = stream.next().await {
        last_heard.store(now_ms(), Ordering::Relaxed);
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                if is_too_big(&e) {
                    let _ = control
                        .send(Control::Close(
                            close_code::TOO_BIG,
                            "frame too large (max 4096 bytes)",
                        ))
                        .await;
                }
                return;
            }
        };
        match message {
            Message::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
                Ok(ClientMessage { kind, t }) if kind == "ping" => {
                    let pong = json!({"type": "pong", "t": t, "server_time_ms": now_ms()});
                    // A client pinging faster than we answer loses pongs, not the session.
                    let _ = control.try_send(Control::Text(pong.to_string()));
                }
                _ => {
                    let reason = "unsupported message (only {\"type\":\"ping\"} is accepted)";
                    let _ = control
                        .send(Control::Close(close_code::UNSUPPORTED, reason))
                        .await;
                    return;
                }
            },
            Message::Binary(_) => {
                let _ = control
                    .send(Control::Close(
                        close_code::UNSUPPORTED,
                        "binary frames are not accepted",
                    ))
                    .await;
                return;
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
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

/// Closes a session that could not start (e.g. Redis unreachable while joining).
pub async fn refuse(mut socket: WebSocket, reason: &'static str) {
    let _ = socket.send(close(close_code::INTERNAL, reason)).await;
}
