//! The lottery drop: two entries (one sent again) for one unit, the draw announced to every
//! viewer and verifiable, the winner's and the loser's orders, and entries after the draw.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use linkdrop_testkit::Answer;

use crate::drops::Drops;
use crate::kit::{Contract, Keys, Watcher, expect};

/// What the draw came to.
pub struct Lottery {
    /// The viewers who entered.
    pub fans: Vec<Watcher>,
    pub draw: Answer,
    pub winner: String,
    /// The winner's `order.result` frame.
    pub won: Value,
    pub loser: String,
    /// The loser's `order.result` frame.
    pub lost: Value,
    pub winning_order: String,
    /// The winner's order as the winner read it.
    pub winners_order: Answer,
}

/// Launches the lottery with two fans in the room, and follows its draw.
pub async fn draw(
    t: &mut Contract,
    keys: &Keys,
    room_id: &str,
    drops: &Drops,
    watcher: &mut Watcher,
) -> Lottery {
    let (app, samples) = (&t.app, &mut t.samples);
    let host = keys.host.as_str();
    let lottery_id = &drops.lottery;
    let mut fans = Vec::new();
    for fan in ["fan-1", "fan-2"] {
        fans.push(Watcher::join(app, room_id, fan).await);
    }
    let launched = app
        .request(
            Method::POST,
            &format!("/v1/drops/{lottery_id}/launch"),
            host,
            Some(json!({"countdown_ms": 0})),
            &[],
        )
        .await;
    let launched = samples.http("launchDrop", launched);
    expect(&launched, 202, None);
    let seed_hash = launched.body["seed_hash"].as_str().unwrap().to_string();
    let countdown = watcher.next_of_type("drop.countdown").await;
    assert_eq!(countdown["seed_hash"], seed_hash.as_str());
    let mut entries = BTreeMap::new();
    for (fan, idempotency_keys) in [("fan-1", &["e1", "e1", "e2"][..]), ("fan-2", &["e1"][..])] {
        for key in idempotency_keys {
            let entry = app.order(lottery_id, &app.token(fan), key, 1).await;
            let entry = samples.http("placeOrder", entry);
            expect(&entry, 202, None);
            assert_eq!(entry.body["status"], "entered");
            let order_id = entry.body["order_id"].as_str().unwrap().to_string();
            assert_eq!(entries.entry(fan).or_insert(order_id.clone()), &order_id);
        }
    }
    let pending = app.admin_get(&format!("/v1/drops/{lottery_id}/draw")).await;
    expect(&samples.http("getDraw", pending), 200, None);
    let drawn = watcher.next_of_type("drop.draw").await;
    assert_eq!(drawn["winners"], 1);
    let mut results = BTreeMap::new();
    for fan in &mut fans {
        fan.next_of_type("drop.countdown").await;
        let result = fan.next_of_type("order.result").await;
        assert_eq!(result["order_id"], entries[fan.label.as_str()].as_str());
        results.insert(fan.label.clone(), result);
    }
    // The draw's announcement ends with the lottery's stock figures.
    watcher
        .until(|f| f["type"] == "drop.sold_out" && f["drop_id"] == lottery_id.as_str())
        .await;
    let draw = app.admin_get(&format!("/v1/drops/{lottery_id}/draw")).await;
    let draw = samples.http("getDraw", draw);
    expect(&draw, 200, None);
    assert_eq!(draw.body["seed"], drawn["seed"]);
    let (winner, won) = results
        .iter()
        .find(|(_, r)| r["status"] == "reserved")
        .expect("one entry wins");
    let (loser, lost) = results
        .iter()
        .find(|(_, r)| r["status"] == "lost")
        .expect("one entry loses");
    let winning_order = won["order_id"].as_str().unwrap().to_string();
    t.until_announced(&[winning_order.as_str()]).await;
    let (app, samples) = (&t.app, &mut t.samples);
    let winners_order = app
        .request(
            Method::GET,
            &format!("/v1/orders/{winning_order}"),
            &app.token(winner),
            None,
            &[],
        )
        .await;
    let winners_order = samples.http("getOrder", winners_order);
    expect(&winners_order, 200, None);
    assert_eq!(winners_order.body["status"], "reserved");
    assert_eq!(winners_order.body["pay_by_ms"], won["pay_by_ms"]);
    // Settled before the winner's outcome, which came later on the same partition.
    let losers_order = app
        .request(
            Method::GET,
            &format!("/v1/orders/{}", lost["order_id"].as_str().unwrap()),
            &app.token(loser),
            None,
            &[],
        )
        .await;
    let losers_order = samples.http("getOrder", losers_order);
    expect(&losers_order, 200, None);
    let after_draw = app.order(lottery_id, &app.token("fan-3"), "k", 1).await;
    expect(
        &samples.http("placeOrder", after_draw),
        409,
        Some("sold_out"),
    );
    let lottery_drop = app.admin_get(&format!("/v1/drops/{lottery_id}")).await;
    let lottery_drop = samples.http("getDrop", lottery_drop);
    assert_eq!(lottery_drop.body["seed_hash"], seed_hash.as_str());

    Lottery {
        winner: winner.clone(),
        won: won.clone(),
        loser: loser.clone(),
        lost: lost.clone(),
        fans,
        draw,
        winning_order,
        winners_order,
    }
}
