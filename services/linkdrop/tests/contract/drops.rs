//! Drops: one first come, first served and one lottery created in the room, refusals of
//! invalid ones, listing, reading, the draw before launch; and closing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::kit::{Contract, Keys, Watcher, expect, id_of};

/// The sale's two drops.
pub struct Drops {
    pub fcfs: String,
    pub lottery: String,
}

/// A first-come-first-served drop of two units and a lottery of one, drafts in `room_id`.
pub async fn create_and_read(t: &mut Contract, keys: &Keys, room_id: &str) -> Drops {
    let (app, samples) = (&t.app, &mut t.samples);
    let host = keys.host.as_str();
    let drop_body = |stock: i64, fairness: Value| {
        json!({
            "sku": "SKU-MUG", "title": "Contract mug",
            "image_url": "https://img.example/mug.png",
            "price_cents": 4900, "currency": "CNY",
            "stock": stock, "max_per_user": 1, "fairness": fairness,
        })
    };
    let drops_path = format!("/v1/rooms/{room_id}/drops");
    let fcfs = app
        .request(
            Method::POST,
            &drops_path,
            host,
            Some(drop_body(2, json!({"policy": "fcfs"}))),
            &[],
        )
        .await;
    let fcfs = samples.http("createDrop", fcfs);
    expect(&fcfs, 201, None);
    let fcfs_id = id_of(&fcfs);
    let lottery = app
        .request(
            Method::POST,
            &drops_path,
            host,
            Some(drop_body(
                1,
                json!({"policy": "lottery", "window_ms": 3000}),
            )),
            &[],
        )
        .await;
    let lottery = samples.http("createDrop", lottery);
    expect(&lottery, 201, None);
    let lottery_id = id_of(&lottery);
    let invalid_drop = app
        .request(
            Method::POST,
            &drops_path,
            host,
            Some(json!({
                "sku": "", "title": "x", "image_url": "mug.png", "price_cents": -1,
                "currency": "cny", "stock": 0,
            })),
            &[],
        )
        .await;
    let invalid_drop = samples.http("createDrop", invalid_drop);
    expect(&invalid_drop, 422, Some("invalid"));
    assert!(invalid_drop.body["errors"].as_array().unwrap().len() >= 5);
    let wrong_type = app
        .request(
            Method::POST,
            &drops_path,
            host,
            Some(json!({"sku": 5})),
            &[],
        )
        .await;
    let wrong_type = samples.http("createDrop", wrong_type);
    expect(&wrong_type, 422, Some("invalid"));
    // The field at fault is named.
    assert_eq!(
        wrong_type.body["errors"][0]["field"], "sku",
        "{wrong_type:?}"
    );
    let listed = app.request(Method::GET, &drops_path, host, None, &[]).await;
    expect(&samples.http("listDrops", listed), 200, None);
    let draft = app.admin_get(&format!("/v1/drops/{fcfs_id}")).await;
    let draft = samples.http("getDrop", draft);
    assert_eq!(draft.body["state"], "draft");
    let no_draw = app.admin_get(&format!("/v1/drops/{fcfs_id}/draw")).await;
    expect(&samples.http("getDraw", no_draw), 404, Some("not_found"));
    let draw_before_launch = app.admin_get(&format!("/v1/drops/{lottery_id}/draw")).await;
    expect(&samples.http("getDraw", draw_before_launch), 200, None);

    Drops {
        fcfs: fcfs_id,
        lottery: lottery_id,
    }
}

/// Closes the first-come-first-served drop: announced to viewers, and later orders are
/// refused.
pub async fn close(t: &mut Contract, keys: &Keys, drops: &Drops, watcher: &mut Watcher) {
    let (app, samples) = (&t.app, &mut t.samples);
    let host = keys.host.as_str();
    let fcfs_id = &drops.fcfs;
    let closed = app
        .request(
            Method::POST,
            &format!("/v1/drops/{fcfs_id}/close"),
            host,
            None,
            &[],
        )
        .await;
    let closed = samples.http("closeDrop", closed);
    expect(&closed, 200, None);
    assert_eq!(closed.body["state"], "closed");
    watcher.next_of_type("drop.closed").await;
    let late = app.order(fcfs_id, &app.token("late"), "l", 1).await;
    expect(&samples.http("placeOrder", late), 410, Some("closed"));
}
