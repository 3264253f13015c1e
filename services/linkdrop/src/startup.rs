//! Building and running an application: connect the backends the chosen roles need,
//! start each role, merge their routes with `/healthz`, `/readyz` and `/metrics` behind one
//! listener, and on shutdown stop accepting, let the roles drain, and wait for them.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::backends::Backends;
use crate::listener::Listener;
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::Listener as _;
use linkdrop_domain::keys::Keys;
use linkdrop_infra::auth::{Auth, ShopperTokens};
use linkdrop_infra::backends;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::config::Config;
use linkdrop_infra::ops::Ops;
use linkdrop_infra::problem::{method_not_allowed, no_route};
use linkdrop_infra::role::RoleHandle;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_infra::telemetry;
use linkdrop_infra::trace;
use linkdrop_webhooks::guard::Guard;
use tokio_util::sync::CancellationToken;

/// How long roles may take to finish their work after shutdown was signalled.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// A role of the binary (docs/architecture.md, "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Orders,
    Relay,
    Settle,
    Webhooks,
    Control,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Gateway,
        Role::Orders,
        Role::Relay,
        Role::Settle,
        Role::Webhooks,
        Role::Control,
    ];

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Orders => "orders",
            Self::Relay => "relay",
            Self::Settle => "settle",
            Self::Webhooks => "webhooks",
            Self::Control => "control",
        }
    }

    pub(crate) fn needs_redis(&self) -> bool {
        matches!(
            self,
            Self::Gateway | Self::Orders | Self::Relay | Self::Control
        )
    }

    pub(crate) fn needs_database(&self) -> bool {
        matches!(
            self,
            Self::Orders | Self::Settle | Self::Webhooks | Self::Control
        )
    }

    /// Whether the role counts the host's figures (viewers, taps) in memory.
    pub(crate) fn counts_analytics(&self) -> bool {
        matches!(self, Self::Gateway | Self::Orders)
    }

    pub(crate) fn needs_kafka(&self) -> bool {
        matches!(self, Self::Relay | Self::Settle)
    }

    fn needs_shopper_tokens(&self) -> bool {
        matches!(self, Self::Gateway | Self::Orders)
    }
}

/// A built application: bound, with every role started, not yet serving.
pub struct Application {
    /// The live-state connection (Redis, or the embedded engine), when a role needed one.
    live_state: Option<RedisConn>,
    backends: Backends,
    listener: Listener,
    router: Router,
    roles: Vec<RoleHandle>,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects what `roles` need, starts them, and binds the listener
    /// (`config.http.addr`; port 0 picks a free port).
    pub async fn build(config: Config, roles: &[Role]) -> anyhow::Result<Application> {
        Self::build_on(config, roles, None).await
    }

    /// Like [`Application::build`], on the backends of another application of the same
    /// installation instead of its own connections: on the embedded backend, the way to run
    /// a second orders or gateway "process" beside the first (tests).
    pub async fn build_beside(
        config: Config,
        roles: &[Role],
        backends: Backends,
    ) -> anyhow::Result<Application> {
        Self::build_on(config, roles, Some(backends)).await
    }

    async fn build_on(
        config: Config,
        roles: &[Role],
        backends: Option<Backends>,
    ) -> anyhow::Result<Application> {
        if roles.iter().any(Role::needs_shopper_tokens) {
            config.tokens.require_some_keys(&config.secrets)?;
        }
        if roles.contains(&Role::Control) {
            config.secrets.require_admin_key()?;
        }
        if roles.contains(&Role::Control) || roles.contains(&Role::Webhooks) {
            config.secrets.require_webhook_secret_key()?;
        }
        // The recorder is installed and every process-wide metric declared before any role
        // starts; each role declares its own as it starts (`start_role`).
        telemetry::register_metrics();
        crate::listener::register_metrics();
        let role_list: Vec<&str> = roles.iter().map(Role::name).collect();
        trace::init(&config.telemetry, &role_list.join(",")).map_err(anyhow::Error::msg)?;
        let listener = Listener::bind(config.http.addr, config.http.reuse_port)
            .with_context(|| format!("binding LINKDROP_HTTP_ADDR {}", config.http.addr))?;
        let public_url = config.http.public_url_for(listener.local_addr()?);
        let (backends, own_backends) = match backends {
            Some(backends) => (backends, false),
            None => (Backends::connect(&config, roles).await?, true),
        };
        let keys = Keys::new(&config.namespace);
        let auth = Auth::new(
            ShopperTokens::from_config(&config.secrets, &config.tokens),
            config.secrets.admin_key.as_ref(),
            backends.db.clone(),
        );
        let shutdown = CancellationToken::new();
        let mut handles = Vec::new();
        for role in roles {
            let handle = start_role(
                *role,
                &config,
                &public_url,
                &backends,
                &keys,
                &auth,
                &shutdown,
            )
            .await
            .with_context(|| format!("starting the {} role", role.name()))?;
            handles.push(handle);
        }
        if own_backends
            && let Some(db) = &backends.analytics_db
            && let Some(flusher) = backends.analytics.start_flushing(
                db.clone(),
                Duration::from_millis(config.analytics.flush_ms),
                shutdown.clone(),
            )
        {
            handles.push(RoleHandle::new("analytics").with_task(flusher));
        }
        let backend = backends.kind();
        tracing::info!(backend, "backends");
        let role_names = roles.iter().map(Role::name).collect();
        let mut router = Ops::new(backends.probes(), backend, role_names).router();
        for handle in &mut handles {
            if let Some(routes) = handle.router.take() {
                router = router.merge(routes);
            }
        }
        let router = router
            .fallback(no_route)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(config.http.body_limit_bytes))
            .layer(axum::middleware::from_fn(trace::http_span));
        tracing::info!(
            addr = %listener.local_addr()?,
            roles = ?roles.iter().map(Role::name).collect::<Vec<_>>(),
            backend,
            "linkdrop listening"
        );
        Ok(Application {
            live_state: backends.redis.clone(),
            backends,
            listener,
            router,
            roles: handles,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The connection to its live state: Redis, or on the embedded backend the engine
    /// (which only this process can reach). For tests and tools running beside it.
    pub fn live_state(&self) -> Option<RedisConn> {
        self.live_state.clone()
    }

    /// Its backends, to build another application beside it ([`Application::build_beside`]).
    pub fn backends(&self) -> Backends {
        self.backends.clone()
    }

    /// Cancel it to stop the application.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until shutdown, then waits (bounded) for every role to finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        crate::serve::serve(self.listener, self.router, self.shutdown.clone()).await;
        let tasks: Vec<_> = self.roles.into_iter().flat_map(|r| r.tasks).collect();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, join_all_tasks(tasks)).await;
        if drained.is_err() {
            tracing::warn!("some roles did not finish within the drain timeout");
        }
        trace::flush();
        tracing::info!("linkdrop stopped");
        Ok(())
    }
}

