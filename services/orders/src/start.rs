//! Starting the orders role: its routes, and the tasks beside them — the expiry worker,
//! the limiters' clean-up, drop news (the edge and the lottery drawer), the edge's sweep.

use std::time::Duration;

use linkdrop_domain::keys::Keys;
use linkdrop_infra::auth::Auth;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::bus_listener::BusSource;
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

/// What the orders role needs.
pub struct OrdersDeps {
    pub redis: RedisConn,
    /// Where drop news comes from.
    pub news: BusSource,
    pub keys: Keys,
    pub auth: Auth,
    pub db: Db,
    pub limits: Limits,
    /// How often unpaid orders past their deadline are looked for.
    pub expiry_poll: Duration,
    /// Edge answers; `None` switches them off.
    pub edge: Option<EdgeSettings>,
    /// Most waiting requests of one drop decided in one script call.
    pub batch_max: usize,
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
    let protection = Protection::new(deps.limits);
    let lifecycle = Lifecycle::new(redis.clone(), keys.clone(), stock.clone());
    let edge = deps
        .edge
        .map(|settings| Edge::new(redis.clone(), keys.clone(), settings));
    let admission = AdmissionQueue::new(
        Admission::new(redis.clone(), keys.clone()),
        edge.clone(),
        deps.batch_max,
    );
    let listeners = Listeners {
        edge: edge.clone(),
        drawer: Some(drawer.clone()),
    };
    let mut handle = RoleHandle::new("orders")
        .with_task(tokio::spawn(protection.clone().clean_up(shutdown.clone())))
        .with_task(tokio::spawn(
            lifecycle
                .clone()
                .run_expiry(deps.expiry_poll, shutdown.clone()),
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
    });
    handle.with_router(router(state))
}
