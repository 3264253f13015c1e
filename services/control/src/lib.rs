//! The control role: what hosts and the admin use to run a sale — API keys, rooms, drops,
//! launch and close, a drop's live figures, and the room's post-live report.
//!
//! The system of record (PostgreSQL, or SQLite when embedded) keeps every room and drop;
//! Redis keeps what admission reads (phase, opening time, stock). A launch is decided in Redis (one script, so a drop
//! launches once) and then told to the room through the room bus.

pub mod api_keys;
pub mod drops;
pub mod live;
pub mod panel;
pub mod report;
pub mod rooms;
pub mod view;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use linkdrop_domain::keys::Keys;
use linkdrop_infra::auth::Auth;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_records::db::Db;

/// What the control routes share.
#[derive(Clone)]
pub struct ControlState {
    /// The system of record: rooms, drops, API keys (and the webhook outbox).
    pub db: Db,
    pub redis: RedisConn,
    pub keys: Keys,
    pub bus: RoomBus,
    pub auth: Auth,
    /// Base URL of the public API, for the `order_url` pushed with a countdown.
    pub public_url: String,
    /// Whether launches record the room's viewers for the host's analytics.
    pub analytics: bool,
}

impl FromRef<ControlState> for Auth {
    fn from_ref(state: &ControlState) -> Auth {
        state.auth.clone()
    }
}

/// Declares the control API's metrics, at zero, so that they are exported from the start.
pub fn register_metrics() {
    linkdrop_infra::telemetry::declare_counter("linkdrop_drops_launched_total", "Drops launched");
}

pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/v1/api-keys", post(api_keys::create))
        .route("/v1/rooms", post(rooms::create).get(rooms::list))
        .route("/v1/rooms/{room_id}", get(rooms::get))
        .route("/v1/rooms/{room_id}/report", get(report::get))
        .route(
            "/v1/rooms/{room_id}/drops",
            post(drops::create).get(drops::list),
        )
        .route("/v1/drops/{drop_id}", get(drops::get))
        .route("/v1/drops/{drop_id}/launch", post(drops::launch))
        .route("/v1/drops/{drop_id}/close", post(drops::close))
        .route("/v1/drops/{drop_id}/draw", get(drops::get_draw))
        .route("/v1/time", get(panel::time))
        .route("/v1/dev/tokens", post(panel::mint_token))
        .route("/", get(panel::home))
        .route("/panel", get(panel::panel))
        .route("/report", get(panel::report))
        .route("/shop", get(panel::shop))
        .route("/assets/{name}", get(panel::assets))
        .with_state(state)
}
