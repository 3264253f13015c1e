//! The floor of the fan-out benchmark: the least work this machine lets a server do to put
//! one broadcast on every viewer's socket, so that linkdrop's fan-out time can be given as a
//! ratio to it rather than as a guess.
//!
//! `linkdrop-loadgen floor-server` speaks just enough of linkdrop's WebSocket for the
//! audience (`audience --target linkdrop`): it accepts the upgrade on any path (the
//! audience asks for `/v1/rooms/<room>/ws?token=…`; nothing is checked) and sends a `hello`
//! text frame, after which the audience counts the viewer as in. It never reads from a
//! viewer again.
//!
//! The trigger is `POST /trigger` on the same port (any headers and body; the answer is
//! `200`). The server then passes the trigger on to its `--peers` (other floor servers, one
//! fresh loopback connection and one `POST /trigger` each, the way linkdrop's launch reaches
//! its other gateways over the room bus) and writes one pre-encoded, unmasked server text
//! frame — the same bytes for every viewer, shaped like linkdrop's `drop.countdown` and
//! padded to `--frame-bytes` — to every socket from one loop with one non-blocking write
//! each, on one thread. Only the sockets whose write would block (or was partial) are then
//! waited for, all at once.
//!
//! On start it prints `listening <host:port>` on stdout.

use std::io::{ErrorKind, Write as _};
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use linkdrop_domain::events::{Frame, Hello, HelloType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Longest request head (and trigger body) the server reads.
const MAX_REQUEST: usize = 8192;

#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// Where to listen for viewers (WebSocket upgrade, any path) and the trigger
    /// (`POST /trigger`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Size of the broadcast message's payload in bytes (the `frame_bytes` the audience
    /// reports for linkdrop's `drop.countdown`); the message is padded up to it.
    #[arg(long)]
    pub frame_bytes: Option<usize>,
    /// Other floor servers (`host:port`, comma-separated) to pass the trigger on to before
    /// writing to this server's own viewers.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
}

/// Runs the server until the process ends; prints `listening <addr>` once bound.
pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    serve(listener, args).await
}

/// What connection handlers tell the broadcasting loop, in the order it happened.
enum Event {
    /// A viewer whose upgrade was answered; it gets `hello` once registered.
    Viewer(TcpStream),
    Trigger,
}

/// Accepts connections on `listener` and broadcasts on each trigger.
pub async fn serve(listener: TcpListener, args: FloorArgs) -> anyhow::Result<()> {
    let (events, mut inbox) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let events = events.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, &events).await {
                    eprintln!("floor-server: {e:#}");
                }
            });
        }
    });
    let hello = text_frame(
        Hello {
            room_id: "floor".into(),
            seq: 0,
            server_time_ms: 0,
            session_id: "ses_floor".into(),
            kind: HelloType,
            viewers: 0,
        }
        .to_text()
        .as_bytes(),
    );
    let frame = text_frame(countdown_text(args.frame_bytes).as_bytes());
    let mut viewers: Vec<TcpStream> = Vec::new();
    while let Some(event) = inbox.recv().await {
        match event {
            Event::Viewer(stream) => {
                // After the 101 the socket's buffer is empty: a small frame always fits.
                if stream.try_write(&hello).ok() == Some(hello.len()) {
                    viewers.push(stream);
                }
            }
            Event::Trigger => {
                relay(&args.peers);
                broadcast(&viewers, &frame).await;
            }
        }
    }
    Ok(())
}

