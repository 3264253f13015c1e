//! The WebSocket gateway through its public protocol, on the real stack: resume after a
//! reconnect, slow consumers, credentials and bad frames, clock pings, several gateway
//! nodes serving one room, viewer counts across nodes, and shutdown.

use linkdrop_testkit as support;

use futures::SinkExt;
use linkdrop_domain::events::{DropCard, RoomEvent};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::Fairness;
use linkdrop_infra::room_bus::RoomBus;
use serde_json::{Value, json};
use support::{TestApp, Viewer, spawn_app};
use tokio_tungstenite::tungstenite::Message;

/// Publishes `count` small room events (as the orders API does for stock figures).
async fn publish_stock_events(app: &TestApp, room_id: &str, count: i64) -> Vec<u64> {
    let bus = RoomBus::new(app.redis(), Keys::new(&app.namespace));
    let mut seqs = Vec::new();
    for stock_left in (0..count).rev() {
        let event = RoomEvent::Stock {
            drop_id: "drp_test".into(),
            stock_left,
            stock: count,
        };
        seqs.push(bus.publish(room_id, &event).await.unwrap().seq);
    }
    seqs
}

/// The `seq`s of the next `n` numbered events a viewer receives.
async fn next_seqs(viewer: &mut Viewer, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let frame = viewer.next_json().await;
        if let Some(seq) = frame["seq"].as_u64().filter(|_| frame["type"] != "hello") {
            seqs.push(seq);
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_viewer_misses_nothing_and_sees_nothing_twice() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_resume").await;
    let token = app.token("returning");
    let mut viewer = app.viewer(&room_id, &token).await;
    let hello = viewer.next_of_type("hello").await;
    let first = publish_stock_events(&app, &room_id, 5).await;
    assert_eq!(next_seqs(&mut viewer, 5).await, first);
    let last_seen = *first.last().unwrap();
    drop(viewer);

    // Away while events happen; back with since = the last seq seen.
    let missed = publish_stock_events(&app, &room_id, 7).await;
    let mut back = app.viewer_since(&room_id, &token, last_seen).await;
    let hello_again = back.next_of_type("hello").await;
    // The latest the gateway has heard of: pub/sub reaches it a moment after PUBLISH
    // returns, so it may not have heard the very last event yet (that one follows).
    let latest_heard = hello_again["seq"].as_u64().unwrap();
    assert!(
        (last_seen..=*missed.last().unwrap()).contains(&latest_heard),
        "hello names a seq between the last seen and the last published: {hello_again}"
    );
    let later = publish_stock_events(&app, &room_id, 3).await;
    let received = next_seqs(&mut back, 10).await;
    let expected: Vec<u64> = missed.iter().chain(&later).copied().collect();
    assert_eq!(
        received, expected,
        "every missed event once, in order, then the new ones"
    );
    assert_eq!(hello["seq"].as_u64().unwrap() + 1, first[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_away_longer_than_the_history_gets_a_resync_with_the_open_drops() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_resync").await;
    let drop_id = app.create_drop(&room_id, 10, 1).await;
    let opens_at_ms = app.launch(&drop_id, 60_000).await;
    // A late viewer gets the running countdown at once.
    let mut late = app.viewer(&room_id, &app.token("late")).await;
    late.next_of_type("hello").await;
    let resync = late.next_of_type("resync").await;
    assert_eq!(resync["drops"][0]["drop"]["id"], drop_id.as_str());
    assert_eq!(resync["drops"][0]["opens_at_ms"], opens_at_ms);
    assert_eq!(resync["drops"][0]["state"], "countdown");
    // A viewer whose `since` is older than the history kept (seq 0 is before any event,
    // and the events since were trimmed away: here all of them) gets the same snapshot.
    let keys = Keys::new(&app.namespace);
    let mut redis = app.redis();
    let _: () = redis::cmd("DEL")
        .arg(keys.room_history(&room_id))
        .query_async(&mut redis)
        .await
        .unwrap();
    let fresh_node = app.another_gateway().await;
    let mut old = fresh_node
        .viewer_since(&room_id, &app.token("old"), 0)
        .await;
    old.next_of_type("hello").await;
    let resync = old.next_of_type("resync").await;
    assert_eq!(resync["drops"][0]["drop_id"], drop_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_while_its_neighbours_get_everything() {
    const EVENTS: usize = 3000;
    let app = spawn_app().await;
    let room_id = app.create_room("m_slow").await;
    let stuck = app.stuck_viewer(&room_id, &app.token("slow")).await;
    let mut fast = app.viewer(&room_id, &app.token("fast")).await;
    fast.next_of_type("hello").await;
    // Frames of about 2.3 kB (a countdown with a long image URL): some 7 MB in all, more
    // than the kernel buffers between the server and a viewer that reads nothing hold.
    let bus = RoomBus::new(app.redis(), Keys::new(&app.namespace));
    let card = DropCard {
        id: "drp_big".into(),
        sku: "SKU".into(),
        title: "t".repeat(200),
        image_url: format!("https://img.example/{}", "i".repeat(2000)),
        price_cents: 1,
        currency: "CNY".into(),
        max_per_user: 1,
        fairness: Fairness::Fcfs,
    };
    let publisher = tokio::spawn(async move {
        let mut seqs = Vec::new();
        for i in 0..EVENTS {
            let event = RoomEvent::Countdown {
                drop: card.clone(),
                opens_at_ms: i as i64,
                order_url: "https://live.example/order".into(),
                seed_hash: None,
            };
            seqs.push(bus.publish(&room_id, &event).await.unwrap().seq);
        }
        seqs
    });
    let received = next_seqs(&mut fast, EVENTS).await;
    let published = publisher.await.unwrap();
    assert_eq!(received, published, "the fast neighbour got every event");
    // Reading at last, the stuck viewer finds what the kernel held for it, then the close.
    let mut slow = Viewer::from_raw(stuck).await;
    let (code, reason) = slow.next_close().await;
    assert_eq!((code, reason.as_str()), (4008, "slow consumer"));
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    let closed: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("linkdrop_gateway_slow_consumers_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(closed >= 1.0, "the slow consumer is counted:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_auth").await;
    for token in ["", "not-a-jwt", &format!("{}x", app.token("forger"))] {
        let url = format!("ws://{}/v1/rooms/{room_id}/ws?token={token}", app.addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{token:?}");
            }
            other => panic!("expected 401 before the upgrade, got {other:?}"),
        }
    }
    let url = format!(
        "ws://{}/v1/rooms/room_unknown/ws?token={}",
        app.addr,
        app.token("lost")
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected 404 for an unknown room, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_binary_and_unknown_frames_close_with_their_codes() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_frames").await;
    let cases: Vec<(Message, u16)> = vec![
        (Message::text("x".repeat(5000)), 1009),
        (Message::binary(vec![1, 2, 3]), 1003),
        (Message::text(r#"{"type":"buy"}"#), 1003),
    ];
    for (message, code) in cases {
        let mut viewer = app.viewer(&room_id, &app.token("noisy")).await;
        viewer.next_of_type("hello").await;
        viewer.socket.send(message).await.unwrap();
        let (got, reason) = viewer.next_close().await;
        assert_eq!(got, code, "reason: {reason}");
        assert!(!reason.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_ping_gets_a_pong_with_server_time() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_clock").await;
    let mut viewer = app.viewer(&room_id, &app.token("clock")).await;
    viewer.next_of_type("hello").await;
    let before = linkdrop_domain::clock::now_ms();
    viewer
        .send_text(&json!({"type": "ping", "t": 12345}).to_string())
        .await;
    let pong = viewer.next_of_type("pong").await;
    assert_eq!(pong["t"], 12345);
    let server_time = pong["server_time_ms"].as_i64().unwrap();
    assert!(server_time >= before && server_time <= linkdrop_domain::clock::now_ms());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_nodes_deliver_one_rooms_event_and_count_its_viewers_together() {
    let app = spawn_app().await;
    let other_node = app.another_gateway().await;
    let room_id = app.create_room("m_nodes").await;
    let drop_id = app.create_drop(&room_id, 10, 1).await;
    let mut here = Vec::new();
    for name in ["a1", "a2"] {
        let mut viewer = app.viewer(&room_id, &app.token(name)).await;
        viewer.next_of_type("hello").await;
        here.push(viewer);
    }
    let mut there = other_node.viewer(&room_id, &app.token("b1")).await;
    there.next_of_type("hello").await;

    let opens_at_ms = app.launch(&drop_id, 5_000).await;
    for viewer in here.iter_mut().chain(std::iter::once(&mut there)) {
        let countdown = viewer.next_of_type("drop.countdown").await;
        assert_eq!(countdown["opens_at_ms"], opens_at_ms);
    }
    // Both nodes report their viewers; each viewer learns the room's total.
    loop {
        let count = there.next_of_type("room.viewers").await;
        if count["viewers"] == 3 {
            break;
        }
    }
    let room = app.admin_get(&format!("/v1/rooms/{room_id}")).await;
    assert_eq!(room.body["viewers"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_shutting_down_asks_its_viewers_to_reconnect() {
    let app = spawn_app().await;
    let node = app.another_gateway().await;
    let room_id = app.create_room("m_shutdown").await;
    let mut viewer = node.viewer(&room_id, &app.token("moving")).await;
    let hello: Value = viewer.next_of_type("hello").await;
    assert!(hello["seq"].is_u64());
    node.shut_down();
    let (code, reason) = viewer.next_close().await;
    assert_eq!(code, 1012, "{reason}");
}
