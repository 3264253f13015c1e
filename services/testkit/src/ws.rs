//! WebSocket clients of a room: a viewer that reads frames, one that reconnects with
//! `since`, and a stuck one that completes the handshake and reads nothing more.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{PATIENCE, TestApp};

impl TestApp {
    /// A viewer's WebSocket in `room_id`.
    pub async fn viewer(&self, room_id: &str, token: &str) -> Viewer {
        let url = format!("ws://{}/v1/rooms/{room_id}/ws?token={token}", self.addr);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        Viewer { socket }
    }

    /// A viewer of `user_id` who has joined `room_id` (its hello arrived).
    pub async fn joined_viewer(&self, room_id: &str, user_id: &str) -> Viewer {
        let mut viewer = self.viewer(room_id, &self.token(user_id)).await;
        viewer.next_of_type("hello").await;
        viewer
    }

    /// A viewer reconnecting after having seen events up to `since`.
    pub async fn viewer_since(&self, room_id: &str, token: &str, since: u64) -> Viewer {
        let url = format!(
            "ws://{}/v1/rooms/{room_id}/ws?token={token}&since={since}",
            self.addr
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        Viewer { socket }
    }

    /// A raw connection that completes the WebSocket handshake and then reads nothing
    /// more until asked: the stuck client of the slow-consumer test.
    pub async fn stuck_viewer(&self, room_id: &str, token: &str) -> TcpStream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&self.addr.into()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut stream = TcpStream::from_std(std::net::TcpStream::from(socket)).unwrap();
        let request = format!(
            "GET /v1/rooms/{room_id}/ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // Read the 101 answer byte by byte, so that nothing after it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        stream
    }
}

/// A WebSocket client in a room.
pub struct Viewer {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Viewer {
    /// A viewer on a connection whose WebSocket handshake is already done.
    pub async fn from_raw(stream: TcpStream) -> Viewer {
        let socket = WebSocketStream::from_raw_socket(
            MaybeTlsStream::Plain(stream),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        Viewer { socket }
    }

    /// The next JSON text frame; panics after [`PATIENCE`].
    pub async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame of type `kind`, skipping others (e.g. `room.viewers`).
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads until the room is said to have `n` viewers (`room.viewers`). The gateway
    /// counts its viewers for the host's analytics before it sends that count.
    pub async fn until_viewers(&mut self, n: u64) {
        while self.next_of_type("room.viewers").await["viewers"] != n {}
    }

    /// Reads until the server closes; its close code and reason.
    pub async fn next_close(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the server closes in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the connection broke instead of closing: {e}"),
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }
}