/// One non-blocking write per viewer from one loop; then waits only for the sockets that
/// would have blocked, all at once.
async fn broadcast(viewers: &[TcpStream], frame: &[u8]) {
    let started = Instant::now();
    let mut blocked = Vec::new();
    for viewer in viewers {
        match viewer.try_write(frame) {
            Ok(n) if n == frame.len() => {}
            Ok(n) => blocked.push((viewer, n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => blocked.push((viewer, 0)),
            Err(_) => {} // The viewer is gone.
        }
    }
    let looped = started.elapsed();
    let waited = blocked.len();
    futures::future::join_all(
        blocked
            .into_iter()
            .map(|(viewer, sent)| write_rest(viewer, &frame[sent..])),
    )
    .await;
    // For the bench's log: whether the writes or the readers are the limit.
    eprintln!(
        "floor-server: {} viewers, {} bytes each: loop {looped:?}, {waited} would block, all written after {:?}",
        viewers.len(),
        frame.len(),
        started.elapsed()
    );
}

async fn write_rest(viewer: &TcpStream, mut rest: &[u8]) {
    while !rest.is_empty() {
        if viewer.writable().await.is_err() {
            return;
        }
        match viewer.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Passes the trigger on: a fresh loopback connection and one request per peer, blocking
/// (a loopback connect completes at once; the peers' answers are not waited for).
fn relay(peers: &[String]) {
    for peer in peers {
        let sent = std::net::TcpStream::connect(peer.as_str()).and_then(|mut s| {
            s.set_nodelay(true)?;
            s.write_all(b"POST /trigger HTTP/1.1\r\nhost: floor\r\ncontent-length: 0\r\n\r\n")
        });
        if let Err(e) = sent {
            eprintln!("floor-server: passing the trigger to {peer}: {e}");
        }
    }
}

/// Reads one request: a WebSocket upgrade becomes a viewer, `POST /trigger` a trigger.
async fn handle(
    mut stream: TcpStream,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() >= MAX_REQUEST || stream.read_buf(&mut buf).await? == 0 {
            bail!("no complete request head");
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("request head")?;
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    if head.starts_with("POST /trigger") {
        // Read the body, so that closing does not reset the connection under the answer.
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length.min(MAX_REQUEST) {
            if stream.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        let _ = events.send(Event::Trigger);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    let Some(key) = header("sec-websocket-key") else {
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(answer.as_bytes()).await?;
    let _ = events.send(Event::Viewer(stream));
    Ok(())
}

/// A `drop.countdown` of linkdrop's shape, its title padded so that the whole text is
/// `size` bytes (when that is more than its natural size).
pub fn countdown_text(size: Option<usize>) -> String {
    let text = |title: &str| {
        serde_json::json!({
            "drop": {
                "currency": "CNY", "fairness": {"policy": "fcfs"}, "id": "drp_floor",
                "image_url": "https://img.example/f.png", "max_per_user": 1,
                "price_cents": 100, "sku": "F", "title": title,
            },
            "opens_at_ms": 1_800_000_000_000_i64,
            "order_url": "http://127.0.0.1/v1/drops/drp_floor/orders",
            "seq": 1,
            "ts_ms": 1_800_000_000_000_i64,
            "type": "drop.countdown",
        })
        .to_string()
    };
    let natural = text("fanout");
    match size {
        Some(size) if size > natural.len() => {
            text(&format!("fanout{}", "x".repeat(size - natural.len())))
        }
        _ => natural,
    }
}

/// An unmasked server text frame (FIN set) carrying `payload`.
pub fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    async fn start(frame_bytes: Option<usize>, peers: Vec<String>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let args = FloorArgs {
            listen: addr,
            frame_bytes,
            peers,
        };
        tokio::spawn(serve(listener, args));
        addr
    }

    type Viewer = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// Connects like the audience does and waits for `hello`.
    async fn viewer(addr: SocketAddr) -> Viewer {
        let url = format!("ws://{addr}/v1/rooms/floor/ws?token=t");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let Some(Ok(Message::Text(hello))) = ws.next().await else {
            panic!("no hello");
        };
        assert!(hello.contains("\"type\":\"hello\""), "{hello}");
        ws
    }

    async fn trigger(addr: SocketAddr) {
        let status =
            crate::http::post_json(&format!("http://{addr}/trigger"), ("x-floor", "1"), "{}")
                .await
                .unwrap();
        assert_eq!(status, 200);
    }

    /// The countdown exactly once, of `size` bytes; nothing after it.
    async fn got_it_once(ws: &mut Viewer, size: usize) {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            panic!("no countdown: {next:?}");
        };
        assert!(text.contains("\"type\":\"drop.countdown\""), "{text}");
        assert_eq!(text.len(), size);
        let more = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
        assert!(more.is_err(), "a second frame: {more:?}");
    }

    #[tokio::test]
    async fn every_viewer_gets_the_frame_exactly_once() {
        let addr = start(Some(600), Vec::new()).await;
        let mut viewers = Vec::new();
        for _ in 0..5 {
            viewers.push(viewer(addr).await);
        }
        trigger(addr).await;
        for ws in &mut viewers {
            got_it_once(ws, 600).await;
        }
    }

    #[tokio::test]
    async fn the_trigger_reaches_the_peers_viewers() {
        let peer = start(None, Vec::new()).await;
        let first = start(None, vec![peer.to_string()]).await;
        let mut here = viewer(first).await;
        let mut there = vec![viewer(peer).await, viewer(peer).await];
        trigger(first).await;
        let size = countdown_text(None).len();
        got_it_once(&mut here, size).await;
        for ws in &mut there {
            got_it_once(ws, size).await;
        }
    }

    #[test]
    fn frames_carry_their_length_as_the_protocol_says() {
        assert_eq!(text_frame(b"hi"), b"\x81\x02hi");
        assert_eq!(&text_frame(&[b'x'; 300])[..4], &[0x81, 126, 1, 44]);
        assert_eq!(countdown_text(Some(700)).len(), 700);
        assert!(countdown_text(Some(10)).len() > 10);
    }
}
