//! The framing checked against tungstenite, an independent implementation: frames a
//! tungstenite client writes (masked, fragmented, control) are read back by [`Reader`],
//! and [`Frame`]s are read by a tungstenite client.

use std::io::{Cursor, Read, Write};

use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::*;

/// A stream whose reads come from `input` and whose writes collect in `output`.
#[derive(Default)]
struct Pipe {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes a tungstenite client puts on the wire for `messages`.
fn client_bytes(messages: Vec<Message>) -> Vec<u8> {
    let mut client = WebSocket::from_raw_socket(Pipe::default(), Role::Client, None);
    for message in messages {
        client.write(message).unwrap();
    }
    client.flush().unwrap();
    std::mem::take(&mut client.get_mut().output)
}

/// What a tungstenite client reads from `frames`.
fn client_reads(frames: &[Frame]) -> Vec<Message> {
    let input: Vec<u8> = frames.iter().flat_map(|f| f.bytes().to_vec()).collect();
    let pipe = Pipe {
        input: Cursor::new(input),
        output: Vec::new(),
    };
    let mut client = WebSocket::from_raw_socket(pipe, Role::Client, None);
    (0..frames.len()).map(|_| client.read().unwrap()).collect()
}

fn read_all(bytes: &[u8]) -> Result<Vec<Incoming>, Refusal> {
    let mut reader = Reader::default();
    reader.push(bytes);
    let mut messages = Vec::new();
    while let Some(message) = reader.message()? {
        messages.push(message);
    }
    Ok(messages)
}

fn fragment(payload: &[u8], opcode: OpCode, fin: bool) -> Message {
    Message::Frame(WsFrame::message(payload.to_vec(), opcode, fin))
}

#[test]
fn server_frames_of_every_length_class_read_back_in_a_client() {
    let short = "a".repeat(125);
    let medium = "b".repeat(126);
    let long = "c".repeat(70_000);
    let frames = [
        Frame::text(&short),
        Frame::text(&medium),
        Frame::text(&long),
        Frame::ping(),
        Frame::pong(b"tick"),
        Frame::close(4008, "slow consumer"),
    ];
    let read = client_reads(&frames);
    assert_eq!(read[0], Message::text(short));
    assert_eq!(read[1], Message::text(medium));
    assert_eq!(read[2], Message::text(long));
    assert_eq!(read[3], Message::Ping(Bytes::new()));
    assert_eq!(read[4], Message::Pong(Bytes::from_static(b"tick")));
    let Message::Close(Some(close)) = &read[5] else {
        panic!("expected a close frame, got {:?}", read[5]);
    };
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (4008, "slow consumer")
    );
}

#[test]
fn client_messages_whole_or_in_fragments_come_out_whole() {
    let bytes = client_bytes(vec![
        Message::text(r#"{"type":"ping","t":1}"#),
        Message::Ping(Bytes::from_static(b"p")),
        fragment(b"{\"type\":", OpCode::Data(Data::Text), false),
        Message::Pong(Bytes::new()),
        fragment(b"\"ping\"", OpCode::Data(Data::Continue), false),
        fragment(b"}", OpCode::Data(Data::Continue), true),
        Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })),
    ]);
    assert_eq!(
        read_all(&bytes).unwrap(),
        vec![
            Incoming::Text(r#"{"type":"ping","t":1}"#.into()),
            Incoming::Ping(b"p".to_vec()),
            // A control frame may come between a message's fragments.
            Incoming::Pong,
            Incoming::Text(r#"{"type":"ping"}"#.into()),
            Incoming::Close(Some(1000)),
        ]
    );
}

#[test]
fn a_frame_read_a_byte_at_a_time_comes_out_once_whole() {
    let bytes = client_bytes(vec![Message::text("x".repeat(300))]);
    let mut reader = Reader::default();
    for (i, byte) in bytes.iter().enumerate() {
        assert_eq!(reader.message(), Ok(None), "nothing before byte {i}");
        reader.push(&[*byte]);
    }
    assert_eq!(reader.message(), Ok(Some(Incoming::Text("x".repeat(300)))));
    assert_eq!(reader.message(), Ok(None));
    assert_eq!(reader.unread.capacity(), 0, "nothing held once read");
}

#[test]
fn what_the_protocol_refuses_is_named_with_its_close_code() {
    let big = client_bytes(vec![Message::text("x".repeat(MAX_CLIENT_MESSAGE + 1))]);
    // The refusal comes from the header alone, before the payload is read.
    assert_eq!(read_all(&big[..8]), Err(Refusal::TooBig));
    let fragments_too_big = client_bytes(vec![
        fragment(&[b'x'; 3000], OpCode::Data(Data::Text), false),
        fragment(&[b'x'; 3000], OpCode::Data(Data::Continue), true),
    ]);
    assert_eq!(read_all(&fragments_too_big), Err(Refusal::TooBig));
    let binary = client_bytes(vec![Message::binary(vec![1, 2, 3])]);
    assert_eq!(read_all(&binary), Err(Refusal::Binary));
    let not_utf8 = client_bytes(vec![fragment(
        &[0xff, 0xfe],
        OpCode::Data(Data::Text),
        true,
    )]);
    assert_eq!(read_all(&not_utf8), Err(Refusal::NotUtf8));
    let orphan = client_bytes(vec![fragment(b"x", OpCode::Data(Data::Continue), true)]);
    assert!(matches!(read_all(&orphan), Err(Refusal::Protocol(_))));
    // A server's own (unmasked) frame is not a client frame.
    assert!(matches!(
        read_all(Frame::text("hi").bytes()),
        Err(Refusal::Protocol("client frames must be masked"))
    ));
    let mut reserved = client_bytes(vec![Message::text("hi")]);
    reserved[0] |= 0x40;
    assert!(matches!(
        read_all(&reserved),
        Err(Refusal::Protocol("reserved bits set"))
    ));
    for refusal in [
        Refusal::TooBig,
        Refusal::Binary,
        Refusal::NotUtf8,
        Refusal::Protocol("x"),
    ] {
        assert!(matches!(refusal.code(), 1002 | 1003 | 1007 | 1009));
    }
}
