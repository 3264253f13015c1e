//! Rooms: created by a host, listed and read; refused without credentials, to a shopper,
//! to a host of another merchant, and for a malformed body.

use reqwest::Method;
use serde_json::json;

use crate::kit::{Contract, Keys, expect, id_of, raw};

/// A room of the sale's host; its id.
pub async fn create_and_read(t: &mut Contract, keys: &Keys) -> String {
    let (app, samples) = (&t.app, &mut t.samples);
    let host = keys.host.as_str();
    let room = app
        .request(
            Method::POST,
            "/v1/rooms",
            host,
            Some(json!({"title": "Contract live"})),
            &[],
        )
        .await;
    let room = samples.http("createRoom", room);
    expect(&room, 201, None);
    let room_id = id_of(&room);
    let shopper_on_host_route = app
        .request(
            Method::POST,
            "/v1/rooms",
            &app.token("nosy"),
            Some(json!({"title": "x"})),
            &[],
        )
        .await;
    expect(
        &samples.http("createRoom", shopper_on_host_route),
        403,
        Some("forbidden"),
    );
    let no_credentials = raw(app, Method::POST, "/v1/rooms", None, Some("{}"), &[]).await;
    expect(
        &samples.http("createRoom", no_credentials),
        401,
        Some("unauthorized"),
    );
    let malformed = raw(
        app,
        Method::POST,
        "/v1/rooms",
        Some(host),
        Some("{\"title\": "),
        &[],
    )
    .await;
    expect(
        &samples.http("createRoom", malformed),
        400,
        Some("bad_request"),
    );
    let rooms = app.request(Method::GET, "/v1/rooms", host, None, &[]).await;
    expect(&samples.http("listRooms", rooms), 200, None);
    let read_room = app.admin_get(&format!("/v1/rooms/{room_id}")).await;
    expect(&samples.http("getRoom", read_room), 200, None);
    let unknown_room = app.admin_get("/v1/rooms/room_unknown").await;
    expect(
        &samples.http("getRoom", unknown_room),
        404,
        Some("not_found"),
    );
    let other_host = app
        .request(
            Method::GET,
            &format!("/v1/rooms/{room_id}"),
            &keys.other_host,
            None,
            &[],
        )
        .await;
    expect(&samples.http("getRoom", other_host), 403, Some("forbidden"));

    room_id
}
