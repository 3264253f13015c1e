//! Shopping on the first-come-first-served drop: launch and countdown, orders and every
//! refusal of API.md (too early, limit, idempotency conflict, invalid, unauthorized, unknown
//! drop, too large, sold out, rate limited); then the settled orders as shoppers and the
//! merchant read and list them.

use reqwest::Method;
use serde_json::Value;
use serde_json::json;

use linkdrop_testkit::{Answer, wait_until_ms};

use crate::drops::Drops;
use crate::kit::{Contract, Keys, Watcher, expect, raw};

/// The orders taken, and the shoppers who took them or came too late.
pub struct Sale {
    pub order_a: String,
    pub order_b: String,
    pub buyer_a: String,
    pub buyer_c: String,
}

/// The sale of the first-come-first-served drop's two units.
pub async fn first_come_first_served(
    t: &mut Contract,
    keys: &Keys,
    drops: &Drops,
    watcher: &mut Watcher,
) -> Sale {
    let (app, samples) = (&t.app, &mut t.samples);
    let host = keys.host.as_str();
    let fcfs_id = &drops.fcfs;
    let before_launch = app.order(fcfs_id, &app.token("too-early"), "k", 1).await;
    let before_launch = samples.http("placeOrder", before_launch);
    expect(&before_launch, 425, Some("not_open"));
    assert_eq!(before_launch.body["opens_at_ms"], Value::Null);
    let launch_path = format!("/v1/drops/{fcfs_id}/launch");
    let launched = app
        .request(
            Method::POST,
            &launch_path,
            host,
            Some(json!({"countdown_ms": 1500})),
            &[],
        )
        .await;
    let launched = samples.http("launchDrop", launched);
    expect(&launched, 202, None);
    assert!(launched.body.get("seed_hash").is_none(), "{launched:?}");
    let opens_at_ms = launched.body["opens_at_ms"].as_i64().unwrap();
    let twice = app
        .request(Method::POST, &launch_path, host, Some(json!({})), &[])
        .await;
    expect(
        &samples.http("launchDrop", twice),
        409,
        Some("already_launched"),
    );
    let countdown = watcher.next_of_type("drop.countdown").await;
    assert_eq!(countdown["drop"]["id"], fcfs_id.as_str());
    let early = app.order(fcfs_id, &app.token("early"), "k", 1).await;
    let early = samples.http("placeOrder", early);
    expect(&early, 425, Some("not_open"));
    assert_eq!(early.body["opens_at_ms"], opens_at_ms);
    let counting_down = app.admin_get(&format!("/v1/drops/{fcfs_id}")).await;
    samples.http("getDrop", counting_down);
    wait_until_ms(opens_at_ms).await;

    let buyer_a = app.token("buyer-a");
    let first = samples.http("placeOrder", app.order(fcfs_id, &buyer_a, "a1", 1).await);
    expect(&first, 201, None);
    let order_a = first.body["order_id"].as_str().unwrap().to_string();
    let replay = samples.http("placeOrder", app.order(fcfs_id, &buyer_a, "a1", 1).await);
    expect(&replay, 201, None);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, first.body);
    let limit = samples.http("placeOrder", app.order(fcfs_id, &buyer_a, "a2", 1).await);
    expect(&limit, 409, Some("limit_reached"));
    let conflict = samples.http("placeOrder", app.order(fcfs_id, &buyer_a, "a1", 2).await);
    expect(&conflict, 409, Some("idempotency_conflict"));

    let careless = app.token("careless");
    let zero = samples.http("placeOrder", app.order(fcfs_id, &careless, "z", 0).await);
    expect(&zero, 422, Some("invalid"));
    let over_max = samples.http("placeOrder", app.order(fcfs_id, &careless, "z", 2).await);
    expect(&over_max, 422, Some("invalid"));
    let orders_path = format!("/v1/drops/{fcfs_id}/orders");
    let sloppy = app.token("sloppy");
    let no_key = raw(
        app,
        Method::POST,
        &orders_path,
        Some(&sloppy),
        Some("{\"qty\": 1}"),
        &[],
    )
    .await;
    expect(
        &samples.http("placeOrder", no_key),
        400,
        Some("bad_request"),
    );
    let qty_text = raw(
        app,
        Method::POST,
        &orders_path,
        Some(&sloppy),
        Some("{\"qty\": \"one\"}"),
        &[("Idempotency-Key", "s")],
    )
    .await;
    let qty_text = samples.http("placeOrder", qty_text);
    expect(&qty_text, 422, Some("invalid"));
    assert_eq!(qty_text.body["errors"][0]["field"], "qty");
    let anonymous = raw(
        app,
        Method::POST,
        &orders_path,
        None,
        Some("{\"qty\": 1}"),
        &[("Idempotency-Key", "n")],
    )
    .await;
    expect(
        &samples.http("placeOrder", anonymous),
        401,
        Some("unauthorized"),
    );
    let forged = app
        .order(fcfs_id, &format!("{}x", app.token("forger")), "f", 1)
        .await;
    expect(
        &samples.http("placeOrder", forged),
        401,
        Some("unauthorized"),
    );
    let api_key_as_shopper = app.order(fcfs_id, host, "h", 1).await;
    expect(
        &samples.http("placeOrder", api_key_as_shopper),
        401,
        Some("unauthorized"),
    );
    let unknown_drop = app.order("drp_unknown", &app.token("lost"), "u", 1).await;
    expect(
        &samples.http("placeOrder", unknown_drop),
        404,
        Some("not_found"),
    );
    let huge = format!("{{\"qty\": 1, \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let too_large = raw(
        app,
        Method::POST,
        &orders_path,
        Some(&app.token("verbose")),
        Some(&huge),
        &[("Idempotency-Key", "v")],
    )
    .await;
    expect(
        &samples.http("placeOrder", too_large),
        413,
        Some("payload_too_large"),
    );

    let second = app.order(fcfs_id, &app.token("buyer-b"), "b1", 1).await;
    let second = samples.http("placeOrder", second);
    expect(&second, 201, None);
    let order_b = second.body["order_id"].as_str().unwrap().to_string();
    let buyer_c = app.token("buyer-c");
    let sold_out = samples.http("placeOrder", app.order(fcfs_id, &buyer_c, "c1", 1).await);
    expect(&sold_out, 409, Some("sold_out"));
    let sold_out_again = samples.http("placeOrder", app.order(fcfs_id, &buyer_c, "c1", 1).await);
    expect(&sold_out_again, 409, Some("sold_out"));
    // Sold out is not final, so it is not recorded under the key: not a replay.
    assert!(!sold_out_again.headers.contains_key("idempotent-replayed"));
    watcher
        .until(|f| f["type"] == "drop.sold_out" && f["drop_id"] == fcfs_id.as_str())
        .await;
    watcher
        .until(|f| {
            f["type"] == "drop.stock" && f["drop_id"] == fcfs_id.as_str() && f["stock_left"] == 0
        })
        .await;

    // Over the per-user rate: bounded, since the limit allows a handful a second.
    let eager = app.token("eager");
    let mut limited = None;
    for i in 0..50 {
        let answer = app.order(fcfs_id, &eager, &format!("e{i}"), 1).await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        expect(&answer, 409, Some("sold_out"));
    }
    let limited = samples.http("placeOrder", limited.expect("a 429 within 50 requests"));
    expect(&limited, 429, Some("rate_limited"));

    Sale {
        order_a,
        order_b,
        buyer_a,
        buyer_c,
    }
}