async fn join_all_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

async fn start_role(
    role: Role,
    config: &Config,
    public_url: &str,
    backends: &Backends,
    keys: &Keys,
    auth: &Auth,
    shutdown: &CancellationToken,
) -> anyhow::Result<RoleHandle> {
    Ok(match role {
        Role::Gateway => {
            linkdrop_gateway::register_metrics();
            let deps = linkdrop_gateway::GatewayDeps {
                bus: backends.bus_source()?,
                redis: backends.redis(),
                keys: keys.clone(),
                auth: auth.clone(),
                config: config.gateway.clone(),
                analytics: backends.analytics.clone(),
            };
            linkdrop_gateway::start(deps, shutdown.clone()).await?
        }
        Role::Orders => {
            let deps = linkdrop_orders::OrdersDeps {
                redis: backends.redis(),
                news: backends.bus_source()?,
                keys: keys.clone(),
                auth: auth.clone(),
                db: backends.db(),
                config: config.orders.clone(),
                analytics: backends.analytics.clone(),
            };
            linkdrop_orders::start(deps, shutdown.clone())
        }
        Role::Relay => {
            linkdrop_relay::register_metrics();
            // The relay blocks on reads: on Redis it gets a connection of its own (the
            // engine waits without holding anything up).
            let redis = match &backends.engine {
                Some(_) => backends.redis(),
                None => backends::connect_redis(&config.redis.require()?).await?,
            };
            let durability_lag_ms = match &backends.engine {
                // The engine journals every write before answering.
                Some(_) => 0,
                None => config.redis.durability.relay_lag_ms(),
            };
            let deps = linkdrop_relay::RelayDeps {
                redis,
                keys: keys.clone(),
                sink: backends.relay_sink(config),
                durability_lag_ms,
                config: config.relay.clone(),
            };
            linkdrop_relay::start(deps, shutdown.clone()).await?
        }
        Role::Settle if backends.engine.is_some() => {
            tracing::info!("embedded backend: orders are settled by the relay, in this process");
            RoleHandle::new("settle")
        }
        Role::Settle => {
            linkdrop_settle::register_metrics();
            let deps = linkdrop_settle::SettleDeps {
                db: backends.db(),
                keys: keys.clone(),
                brokers: backends.kafka(),
                topic: config.kafka.orders_topic(),
                config: config.settle.clone(),
            };
            linkdrop_settle::start(deps, shutdown.clone()).await?
        }
        Role::Webhooks => {
            linkdrop_webhooks::register_metrics();
            let deps = linkdrop_webhooks::DispatcherDeps::new(
                backends.db(),
                &config.webhooks,
                config.secrets.require_webhook_secret_key()?.clone(),
            );
            linkdrop_webhooks::start(deps, shutdown.clone())
        }
        Role::Control => {
            linkdrop_control::register_metrics();
            let redis = backends.redis();
            let state = linkdrop_control::ControlState {
                db: backends.db(),
                bus: RoomBus::new(redis.clone(), keys.clone()),
                redis,
                keys: keys.clone(),
                auth: auth.clone(),
                public_url: public_url.to_string(),
                analytics: config.analytics.enabled,
            };
            let endpoints = linkdrop_webhooks::WebhooksState {
                db: backends.db(),
                auth: auth.clone(),
                guard: Guard::from_config(&config.webhooks),
                sealing: config.secrets.require_webhook_secret_key()?.clone(),
            };
            let router = linkdrop_control::router(state)
                .merge(linkdrop_webhooks::endpoints_router(endpoints));
            let sweep = linkdrop_control::report::sweep_old_figures(
                backends.db(),
                config.analytics.retention_days,
                shutdown.clone(),
            );
            RoleHandle::new("control")
                .with_router(router)
                .with_task(tokio::spawn(sweep))
        }
    })
}
