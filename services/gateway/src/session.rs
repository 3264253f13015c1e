//! One viewer's WebSocket session, in one task: `hello`, what the viewer missed (after a
//! reconnect with `since`, or the room's current drops for a new viewer), then what its
//! queue holds (room events go straight to the socket when it takes them, see
//! [`crate::fanout`]), `pong` for its clock pings, server pings to find dead peers, and a
//! close with a code and reason for anything that breaks the protocol (API.md, WebSocket).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::{Frame as _, Hello, HelloType, Pong, PongType};
use linkdrop_domain::ids::{new_id, prefix};
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::GatewayState;
use crate::fanout::{Catchup, Flushed, Mailbox, Offer, RoomMembers};
use crate::snapshot;
use crate::wire::{Frame, Incoming, Reader};

/// Room events waiting for one slow connection before it is closed as a slow consumer.
pub const QUEUE_CAPACITY: usize = 64;
/// How often the server pings a quiet connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A connection silent for this long (no frame, no pong) is dead and reaped.
pub const IDLE_TIMEOUT_MS: i64 = 60_000;
/// How long closing may take: the rest of a frame under way and the close frame out, then
/// the client's own close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 1024;

/// Close codes the server uses.
mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const UNSUPPORTED: u16 = 1003;
    pub const GOING_AWAY: u16 = 1001;
}

/// Who is connecting, and what they saw before.
pub struct Viewer {
    pub room_id: String,
    pub user_id: String,
    /// The last `seq` this viewer saw, when reconnecting.
    pub since: Option<u64>,
}

/// Runs the session of `viewer` in `room` on `socket` until either side closes; `early`
/// holds what the client sent right after its upgrade request.
pub async fn run(
    socket: TcpStream,
    early: Bytes,
    state: GatewayState,
    viewer: Viewer,
    room: Arc<RoomMembers>,
) {
    let mailbox = Mailbox::held(QUEUE_CAPACITY, socket);
    let joined = state.fanout.join(&room, mailbox.clone(), viewer.since);
    state
        .fanout
        .join_user(&viewer.user_id, joined.id, mailbox.clone());
    state.analytics.joined(&viewer.room_id, &viewer.user_id);
    let mut opening = vec![hello(&viewer, &room, joined.seq)];
    // Boxed: the catch-up reads Redis, and its large future would otherwise be part of
    // every session's task for the session's whole life.
    opening.extend(Box::pin(catch_up(&state, &viewer, joined.seq, joined.catchup)).await);
    if write_opening(&mailbox, opening).await.is_ok() {
        mailbox.release();
        if let Ending::Close(code, reason) = serve(&mailbox, early).await {
            close(&mailbox, code, reason).await;
        }
    }
    leave(&state, &room, &viewer, joined.id, &mailbox);
}

async fn write_opening(mailbox: &Mailbox, opening: Vec<Frame>) -> io::Result<()> {
    for frame in &opening {
        mailbox.write_held(frame).await?;
    }
    Ok(())
}