/// The sale's orders once settled: read by their shopper and merchant, hidden from others,
/// listed by the merchant only. The first buyer's order as its shopper read it.
pub async fn read_settled(t: &mut Contract, keys: &Keys, drops: &Drops, sale: &Sale) -> Answer {
    let (host, merchant_key) = (keys.host.as_str(), keys.merchant.as_str());
    let fcfs_id = &drops.fcfs;
    let Sale {
        order_a,
        order_b,
        buyer_a,
        buyer_c,
    } = sale;
    t.until_announced(&[order_a.as_str(), order_b.as_str()])
        .await;
    let (app, samples) = (&t.app, &mut t.samples);
    let order_path = format!("/v1/orders/{order_a}");
    let own = samples.http(
        "getOrder",
        app.request(Method::GET, &order_path, buyer_a, None, &[])
            .await,
    );
    expect(&own, 200, None);
    assert_eq!(own.body["status"], "reserved");
    let by_merchant = app
        .request(Method::GET, &order_path, merchant_key, None, &[])
        .await;
    expect(&samples.http("getOrder", by_merchant), 200, None);
    let someone_else = app
        .request(Method::GET, &order_path, buyer_c, None, &[])
        .await;
    expect(
        &samples.http("getOrder", someone_else),
        404,
        Some("not_found"),
    );
    let orders = app
        .request(
            Method::GET,
            &format!("/v1/orders?drop_id={fcfs_id}&limit=1"),
            merchant_key,
            None,
            &[],
        )
        .await;
    let orders = samples.http("listOrders", orders);
    expect(&orders, 200, None);
    assert!(orders.body["next_cursor"].is_string(), "{orders:?}");
    for (credential, query, status, code) in [
        (host, "", 403, "forbidden"),
        (buyer_a.as_str(), "", 403, "forbidden"),
        (merchant_key, "?limit=abc", 400, "bad_request"),
        (merchant_key, "?limit=0", 422, "invalid"),
    ] {
        let answer = app
            .request(
                Method::GET,
                &format!("/v1/orders{query}"),
                credential,
                None,
                &[],
            )
            .await;
        expect(&samples.http("listOrders", answer), status, Some(code));
    }
    own
}
