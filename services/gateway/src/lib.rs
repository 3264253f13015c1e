//! The gateway role: viewers' WebSockets (`GET /v1/rooms/{room_id}/ws`).
//!
//! A viewer is authenticated before the upgrade (401 otherwise), joins its room's members
//! on this node ([`fanout`]), and from then on receives every room event the node hears on
//! the room bus ([`bus`]). Viewer counts are reported to Redis and summed over all nodes.
//! The gateway never waits on a slow viewer: full queues close with 4008.

pub mod bus;
pub mod fanout;
pub mod session;
pub mod snapshot;
pub mod upgrade;
pub mod wire;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::events::{Frame as _, RoomViewers, ViewersType};
use linkdrop_domain::ids::{self, new_id};
use linkdrop_domain::keys::Keys;
use linkdrop_infra::ApiError;
use linkdrop_infra::analytics::Analytics;
use linkdrop_infra::auth::Auth;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::config::GatewayConfig;
use linkdrop_infra::json::ApiQuery;
use linkdrop_infra::role::RoleHandle;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_infra::viewers;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::fanout::{CloseReason, FanOut};
use crate::upgrade::{NotUpgrade, Upgrade};
use crate::wire::Frame;

/// How often viewer counts are reported and `room.viewers` may be sent.
const VIEWERS_INTERVAL: Duration = Duration::from_secs(1);
/// `room.viewers` frames a node sends per room and second, at most, once the room holds
/// more viewers than this here: a big room is told its count less often (see
/// [`viewers_pace`]).
const VIEWERS_FRAMES_PER_S: u64 = 1_000;
/// The longest a changed count waits before it is sent.
const VIEWERS_SLOWEST: Duration = Duration::from_secs(10);
/// How long a node waits for its first room bus subscription before refusing to start.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the gateway's handlers and tasks share. Every connection's session holds one, so
/// cloning it is one reference count: no per-viewer copies of keys, names or scripts.
#[derive(Clone)]
pub struct GatewayState(Arc<Shared>);

impl std::ops::Deref for GatewayState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`GatewayState`].
pub struct Shared {
    pub fanout: Arc<FanOut>,
    pub(crate) redis: RedisConn,
    pub(crate) keys: Keys,
    auth: Auth,
    pub(crate) bus: RoomBus,
    /// Connections one client address may open per second (`None`: unlimited).
    connects_per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// This node's name in viewer reports.
    node_id: String,
    /// Rooms known to exist, so that only a room's first viewer costs a Redis lookup.
    known_rooms: Arc<Mutex<HashSet<String>>>,
    /// The host's figures this node counts: joins, leaves, viewers per second, countdown
    /// reach.
    pub(crate) analytics: Analytics,
}

/// Everything a gateway needs to start.
pub struct GatewayDeps {
    /// Where room events come from.
    pub bus: linkdrop_infra::bus_listener::BusSource,
    pub redis: RedisConn,
    pub keys: Keys,
    pub auth: Auth,
    /// Its section of the configuration (`LINKDROP_WS_CONNECTS_PER_IP_PER_S`).
    pub config: GatewayConfig,
    /// Where this node counts the host's figures (written by the caller's flusher).
    pub analytics: Analytics,
}

