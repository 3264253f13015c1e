//! `linkdrop-loadgen`: the load generator of `scripts/bench`. It runs on the same machine
//! as the system under test, so it is written to cost little per request or viewer: plain
//! HTTP/1.1 connections with no pooling layer, small WebSocket buffers, tokens minted on
//! the fly, and audiences split over processes that stay under the open-file limit.

mod audience;
mod floor;
mod http;
mod limits;
mod orders;
mod receiver;
mod stats;
mod storm;
mod viewer;

use std::io::Write as _;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "linkdrop-loadgen", about = "Load for linkdrop benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fires order requests at one drop and reports throughput and latency as JSON.
    Orders(orders::OrdersArgs),
    /// Connects an audience to a room, triggers one event and reports when it arrived.
    Audience(audience::AudienceArgs),
    /// A webhook receiver answering 200 to every POST.
    Receiver(receiver::ReceiverArgs),
    /// POSTs to a URL as fast as it answers (the webhook benchmark's baseline).
    Posts(receiver::PostsArgs),
    /// The fan-out benchmark's floor: a bare WebSocket server, one thread, that on
    /// `POST /trigger` writes one pre-encoded `drop.countdown`-sized frame to every viewer
    /// with non-blocking writes from one loop (and passes the trigger on to `--peers`).
    /// Speaks enough of linkdrop's WebSocket for `audience --target linkdrop`.
    FloorServer(floor::FloorArgs),
    /// A reconnect storm: an audience over several gateways, one killed at a launch; how
    /// long until its viewers are back elsewhere, and whether anyone missed an event.
    Storm(storm::StormArgs),
    /// One process of a storm's audience (started by `storm`).
    #[command(hide = true)]
    StormWorker(audience::WorkerArgs),
    /// One process of an audience (started by `audience`).
    #[command(hide = true)]
    AudienceWorker(audience::WorkerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::FloorServer(args) = cli.command {
        // One thread: the floor is one loop over the sockets.
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(floor::run(args));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Orders(args) => {
            let report = runtime.block_on(orders::run(args))?;
            println!("{}", serde_json::to_string(&report)?);
            fail_on_breaches(&report.verdict)?;
        }
        Command::Audience(args) => {
            let (report, viewers) = runtime.block_on(audience::run(args))?;
            println!("{}", serde_json::to_string(&report)?);
            std::io::stdout().flush()?;
            runtime.block_on(viewers.release())?;
            fail_on_breaches(&report.verdict)?;
        }
        Command::AudienceWorker(args) => runtime.block_on(audience::run_worker(args))?,
        Command::Storm(args) => {
            let report = runtime.block_on(storm::run(args))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::StormWorker(args) => runtime.block_on(storm::run_worker(args))?,
        Command::Receiver(args) => runtime.block_on(receiver::receive(args))?,
        Command::Posts(args) => {
            let report = runtime.block_on(receiver::post_many(args))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::FloorServer(_) => unreachable!("run above"),
    }
    Ok(())
}

/// A run that broke a limit given on the command line exits non-zero, naming each.
fn fail_on_breaches(verdict: &limits::Verdict) -> anyhow::Result<()> {
    if verdict.passed {
        return Ok(());
    }
    anyhow::bail!("limits broken: {}", verdict.breaches.join("; "))
}
