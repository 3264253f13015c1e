//! Mailboxes on real loopback sockets, read by a tungstenite client: what is written
//! straight away, what waits, and that frames always arrive whole and in order.

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;

/// A connected pair: the server's end (small send buffer, so that it fills soon) and a
/// WebSocket client on the other end.
async fn pair() -> (TcpStream, WebSocketStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    let server = accepted.unwrap().0;
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .unwrap();
    let client = WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
    (server, client)
}

async fn next_text(client: &mut WebSocketStream<TcpStream>) -> String {
    match client.next().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Frame `i` of a series: big enough that a few fill the socket, each one different.
fn numbered(i: usize) -> String {
    format!("{i:05}{}", "x".repeat(3000))
}

/// Offers numbered frames until the socket stops taking them at once, then `extra`
/// more; returns how many were offered.
fn offer_until_queued(mailbox: &Mailbox, extra: usize) -> usize {
    let mut offered = 0;
    loop {
        let offer = mailbox.offer(&Frame::text(&numbered(offered)));
        offered += 1;
        match offer {
            Offer::Written => assert!(offered < 10_000, "the socket never filled"),
            Offer::Queued => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    for _ in 0..extra {
        assert_eq!(
            mailbox.offer(&Frame::text(&numbered(offered))),
            Offer::Queued
        );
        offered += 1;
    }
    offered
}

#[tokio::test]
async fn an_offer_to_an_idle_socket_is_written_by_the_offerer() {
    let (server, mut client) = pair().await;
    let mailbox = Mailbox::held(8, server);
    mailbox.release();
    assert_eq!(mailbox.offer(&Frame::text("now")), Offer::Written);
    assert_eq!(next_text(&mut client).await, "now");
}

#[tokio::test]
async fn what_the_socket_cannot_take_waits_and_the_writer_sends_it_whole_and_in_order() {
    let (server, mut client) = pair().await;
    let mailbox = Mailbox::held(64, server);
    mailbox.release();
    let offered = offer_until_queued(&mailbox, 20);
    let writer = mailbox.clone();
    let flushing = tokio::spawn(async move { writer.flush().await });
    for i in 0..offered {
        assert_eq!(next_text(&mut client).await, numbered(i), "frame {i}");
    }
    mailbox.fire(CloseReason::SlowConsumer);
    assert_eq!(
        flushing.await.unwrap(),
        Flushed::Close(CloseReason::SlowConsumer)
    );
}

#[tokio::test]
async fn a_held_mailbox_queues_until_its_opening_frames_are_out() {
    let (server, mut client) = pair().await;
    let mailbox = Mailbox::held(8, server);
    assert_eq!(mailbox.offer(&Frame::text("event")), Offer::Queued);
    mailbox.write_held(&Frame::text("hello")).await.unwrap();
    mailbox.release();
    let writer = mailbox.clone();
    tokio::spawn(async move { writer.flush().await });
    assert_eq!(next_text(&mut client).await, "hello");
    assert_eq!(next_text(&mut client).await, "event");
}

#[tokio::test]
async fn a_close_drops_what_waits_but_finishes_a_frame_under_way() {
    let (server, mut client) = pair().await;
    let mailbox = Mailbox::held(64, server);
    mailbox.release();
    let offered = offer_until_queued(&mailbox, 20);
    let closer = mailbox.clone();
    let closing =
        tokio::spawn(async move { closer.close_with(Frame::close(4008, "slow consumer")).await });
    let mut received = 0;
    loop {
        match client.next().await {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(text.as_str(), numbered(received), "frame {received}");
                received += 1;
            }
            Some(Ok(Message::Close(Some(close)))) => {
                assert_eq!(u16::from(close.code), 4008);
                break;
            }
            other => panic!("expected frames then a close, got {other:?}"),
        }
    }
    closing.await.unwrap().unwrap();
    assert!(received < offered, "the queued frames were dropped");
    assert_eq!(mailbox.offer(&Frame::text("late")), Offer::Gone);
}