/// Declares the gateway's metrics, at zero, so that they are exported from the start
/// (docs/operating.md, "What to watch in `/metrics`"; the rules and dashboard in
/// deploy/monitoring).
pub fn register_metrics() {
    use linkdrop_infra::telemetry::{declare_counter, declare_gauge, declare_seconds};
    declare_gauge(
        "linkdrop_gateway_connections",
        "Viewers' WebSockets open on this gateway",
    );
    declare_seconds(
        "linkdrop_gateway_broadcast_seconds",
        "Time to hand one room event to every viewer of the room on this gateway (written or queued)",
    );
    declare_counter(
        "linkdrop_gateway_frames_written_total",
        "Frames written to viewers' sockets straight from the broadcast",
    );
    declare_counter(
        "linkdrop_gateway_frames_queued_total",
        "Frames queued for viewers whose socket did not take them at once",
    );
    declare_counter(
        "linkdrop_gateway_slow_consumers_total",
        "Viewers closed because their queue overflowed (4008 slow consumer)",
    );
    declare_counter(
        "linkdrop_gateway_bus_reconnects_total",
        "Times the room bus subscription was lost (or fell behind) and taken up again",
    );
    declare_counter(
        "linkdrop_gateway_gap_events_total",
        "Room events missed on the room bus and delivered from the room's history",
    );
    declare_counter(
        "linkdrop_gateway_connects_limited_total",
        "WebSocket connects refused with 429 by the per-address limit",
    );
    declare_counter(
        "linkdrop_gateway_resumed_total",
        "Reconnecting viewers caught up from the room's history",
    );
    declare_counter(
        "linkdrop_gateway_reaped_total",
        "Viewers closed after not answering pings",
    );
}

/// Starts the gateway: subscribes to the room bus (and waits until subscribed), starts the
/// viewer reporter, and returns the WebSocket route.
pub async fn start(
    deps: GatewayDeps,
    shutdown: CancellationToken,
) -> Result<RoleHandle, redis::RedisError> {
    let state = GatewayState(Arc::new(Shared {
        fanout: Arc::new(FanOut::walked_by(runtime_workers())),
        bus: RoomBus::new(deps.redis.clone(), deps.keys.clone()),
        redis: deps.redis,
        keys: deps.keys.clone(),
        auth: deps.auth,
        connects_per_ip: NonZeroU32::new(deps.config.ws_connects_per_ip_per_s)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_second(n)))),
        node_id: new_id("gw"),
        known_rooms: Arc::default(),
        analytics: deps.analytics.clone(),
    }));
    let (subscribed_tx, subscribed) = oneshot::channel();
    let bus_task = tokio::spawn(bus::run(
        deps.bus,
        deps.keys,
        state.bus.clone(),
        state.fanout.clone(),
        deps.analytics,
        shutdown.clone(),
        subscribed_tx,
    ));
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed).await {
        Ok(Ok(())) => {}
        _ => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "could not subscribe to the room bus",
            )));
        }
    }
    let viewers_task = tokio::spawn(report_viewers(state.clone(), shutdown.clone()));
    let closer = tokio::spawn(close_on_shutdown(state.fanout.clone(), shutdown));
    let router = Router::new()
        .route("/v1/rooms/{room_id}/ws", get(connect))
        .with_state(state);
    Ok(RoleHandle::new("gateway")
        .with_router(router)
        .with_task(bus_task)
        .with_task(viewers_task)
        .with_task(closer))
}

/// The worker threads of the runtime the gateway runs on (1 on a single-threaded one,
/// where a broadcast cannot be walked on other threads).
fn runtime_workers() -> usize {
    let runtime = tokio::runtime::Handle::current();
    match runtime.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => runtime.metrics().num_workers(),
        _ => 1,
    }
}

#[derive(Debug, Deserialize)]
struct ConnectParams {
    token: Option<String>,
    /// The last `seq` the client saw, when it reconnects.
    since: Option<u64>,
}

/// `GET /v1/rooms/{room_id}/ws?token=<JWT>[&since=<seq>]`: checks the connect rate, the
/// token and the room, then upgrades.
async fn connect(
    State(state): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room_id): Path<String>,
    ApiQuery(params): ApiQuery<ConnectParams>,
    upgrade: Result<Upgrade, NotUpgrade>,
) -> Result<Response, ApiError> {
    if let Some(limiter) = &state.connects_per_ip
        && limiter.check_key(&peer.ip()).is_err()
    {
        metrics::counter!("linkdrop_gateway_connects_limited_total").increment(1);
        return Err(ApiError::RateLimited { retry_after_s: 1 });
    }
    let token = params
        .token
        .ok_or(ApiError::Unauthorized("missing token query parameter"))?;
    let shopper = state.auth.shopper(&token).await?;
    ensure_room_exists(&state, &room_id).await?;
    let upgrade = upgrade?;
    let room = state.fanout.room_or_insert(&room_id);
    if !room.knows_seq() {
        room.learn_seq(state.bus.latest_seq(&room_id).await?);
    }
    Ok(upgrade.on_upgrade(move |socket, early| {
        let viewer = session::Viewer {
            room_id,
            user_id: shopper.user_id,
            since: params.since,
        };
        session::run(socket, early, state, viewer, room)
    }))
}

