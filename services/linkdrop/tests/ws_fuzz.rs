//! Hostile WebSocket input never takes a gateway down nor holds up its room: seeded random
//! attacks — random bytes as text and binary messages, messages over the limit, messages
//! in fragments (some never finished), floods of pings and of clock pings, raw bytes that
//! are not WebSocket frames at all — from several connections at once, while a viewer of
//! the room waits for a launch. Every case: the viewer gets its `drop.countdown`, a new
//! viewer still joins, and each attacker was either closed or kept being served. A failure
//! names its seed; `LINKDROP_WS_FUZZ_SEED=<seed>` replays one case.

use linkdrop_testkit as support;

use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use support::{PATIENCE, TestApp, spawn_app};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Cases per run, and attackers per case.
const CASES: u64 = 6;
const ATTACKERS: usize = 6;

/// One attacker's behaviour.
#[derive(Debug, Clone, Copy)]
enum Attack {
    RandomText,
    RandomBinary,
    Oversized,
    Fragments,
    UnfinishedFragment,
    PingFlood,
    ClockPingFlood,
    RawGarbage,
}

const ATTACKS: [Attack; 8] = [
    Attack::RandomText,
    Attack::RandomBinary,
    Attack::Oversized,
    Attack::Fragments,
    Attack::UnfinishedFragment,
    Attack::PingFlood,
    Attack::ClockPingFlood,
    Attack::RawGarbage,
];

fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let mut data = vec![0u8; rng.random_range(1..=max)];
    rng.fill_bytes(&mut data);
    data
}

/// Runs `attack` on a connection of its own; `Ok` when the gateway answered it in a way
/// the protocol allows (served, or closed), `Err` with what went wrong otherwise.
async fn attack(app: &TestApp, room_id: &str, attack: Attack, seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let token = app.token(&format!("attacker-{seed}"));
    if let Attack::RawGarbage = attack {
        let mut stream = app.stuck_viewer(room_id, &token).await;
        // Whatever the gateway makes of it, it must not stop serving others.
        let _ = stream.write_all(&bytes(&mut rng, 16 * 1024)).await;
        return Ok(());
    }
    let mut viewer = app.viewer(room_id, &token).await;
    let socket = &mut viewer.socket;
    let sent = match attack {
        Attack::RandomText => {
            let text = String::from_utf8_lossy(&bytes(&mut rng, 2048)).into_owned();
            socket.send(Message::text(text)).await
        }
        Attack::RandomBinary => socket.send(Message::binary(bytes(&mut rng, 2048))).await,
        Attack::Oversized => {
            let text = "x".repeat(rng.random_range(4097..=64 * 1024));
            socket.send(Message::text(text)).await
        }
        Attack::Fragments | Attack::UnfinishedFragment => {
            let first = Frame::message(b"{\"type\":".to_vec(), OpCode::Data(Data::Text), false);
            let mut result = socket.send(Message::Frame(first)).await;
            for _ in 0..rng.random_range(1..50) {
                let part =
                    Frame::message(bytes(&mut rng, 200), OpCode::Data(Data::Continue), false);
                result = result.and(socket.send(Message::Frame(part)).await);
            }
            if let Attack::Fragments = attack {
                let last = Frame::message(b"}".to_vec(), OpCode::Data(Data::Continue), true);
                result = result.and(socket.send(Message::Frame(last)).await);
            }
            result
        }
        Attack::PingFlood => {
            let mut result = Ok(());
            for _ in 0..500 {
                result = result.and(
                    socket
                        .send(Message::Ping(bytes(&mut rng, 100).into()))
                        .await,
                );
            }
            result
        }
        Attack::ClockPingFlood => {
            let mut result = Ok(());
            for t in 0..500 {
                let ping = format!("{{\"type\":\"ping\",\"t\":{t}}}");
                result = result.and(socket.send(Message::text(ping)).await);
            }
            result
        }
        Attack::RawGarbage => unreachable!(),
    };
    // Sending may fail once the gateway closed the connection: that is an answer too.
    if sent.is_err() {
        return Ok(());
    }
    // The gateway either closes (with a code for input it refuses) or keeps serving.
    match tokio::time::timeout(std::time::Duration::from_millis(200), socket.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            let code: u16 = frame.code.into();
            matches!(code, 1002 | 1003 | 1007 | 1008 | 1009)
                .then_some(())
                .ok_or_else(|| format!("{attack:?} closed with {code} {}", frame.reason))
        }
        _ => Ok(()),
    }
}

async fn one_case(app: &TestApp, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let room_id = app.create_room("m_fuzz").await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    let mut watcher = app
        .viewer(&room_id, &app.token(&format!("watcher-{seed}")))
        .await;
    assert_eq!(watcher.next_json().await["type"], "hello");
    let attacks: Vec<(Attack, u64)> = (0..ATTACKERS)
        .map(|_| (ATTACKS[rng.random_range(0..ATTACKS.len())], rng.next_u64()))
        .collect();
    let outcomes = futures::future::join_all(
        attacks
            .iter()
            .map(|(kind, seed)| attack(app, &room_id, *kind, *seed)),
    )
    .await;
    for ((kind, _), outcome) in attacks.iter().zip(outcomes) {
        assert!(outcome.is_ok(), "seed {seed}: {kind:?}: {outcome:?}");
    }
    let opens_at_ms = app.launch(&drop_id, 1000).await;
    let countdown = tokio::time::timeout(PATIENCE, watcher.next_of_type("drop.countdown"))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: the room was held up by {attacks:?}"));
    assert_eq!(countdown["opens_at_ms"], opens_at_ms, "seed {seed}");
    let mut newcomer = app
        .viewer(&room_id, &app.token(&format!("new-{seed}")))
        .await;
    assert_eq!(newcomer.next_json().await["type"], "hello", "seed {seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_websocket_input_never_takes_the_gateway_down_nor_holds_up_the_room() {
    let app = spawn_app().await;
    let seeds: Vec<u64> = match std::env::var("LINKDROP_WS_FUZZ_SEED") {
        Ok(seed) => vec![seed.parse().expect("a seed is a number")],
        Err(_) => (0..CASES).map(|n| 0x5eed_0000 + n).collect(),
    };
    for seed in seeds {
        one_case(&app, seed).await;
    }
}
