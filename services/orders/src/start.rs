//! Starting the orders role: its routes, and the tasks beside them — the expiry worker,
//! the limiters' clean-up, drop news (the edge and the lottery drawer), the edge's sweep.

use std::time::Duration;

use linkdrop_domain::keys::Keys;
use linkdrop_infra::analytics::Analytics;
use linkdrop_infra::auth::Auth;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::bus_listener::BusSource;
use linkdrop_infra::config::OrdersConfig;
use linkdrop_infra::role::RoleHandle;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_records::db::Db;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::admission_queue::AdmissionQueue;
use crate::edge::{Edge, EdgeSettings};
use crate::lifecycle::Lifecycle;
use crate::lottery::Drawer;
use crate::news::Listeners;
use crate::protection::{Limits, Protection};
use crate::stock::{STOCK_EVENT_INTERVAL, StockTicker};
use crate::{OrdersParts, OrdersState, router};

/// What the orders role needs: its connections, and its section of the configuration.
pub struct OrdersDeps {
    pub redis: RedisConn,
    /// Where drop news comes from.
    pub news: BusSource,
    pub keys: Keys,
    pub auth: Auth,
    pub db: Db,
    /// Limits, edge answers, batches, expiry (`LINKDROP_ORDERS_*`, `LINKDROP_EXPIRY_POLL_MS`).
    pub config: OrdersConfig,
    /// Where this process counts taps (written by the caller's flusher).
    pub analytics: Analytics,
}

/// Starts the orders role.
pub fn start(deps: OrdersDeps, shutdown: CancellationToken) -> RoleHandle {
    crate::metrics::register_metrics();
    let (redis, keys) = (deps.redis.clone(), deps.keys.clone());
    let bus = RoomBus::new(redis.clone(), keys.clone());
    let stock = StockTicker::new(
        bus.clone(),
        redis.clone(),
        keys.clone(),
        STOCK_EVENT_INTERVAL,
    );
    let drawer = Drawer::new(
        redis.clone(),
        keys.clone(),
        bus,
        stock.clone(),
        deps.db.clone(),
    );
    let protection = Protection::new(Limits::from(&deps.config));
    let lifecycle = Lifecycle::new(redis.clone(), keys.clone(), stock.clone());
    let edge = EdgeSettings::from_config(&deps.config)
        .map(|settings| Edge::new(redis.clone(), keys.clone(), settings));
    let admission = AdmissionQueue::new(
        Admission::new(redis.clone(), keys.clone()),
        edge.clone(),
        deps.config.batch_max,
    );
    let listeners = Listeners {
        edge: edge.clone(),
        drawer: Some(drawer.clone()),
    };
    let expiry_poll = Duration::from_millis(deps.config.expiry_poll_ms);
    let mut handle = RoleHandle::new("orders")
        .with_task(tokio::spawn(protection.clone().clean_up(shutdown.clone())))
        .with_task(tokio::spawn(
            lifecycle.clone().run_expiry(expiry_poll, shutdown.clone()),
        ))
        .with_task(tokio::spawn(listeners.listen(
            deps.news,
            keys.clone(),
            shutdown.clone(),
        )));
    if let Some(edge) = &edge {
        handle = handle.with_task(tokio::spawn(edge.clone().sweep(shutdown.clone())));
    }
    let state = OrdersState::new(OrdersParts {
        edge,
        admission,
        lifecycle,
        redis,
        keys,
        protection,
        drawer,
        stock,
        auth: deps.auth,
        db: deps.db,
        analytics: deps.analytics,
    });
    handle.with_router(router(state))
}