async fn ensure_room_exists(state: &GatewayState, room_id: &str) -> Result<(), ApiError> {
    if !ids::is_well_formed(room_id) {
        return Err(ApiError::NotFound("room"));
    }
    if state
        .known_rooms
        .lock()
        .expect("rooms lock")
        .contains(room_id)
    {
        return Ok(());
    }
    let exists: bool = redis::cmd("EXISTS")
        .arg(state.keys.room_meta(room_id))
        .query_async(&mut state.redis.clone())
        .await?;
    if !exists {
        return Err(ApiError::NotFound("room"));
    }
    state
        .known_rooms
        .lock()
        .expect("rooms lock")
        .insert(room_id.to_string());
    Ok(())
}

/// Every second: reports this node's viewers per room, learns the totals over all nodes,
/// and sends `room.viewers` to local viewers when a total changed.
async fn report_viewers(state: GatewayState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(VIEWERS_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (room_id, room) in state.fanout.rooms() {
            if let Err(e) = report_room(&state, &room_id, &room).await {
                tracing::warn!(%room_id, error = %e, "could not report viewers");
            }
        }
        state.fanout.prune();
    }
}

async fn report_room(
    state: &GatewayState,
    room_id: &str,
    room: &fanout::RoomMembers,
) -> Result<(), redis::RedisError> {
    state.analytics.sampled(room_id, room.len());
    viewers::report(
        &state.redis,
        &state.keys,
        room_id,
        &state.node_id,
        room.len(),
    )
    .await?;
    let total = viewers::total(&state.redis, &state.keys, room_id).await?;
    room.viewers_total
        .store(total, std::sync::atomic::Ordering::Relaxed);
    if !room.is_empty() && room.viewers_due(total, viewers_pace(room.len())) {
        let frame = RoomViewers {
            ts_ms: now_ms(),
            kind: ViewersType,
            viewers: total,
        };
        state
            .fanout
            .broadcast(room_id, None, &Frame::text(&frame.to_text()));
    }
    Ok(())
}

/// How often a room with `local` viewers on this node is sent `room.viewers`: once a
/// second up to [`VIEWERS_FRAMES_PER_S`] viewers, then as seldom as keeps the frames per
/// second under it, and at least every [`VIEWERS_SLOWEST`]. Each `room.viewers` is one
/// frame per viewer: sent every second while 100,000 viewers join, the counts alone would
/// take the machine (joins ran 7 times slower than a bare server's, BENCHMARKS.md).
pub fn viewers_pace(local: u64) -> Duration {
    let seconds = local.div_ceil(VIEWERS_FRAMES_PER_S).max(1);
    Duration::from_secs(seconds).min(VIEWERS_SLOWEST)
}

/// On shutdown, tells every viewer to reconnect (1012) so that they move to another node.
async fn close_on_shutdown(fanout: Arc<FanOut>, shutdown: CancellationToken) {
    shutdown.cancelled().await;
    fanout.close_all(CloseReason::Restart);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_room_is_told_its_count_less_often_up_to_a_bound() {
        let pace = |local| viewers_pace(local).as_secs();
        assert_eq!(pace(0), 1);
        assert_eq!(pace(1_000), 1);
        assert_eq!(pace(1_001), 2);
        assert_eq!(pace(5_000), 5);
        assert_eq!(pace(15_000), 10);
        assert_eq!(pace(1_000_000), 10);
    }
}
