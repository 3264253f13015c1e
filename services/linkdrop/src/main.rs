//! `linkdrop`: every role of the flash-sale backend, one subcommand each
//! (docs/architecture.md, "Roles").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use linkdrop::startup::{Application, Role};
use linkdrop_domain::tokens::TokenKeys;
use linkdrop_infra::config::Config;
use linkdrop_infra::telemetry;

/// mimalloc instead of the system allocator: under a rush of orders the system allocator
/// was a fifth of the orders process's CPU time (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "linkdrop",
    version,
    about = "Live-commerce flash sales: push the link, admit fairly, settle durably"
)]
struct Cli {
    /// Configuration file (default: ./linkdrop.toml when present; also LINKDROP_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every role in one process, one listener.
    All,
    /// WebSocket gateway: pushes room events to viewers.
    Gateway,
    /// Orders API: admits orders atomically in Redis.
    Orders,
    /// Moves accepted orders from the Redis outbox to Kafka.
    Relay,
    /// Settles orders from Kafka into PostgreSQL.
    Settle,
    /// Delivers merchant webhooks.
    Webhooks,
    /// Control API for hosts and merchants.
    Control,
    /// Several roles in one process, e.g. `linkdrop roles gateway,orders,control`.
    Roles {
        /// Comma-separated roles: gateway, orders, relay, settle, webhooks, control.
        list: String,
    },
    /// Prints a shopper token (JWT) for tests and load generators.
    Token {
        /// The shopper's user id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_s: u64,
    },
    /// Applies the database migrations and exits.
    Migrate,
    /// Joins a room as a viewer and prints every WebSocket frame.
    Watch {
        /// The room to join.
        #[arg(long)]
        room: String,
        /// The viewer's user id (a token is minted with LINKDROP_JWT_SECRET).
        #[arg(long, default_value = "watcher")]
        user: String,
        /// Base URL of linkdrop (default: http://<LINKDROP_HTTP_ADDR>).
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("linkdrop: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(&config.telemetry);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if config.http.worker_threads > 0 {
        runtime.worker_threads(config.http.worker_threads);
    }
    let runtime = runtime.build().expect("the tokio runtime starts");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linkdrop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let roles = match command {
        Command::Token { user, ttl_s } => {
            let keys = TokenKeys::new(config.secrets.require_jwt_secret()?);
            println!("{}", keys.mint(&user, ttl_s)?);
            return Ok(());
        }
        Command::Watch { room, user, url } => {
            let token = TokenKeys::new(config.secrets.require_jwt_secret()?).mint(&user, 86_400)?;
            let url = url.unwrap_or_else(|| config.http.public_url_for(config.http.addr));
            return linkdrop::watch::watch(&url, &room, &token).await;
        }
        Command::Migrate => {
            let db = linkdrop_infra::backends::connect_db(config.database.require()?, 2).await?;
            linkdrop_infra::backends::migrate(&db).await?;
            println!("migrations applied");
            return Ok(());
        }
        Command::All => Role::ALL.to_vec(),
        Command::Gateway => vec![Role::Gateway],
        Command::Orders => vec![Role::Orders],
        Command::Relay => vec![Role::Relay],
        Command::Settle => vec![Role::Settle],
        Command::Webhooks => vec![Role::Webhooks],
        Command::Control => vec![Role::Control],
        Command::Roles { list } => list
            .split(',')
            .map(|name| {
                Role::from_name(name.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown role {name:?} (gateway, orders, relay, settle, webhooks, control)"
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    let app = Application::build(config, &roles).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be handled");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
