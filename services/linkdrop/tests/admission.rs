//! Fair admission through the public API on the real stack: no oversell under a rush with
//! retries and duplicates, the per-user limit, idempotent answers, the refusals of API.md,
//! rate limits, and lottery draws that every shopper can verify.

use linkdrop_testkit as support;

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use linkdrop_domain::lottery;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Answer, WebhookReceiver, spawn_app, spawn_app_with};

/// A request of the rush: user, Idempotency-Key, qty.
type RequestOf<'a> = (&'a str, &'a str, i64);

/// One order request of the rush, and what it got.
struct Sent {
    user: String,
    key: String,
    qty: i64,
    answer: Answer,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_oversell_under_concurrent_buyers() {
    const STOCK: u32 = 300;
    const MAX_PER_USER: i64 = 2;
    const BUYERS: usize = 1200;
    let app = spawn_app().await;
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_rush";
    let room_id = app.create_room(merchant).await;
    let endpoint = app
        .admin_post(
            "/v1/webhook-endpoints",
            json!({"url": receiver.url, "events": ["order.created"], "merchant_id": merchant}),
        )
        .await;
    assert_eq!(endpoint.status, 201);
    let drop_id = app.create_drop(&room_id, STOCK, MAX_PER_USER as u32).await;
    app.launch(&drop_id, 0).await;

    // Every buyer asks once; some retry the same request, some ask again for more units
    // with a new key, some reuse their key with another body.
    let mut requests = Vec::new();
    for i in 0..BUYERS {
        let user = format!("buyer-{i}");
        requests.push((user.clone(), "a".to_string(), 1));
        if i % 4 == 0 {
            requests.push((user.clone(), "a".to_string(), 1));
        }
        if i % 3 == 0 {
            requests.push((user.clone(), "b".to_string(), 2));
        }
        if i % 7 == 0 {
            requests.push((user.clone(), "a".to_string(), 2));
        }
    }
    requests.sort_by_key(|(user, key, qty)| {
        // A fixed shuffle, so that retries and first tries interleave.
        let mut h = Sha256::new();
        h.update(format!("{user}{key}{qty}"));
        h.finalize()[0..4].to_vec()
    });
    let tokens: HashMap<String, String> = (0..BUYERS)
        .map(|i| format!("buyer-{i}"))
        .map(|u| (u.clone(), app.token(&u)))
        .collect();
    let sent: Vec<Sent> = futures::stream::iter(requests)
        .map(|(user, key, qty)| {
            let token = tokens[&user].clone();
            let app = &app;
            let drop_id = &drop_id;
            async move {
                let answer = app.order(drop_id, &token, &key, qty).await;
                Sent {
                    user,
                    key,
                    qty,
                    answer,
                }
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;

    let mut units_by_user: HashMap<&str, i64> = HashMap::new();
    let mut orders: BTreeSet<String> = BTreeSet::new();
    let mut answers: HashMap<RequestOf, Vec<(u16, &Value)>> = HashMap::new();
    for s in &sent {
        assert!(
            matches!(s.answer.status, 201 | 409),
            "unexpected answer {:?}",
            s.answer
        );
        if s.answer.status == 201
            && orders.insert(s.answer.body["order_id"].as_str().unwrap().to_string())
        {
            *units_by_user.entry(&s.user).or_default() += s.answer.body["qty"].as_i64().unwrap();
        }
        answers
            .entry((&s.user, &s.key, s.qty))
            .or_default()
            .push((s.answer.status, &s.answer.body));
    }
    let sold: i64 = units_by_user.values().sum();
    assert_eq!(sold, i64::from(STOCK), "exactly the stock is reserved");
    assert!(units_by_user.values().all(|&units| units <= MAX_PER_USER));
    for ((user, key, qty), seen) in &answers {
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{user} {key} qty {qty} got different answers: {seen:?}"
        );
    }
    let codes: BTreeSet<&str> = sent
        .iter()
        .filter(|s| s.answer.status == 409)
        .map(|s| s.answer.body["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains("sold_out"), "{codes:?}");

    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(drop.body["stock_left"], 0);
    assert_eq!(drop.body["reserved"], STOCK);
    assert_eq!(drop.body["state"], "sold_out");

    // Every acknowledged order reaches PostgreSQL and its merchant.
    let mut announced = BTreeSet::new();
    while announced.len() < orders.len() {
        let delivery = receiver.next().await;
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        announced.insert(event["data"]["order_id"].as_str().unwrap().to_string());
    }
    assert_eq!(announced, orders);
    let settled = app
        .count(
            "SELECT coalesce(sum(qty), 0) FROM orders WHERE drop_id = $1",
            &drop_id,
        )
        .await;
    assert_eq!(
        settled,
        i64::from(STOCK),
        "the records hold exactly the stock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_refused_before_opening_after_closing_and_for_unknown_drops() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_refusals").await;
    let drop_id = app.create_drop(&room_id, 10, 1).await;
    let shopper = app.token("early-bird");

    let draft = app.order(&drop_id, &shopper, "k1", 1).await;
    assert_eq!(
        (draft.status, &draft.body["code"]),
        (425, &json!("not_open"))
    );
    assert_eq!(
        draft.body["opens_at_ms"],
        Value::Null,
        "a draft has no opening time yet"
    );

    let opens_at_ms = app.launch(&drop_id, 60_000).await;
    let early = app.order(&drop_id, &shopper, "k1", 1).await;
    assert_eq!(
        (early.status, &early.body["opens_at_ms"]),
        (425, &json!(opens_at_ms))
    );

    let twice = app
        .admin_post(
            &format!("/v1/drops/{drop_id}/launch"),
            json!({"countdown_ms": 0}),
        )
        .await;
    assert_eq!(
        (twice.status, &twice.body["code"]),
        (409, &json!("already_launched"))
    );

    let unknown = app.order("drp_does_not_exist", &shopper, "k2", 1).await;
    assert_eq!(
        (unknown.status, &unknown.body["code"]),
        (404, &json!("not_found"))
    );

    let close = app
        .admin_post(&format!("/v1/drops/{drop_id}/close"), json!({}))
        .await;
    assert_eq!(
        (close.status, &close.body["state"]),
        (200, &json!("closed"))
    );
    let closed = app.order(&drop_id, &shopper, "k3", 1).await;
    assert_eq!(
        (closed.status, &closed.body["code"]),
        (410, &json!("closed"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_order_requests_get_the_documented_errors() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_bad").await;
    let drop_id = app.create_drop(&room_id, 10, 2).await;
    app.launch(&drop_id, 0).await;
    let token = app.token("careless");
    let path = format!("/v1/drops/{drop_id}/orders");
    let post =
        |credential: String, body: Option<Value>, headers: Vec<(&'static str, &'static str)>| {
            let app = &app;
            let path = path.clone();
            async move {
                app.request(reqwest::Method::POST, &path, &credential, body, &headers)
                    .await
            }
        };

    let no_key = post(token.clone(), Some(json!({"qty": 1})), vec![]).await;
    assert_eq!(
        (no_key.status, &no_key.body["code"]),
        (400, &json!("bad_request"))
    );
    let zero = app.order(&drop_id, &token, "z", 0).await;
    assert_eq!((zero.status, &zero.body["code"]), (422, &json!("invalid")));
    let too_many = app.order(&drop_id, &token, "t", 3).await;
    assert_eq!(
        (too_many.status, &too_many.body["errors"][0]["field"]),
        (422, &json!("qty"))
    );
    let wrong_type = post(
        token.clone(),
        Some(json!({"qty": "one"})),
        vec![("Idempotency-Key", "w")],
    )
    .await;
    assert_eq!(
        (wrong_type.status, &wrong_type.body["errors"][0]["field"]),
        (422, &json!("qty"))
    );
    let forged = app.order(&drop_id, &format!("{token}x"), "f", 1).await;
    assert_eq!(
        (forged.status, &forged.body["code"]),
        (401, &json!("unauthorized"))
    );

    let huge = "x".repeat(70 * 1024);
    let too_large = post(
        token.clone(),
        Some(json!({"qty": 1, "pad": huge})),
        vec![("Idempotency-Key", "h")],
    )
    .await;
    assert_eq!(
        (too_large.status, &too_large.body["code"]),
        (413, &json!("payload_too_large"))
    );

    let conflict_first = app.order(&drop_id, &token, "same", 1).await;
    assert_eq!(conflict_first.status, 201);
    let conflict = app.order(&drop_id, &token, "same", 2).await;
    assert_eq!(
        (conflict.status, &conflict.body["code"]),
        (409, &json!("idempotency_conflict"))
    );
    let replay = app.order(&drop_id, &token, "same", 1).await;
    assert_eq!(replay.body, conflict_first.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    let shopper_on_host_route = app
        .request(
            reqwest::Method::POST,
            "/v1/rooms",
            &token,
            Some(json!({"title": "x"})),
            &[],
        )
        .await;
    assert_eq!(shopper_on_host_route.status, 403);
    for answer in [&no_key, &zero, &too_large, &forged, &shopper_on_host_route] {
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_over_the_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(&[("LINKDROP_ORDERS_PER_USER_PER_S", "2")]).await;
    let room_id = app.create_room("m_rate").await;
    let drop_id = app.create_drop(&room_id, 10, 5).await;
    app.launch(&drop_id, 0).await;
    let token = app.token("eager");
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(app.order(&drop_id, &token, &format!("k{i}"), 1).await);
    }
    let limited = statuses.last().unwrap();
    assert_eq!(
        (limited.status, &limited.body["code"]),
        (429, &json!("rate_limited"))
    );
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    // Another shopper is not affected.
    let other = app.order(&drop_id, &app.token("patient"), "k", 1).await;
    assert_eq!(other.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lottery_draw_is_verifiable_by_every_shopper() {
    const STOCK: u32 = 4;
    let app = spawn_app().await;
    let room_id = app.create_room("m_lottery").await;
    let drop_id = app
        .create_drop_with(
            &room_id,
            STOCK,
            1,
            json!({"policy": "lottery", "window_ms": 1500}),
        )
        .await;
    let users: Vec<String> = (0..10).map(|i| format!("fan-{i}")).collect();
    let mut viewers = Vec::new();
    for user in &users {
        let mut viewer = app.viewer(&room_id, &app.token(user)).await;
        viewer.next_of_type("hello").await;
        viewers.push(viewer);
    }
    let launch = app
        .admin_post(
            &format!("/v1/drops/{drop_id}/launch"),
            json!({"countdown_ms": 0}),
        )
        .await;
    assert_eq!(launch.status, 202);
    let seed_hash = launch.body["seed_hash"].as_str().unwrap().to_string();
    let countdown = viewers[0].next_of_type("drop.countdown").await;
    assert_eq!(countdown["seed_hash"], seed_hash.as_str());

    // The first three fans send three times each: they still hold one entry.
    let mut entries = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let sends = if i < 3 { 3 } else { 1 };
        for k in 0..sends {
            let answer = app
                .order(&drop_id, &app.token(user), &format!("try-{k}"), 1)
                .await;
            assert_eq!(
                (answer.status, &answer.body["status"]),
                (202, &json!("entered")),
                "{answer:?}"
            );
            let order_id = answer.body["order_id"].as_str().unwrap().to_string();
            assert_eq!(
                entries.entry(user.clone()).or_insert(order_id.clone()),
                &order_id
            );
        }
    }

    let drawn = viewers[0].next_of_type("drop.draw").await;
    let draw = app.admin_get(&format!("/v1/drops/{drop_id}/draw")).await;
    assert_eq!(draw.body["entries"], 10);
    assert_eq!(draw.body["winners"], STOCK);
    assert_eq!(drawn["seed"], draw.body["seed"]);
    let seed = hex::decode(draw.body["seed"].as_str().unwrap()).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&seed)),
        seed_hash,
        "the seed matches its hash"
    );
    let cutoff = draw.body["cutoff_rank"].as_str().unwrap().to_string();

    for (user, viewer) in users.iter().zip(viewers.iter_mut()) {
        let result = viewer.next_of_type("order.result").await;
        assert_eq!(result["order_id"], entries[user].as_str());
        let won = lottery::rank(&seed, user) <= cutoff;
        let expected = if won { "reserved" } else { "lost" };
        assert_eq!(result["status"], expected, "{user}");
    }
    let late = app
        .order(&drop_id, &app.token("latecomer"), "late", 1)
        .await;
    assert_eq!((late.status, &late.body["code"]), (409, &json!("sold_out")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_left_after_a_draw_is_sold_first_come_first_served() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_leftover").await;
    let drop_id = app
        .create_drop_with(
            &room_id,
            5,
            1,
            json!({"policy": "lottery", "window_ms": 500}),
        )
        .await;
    let mut viewer = app.viewer(&room_id, &app.token("watcher")).await;
    app.launch(&drop_id, 0).await;
    for user in ["one", "two"] {
        let entry = app.order(&drop_id, &app.token(user), "k", 1).await;
        assert_eq!(entry.status, 202);
    }
    let drawn = viewer.next_of_type("drop.draw").await;
    assert_eq!(drawn["winners"], 2);
    let after = app.order(&drop_id, &app.token("three"), "k", 1).await;
    assert_eq!(
        (after.status, &after.body["status"]),
        (201, &json!("reserved"))
    );
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(drop.body["stock_left"], 2);
}