/// How a session ends.
enum Ending {
    /// With a close frame.
    Close(u16, &'static str),
    /// The connection is gone.
    Gone,
}

/// Serves an open session: writes what waits in its queue, reads and answers the
/// client's frames, pings it when quiet. Returns how the session ends.
async fn serve(mailbox: &Mailbox, early: Bytes) -> Ending {
    let mut reader = Reader::default();
    reader.push(&early);
    // Not kept for the session's life: it may share the server's whole read buffer.
    drop(early);
    let mut last_heard = now_ms();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    loop {
        loop {
            match reader.message() {
                Ok(Some(message)) => {
                    last_heard = now_ms();
                    match answer(message) {
                        Step::Send(frame) => {
                            if mailbox.offer(&frame) == Offer::Gone {
                                return Ending::Gone;
                            }
                        }
                        Step::Continue => {}
                        Step::Close(code, reason) => return Ending::Close(code, reason),
                    }
                }
                Ok(None) => break,
                Err(refusal) => return Ending::Close(refusal.code(), refusal.reason()),
            }
        }
        tokio::select! {
            biased;
            flushed = mailbox.flush() => return match flushed {
                Flushed::Close(reason) => Ending::Close(reason.code(), reason.text()),
                Flushed::Broken => Ending::Gone,
            },
            read = read_some(mailbox.socket(), |bytes| reader.push(bytes)) => {
                if !matches!(read, Ok(true)) {
                    return Ending::Gone;
                }
            }
            _ = ping.tick() => {
                if now_ms() - last_heard > IDLE_TIMEOUT_MS {
                    metrics::counter!("linkdrop_gateway_reaped_total").increment(1);
                    return Ending::Close(close_code::GOING_AWAY, "ping timeout");
                }
                mailbox.offer(&Frame::ping());
            }
        }
    }
}

/// Waits for what the client sends and gives it to `take`: `false` once the client has
/// ended the connection. The read buffer is not held while waiting.
async fn read_some(socket: &TcpStream, mut take: impl FnMut(&[u8])) -> io::Result<bool> {
    loop {
        socket.readable().await?;
        let mut chunk = [0u8; READ_CHUNK];
        match socket.try_read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                take(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends the close frame (after the rest of a frame under way), then waits, bounded, for
/// the client to end the connection, reading and dropping whatever it still sends — so
/// that the close frame is not lost to a reset.
async fn close(mailbox: &Mailbox, code: u16, reason: &'static str) {
    let closing = async {
        mailbox.close_with(Frame::close(code, reason)).await?;
        let socket = mailbox.socket();
        socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Write)?;
        while read_some(socket, |_| {}).await? {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}

/// The `hello` frame. Built apart so that its strings are freed at once rather than
/// living in the session's task for as long as the viewer stays.
fn hello(viewer: &Viewer, room: &RoomMembers, seq: u64) -> Frame {
    let hello = Hello {
        room_id: viewer.room_id.clone(),
        seq,
        server_time_ms: now_ms(),
        session_id: new_id(prefix::SESSION),
        kind: HelloType,
        viewers: room.viewers_total.load(Ordering::Relaxed).max(room.len()),
    };
    Frame::text(&hello.to_text())
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
async fn catch_up(state: &GatewayState, viewer: &Viewer, seq: u64, catchup: Catchup) -> Vec<Frame> {
    let missed = match catchup {
        Catchup::UpToDate if viewer.since.is_some() => return Vec::new(),
        Catchup::UpToDate => None,
        Catchup::Frames(frames) => Some(frames),
        Catchup::FromHistory { after, until } => {
            match state.bus.history(&viewer.room_id, after, until).await {
                Ok(frames) if frames.len() as u64 == until - after => {
                    Some(frames.iter().map(|frame| Frame::text(frame)).collect())
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
        Ok(Some(frame)) => vec![Frame::text(&frame)],
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(room_id = %viewer.room_id, error = %e, "could not build a resync snapshot");
            Vec::new()
        }
    }
}

/// What to do next.
enum Step {
    Send(Frame),
    Continue,
    Close(u16, &'static str),
}

/// What a client may send: `{"type": "ping", "t": <client ms>}`.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    t: Option<serde_json::Number>,
}

/// The answer to one message from the client.
fn answer(message: Incoming) -> Step {
    match message {
        Incoming::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage { kind, t }) if kind == "ping" => {
                let pong = Pong {
                    server_time_ms: now_ms(),
                    t,
                    kind: PongType,
                };
                Step::Send(Frame::text(&pong.to_text()))
            }
            _ => Step::Close(
                close_code::UNSUPPORTED,
                "unsupported message (only {\"type\":\"ping\"} is accepted)",
            ),
        },
        Incoming::Ping(payload) => Step::Send(Frame::pong(&payload)),
        Incoming::Pong => Step::Continue,
        Incoming::Close(_) => Step::Close(close_code::NORMAL, ""),
    }
}
