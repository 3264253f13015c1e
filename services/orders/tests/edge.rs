//! Edge answers and batched admission on the embedded engine, where every command the live
//! state runs can be counted: what the edge refuses costs no command at all, two orders
//! processes (two edges listening to one engine) learn each other's changes from drop
//! news, and a batch decides each of its requests as if it came alone.

use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::ids::{new_id, prefix};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::{IdempotencyKey, Quantity};
use linkdrop_engine::Engine;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::bus_listener::BusSource;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_orders::admission::{Admission, Answer, Decision, OrderRequest, Rejection};
use linkdrop_orders::admission_queue::AdmissionQueue;
use linkdrop_orders::edge::{Edge, EdgeSettings, Refusal};
use linkdrop_orders::lifecycle::Lifecycle;
use linkdrop_orders::news::Listeners;
use linkdrop_orders::stock::{STOCK_EVENT_INTERVAL, StockTicker};
use tokio_util::sync::CancellationToken;

const SETTINGS: EdgeSettings = EdgeSettings {
    margin_ms: 250,
    max_age: Duration::from_secs(60),
};

/// An orders process on `engine`: its edge (listening to drop news until `stop`) and its
/// admission queue.
fn process(engine: &Engine, keys: &Keys, stop: &CancellationToken) -> (Edge, AdmissionQueue) {
    let redis = RedisConn::Embedded(engine.clone());
    let edge = Edge::new(redis.clone(), keys.clone(), SETTINGS);
    let listeners = Listeners {
        edge: Some(edge.clone()),
        drawer: None,
    };
    tokio::spawn(listeners.listen(
        BusSource::Embedded(engine.clone()),
        keys.clone(),
        stop.clone(),
    ));
    let queue = AdmissionQueue::new(Admission::new(redis, keys.clone()), Some(edge.clone()), 64);
    (edge, queue)
}

/// A launched first-come-first-served drop of `stock` units, one per shopper, open since a
/// second, paid within `pay_within_ms`.
async fn open_drop(engine: &Engine, keys: &Keys, stock: u32, pay_within_ms: i64) -> String {
    let drop_id = new_id(prefix::DROP);
    let opened = (now_ms() - 1000).to_string();
    redis::cmd("HSET")
        .arg(keys.drop_meta(&drop_id))
        .arg(&[
            ("phase", "launched".to_string()),
            ("opens_at_ms", opened),
            ("stock", stock.to_string()),
            ("stock_left", stock.to_string()),
            ("max_per_user", "1".to_string()),
            ("policy", "fcfs".to_string()),
            ("window_ms", "0".to_string()),
            ("pay_within_ms", pay_within_ms.to_string()),
            ("room_id", "room_edge".to_string()),
        ])
        .query_async::<()>(&mut RedisConn::Embedded(engine.clone()))
        .await
        .unwrap();
    drop_id
}

fn request(user: &str, key: &str) -> OrderRequest {
    OrderRequest {
        user_id: user.to_string(),
        key: IdempotencyKey::parse(Some(key)).unwrap(),
        qty: Quantity::parse(1).unwrap(),
        trace: None,
    }
}

fn reserved(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::Fresh {
            answer: Answer::Reserved { order_id, .. },
            ..
        }
        | Decision::Replay(Answer::Reserved { order_id, .. }) => Some(order_id),
        _ => None,
    }
}

#[tokio::test]
async fn sold_out_is_answered_at_the_edge_without_a_single_command() {
    let (engine, keys, stop) = (
        Engine::in_memory(),
        Keys::new("edge1"),
        CancellationToken::new(),
    );
    let (edge, queue) = process(&engine, &keys, &stop);
    let drop_id = open_drop(&engine, &keys, 2, 600_000).await;
    for user in ["a", "b"] {
        let decision = queue.admit(&drop_id, request(user, "k")).await.unwrap();
        assert!(reserved(&decision).is_some(), "{decision:?}");
    }
    // The batch that took the last unit told this process the drop is sold out.
    let before = engine.commands_run();
    for n in 0..1000 {
        let refusal = edge.check(&drop_id, &format!("late-{n}"), 1).await.unwrap();
        assert_eq!(refusal, Some(Refusal::SoldOut));
    }
    assert_eq!(
        engine.commands_run(),
        before,
        "no command for an edge answer"
    );
    // A buyer asking again with their key is not refused: the script replays the order.
    assert_eq!(edge.check(&drop_id, "a", 1).await.unwrap(), None);
    let replay = queue.admit(&drop_id, request("a", "k")).await.unwrap();
    assert!(
        matches!(replay, Decision::Replay(Answer::Reserved { .. })),
        "{replay:?}"
    );
    stop.cancel();
}

