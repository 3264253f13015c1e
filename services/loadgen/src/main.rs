//! `linkdrop-loadgen`: the load generator of `scripts/bench`. It runs on the same machine
//! as the system under test, so it is written to cost little per request: one plain
//! HTTP/1.1 connection per concurrent client, no pooling layer, tokens minted on the fly.

mod orders;
mod stats;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Orders(args) => {
            let report = runtime.block_on(orders::run(args))?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}
