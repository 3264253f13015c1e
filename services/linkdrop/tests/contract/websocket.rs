//! The room's WebSocket: refusals before the upgrade (bad token, no room, no upgrade), then
//! a viewer that joins and pings the clock.

use reqwest::Method;

use crate::kit::{Contract, Watcher, expect, raw};

/// The refusals, then the viewer that watches the whole sale.
pub async fn refuse_then_join(t: &mut Contract, room_id: &str) -> Watcher {
    let (app, samples) = (&t.app, &mut t.samples);
    let ws_path = format!("/v1/rooms/{room_id}/ws");
    let bad_token = raw(
        app,
        Method::GET,
        &format!("{ws_path}?token=not-a-token"),
        None,
        None,
        &[],
    )
    .await;
    expect(
        &samples.http("connectRoom", bad_token),
        401,
        Some("unauthorized"),
    );
    let token = app.token("viewer-a");
    let no_room = raw(
        app,
        Method::GET,
        &format!("/v1/rooms/room_unknown/ws?token={token}"),
        None,
        None,
        &[],
    )
    .await;
    expect(
        &samples.http("connectRoom", no_room),
        404,
        Some("not_found"),
    );
    let no_upgrade = raw(
        app,
        Method::GET,
        &format!("{ws_path}?token={token}"),
        None,
        None,
        &[],
    )
    .await;
    expect(
        &samples.http("connectRoom", no_upgrade),
        400,
        Some("bad_request"),
    );
    let mut watcher = Watcher::join(app, room_id, "viewer-a").await;
    let pong = watcher.ping(1_234_567).await;
    assert_eq!(pong["t"], 1_234_567);

    watcher
}