#[tokio::test]
async fn a_unit_returned_through_one_process_is_offered_again_by_another() {
    let (engine, keys, stop) = (
        Engine::in_memory(),
        Keys::new("edge2"),
        CancellationToken::new(),
    );
    let (_, first) = process(&engine, &keys, &stop);
    let (other_edge, other) = process(&engine, &keys, &stop);
    let drop_id = open_drop(&engine, &keys, 1, -1000).await;
    let order = first.admit(&drop_id, request("a", "k")).await.unwrap();
    let order_id = reserved(&order).expect("the unit").to_string();
    // The other process heard the sale on the channel.
    let refused = other.admit(&drop_id, request("b", "k")).await.unwrap();
    assert_eq!(refused, Decision::Reject(Rejection::SoldOut));
    assert_eq!(
        other_edge.check_known(&drop_id, "b", 1),
        Some(Refusal::SoldOut)
    );
    // The reservation (its deadline already past) expires through the first process's
    // lifecycle.
    let redis = RedisConn::Embedded(engine.clone());
    let stock = StockTicker::new(
        RoomBus::new(redis.clone(), keys.clone()),
        redis.clone(),
        keys.clone(),
        STOCK_EVENT_INTERVAL,
    );
    let lifecycle = Lifecycle::new(redis, keys.clone(), stock);
    lifecycle.expire(&drop_id, &order_id).await.unwrap();
    // The other process takes the news in (its listener runs when this test yields).
    tokio::time::timeout(Duration::from_secs(10), async {
        while other_edge.check_known(&drop_id, "b", 1).is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the other process hears that the unit came back");
    let bought = other.admit(&drop_id, request("b", "k")).await.unwrap();
    assert!(reserved(&bought).is_some(), "{bought:?}");
    stop.cancel();
}

#[tokio::test]
async fn one_batch_decides_each_request_as_if_it_came_alone() {
    let (engine, keys) = (Engine::in_memory(), Keys::new("edge3"));
    let admission = Admission::new(RedisConn::Embedded(engine.clone()), keys.clone());
    let drop_id = open_drop(&engine, &keys, 2, 600_000).await;
    let requests = [
        request("a", "k1"),
        request("a", "k1"),
        request("a", "k2"),
        request("b", "k1"),
        request("c", "k1"),
    ];
    let decided = admission.admit_batch(&drop_id, &requests).await.unwrap();
    let first = reserved(&decided.decisions[0]).expect("a reserves");
    // The same user and key in one batch: one order, replayed.
    assert_eq!(
        decided.decisions[1],
        Decision::Replay(Answer::Reserved {
            order_id: first.to_string(),
            qty: 1,
            pay_by_ms: match &decided.decisions[0] {
                Decision::Fresh {
                    answer: Answer::Reserved { pay_by_ms, .. },
                    ..
                } => *pay_by_ms,
                other => panic!("{other:?}"),
            },
        })
    );
    assert!(matches!(
        decided.decisions[2],
        Decision::Fresh {
            answer: Answer::LimitReached { max_per_user: 1 },
            ..
        }
    ));
    assert!(matches!(
        decided.decisions[3],
        Decision::Fresh {
            sold_out_at_ms: Some(_),
            ..
        }
    ));
    assert_eq!(decided.decisions[4], Decision::Reject(Rejection::SoldOut));
    // The news of the batch names the shoppers it recorded, once each.
    let news = decided.news.expect("the batch changed the drop");
    assert_eq!(news.facts.stock_left, 0);
    assert_eq!(news.users, ["a", "b"]);
}
