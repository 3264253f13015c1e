//! Audiences: many WebSocket viewers of one room, spread over worker processes (each under
//! the per-process open-file limit) and loopback source addresses (each has its own
//! ephemeral ports), connected to one or several gateway nodes. Once every viewer is in,
//! the coordinator triggers one event — a drop launch on linkdrop, a publication on
//! Centrifugo — and every viewer records when it arrived. The report: latency from the
//! trigger (p50, p99, max) and the spread of arrivals, as JSON and an SVG histogram.
//!
//! Coordinator and workers talk over the workers' stdout (`progress`, `ready`, `arrivals`
//! lines). The coordinator prints `ready` once all viewers are in and waits for a line on
//! its stdin before it triggers, so a caller can read the servers' memory first.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures::{SinkExt, StreamExt};
use linkdrop_domain::secret::Secret;
use linkdrop_domain::tokens::TokenKeys;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::limits::{Limits, Verdict};
use crate::stats::{Latency, latency};
use crate::viewer::{Socket, connect, now_us, source_address};

/// Handshakes one worker has in flight at once.
const CONNECTS_IN_FLIGHT: usize = 256;
/// Attempts a viewer makes to get in.
const CONNECT_ATTEMPTS: u32 = 3;
/// How long a worker waits for the event after all its viewers are in.
const EVENT_TIMEOUT: Duration = Duration::from_secs(300);

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Linkdrop,
    Centrifugo,
}

/// What every worker needs to know.
#[derive(Args, Debug, Clone)]
pub struct Common {
    #[arg(long, value_enum)]
    pub target: Target,
    /// WebSocket endpoints, `host:port`, comma-separated; viewers are spread evenly.
    #[arg(long, value_delimiter = ',', required = true)]
    pub gateways: Vec<String>,
    /// The room (linkdrop) or channel (Centrifugo) everyone watches.
    #[arg(long)]
    pub room: String,
    /// HS256 secret for viewer tokens (`sub` + `exp`; both systems take this form).
    #[arg(long, env = "LOADGEN_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: String,
}

#[derive(Args, Debug, Clone)]
pub struct AudienceArgs {
    #[command(flatten)]
    common: Common,
    /// Viewers in all.
    #[arg(long)]
    viewers: usize,
    /// Worker processes (each stays under the open-file limit with its share).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// URL that triggers the event (POST): a drop's launch, or Centrifugo's publish API.
    #[arg(long)]
    trigger_url: String,
    #[command(flatten)]
    trigger: Trigger,
    /// Wait for a line on stdin after `ready`, before triggering; and after the report,
    /// for another before the viewers leave.
    #[arg(long)]
    wait_for_go: bool,
    /// Where to write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where to draw the latency histogram (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Limits on the arrival latency and on viewers the event never reached (errors).
    #[command(flatten)]
    limits: Limits,
}

/// How a trigger (a launch, a publication) is sent, beside its URL.
#[derive(Args, Debug, Clone)]
pub struct Trigger {
    /// One header of the trigger, `Name: value` (credentials).
    #[arg(long)]
    pub trigger_header: String,
    /// JSON body of the trigger.
    #[arg(long)]
    pub trigger_body: String,
}

impl Trigger {
    /// POSTs the trigger to `url`; an answer other than 2xx is an error.
    pub async fn post(&self, url: &str) -> anyhow::Result<()> {
        let (name, value) = self
            .trigger_header
            .split_once(':')
            .context("--trigger-header is Name: value")?;
        let status =
            crate::http::post_json(url, (name.trim(), value.trim()), &self.trigger_body).await?;
        if !(200..300).contains(&status) {
            bail!("the trigger answered {status}");
        }
        Ok(())
    }
}

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: Common,
    /// Viewers of this worker.
    #[arg(long)]
    pub count: usize,
    /// Number of this worker's first viewer (user ids are `viewer-<n>`).
    #[arg(long)]
    pub first: usize,
    /// Loopback address to connect from.
    #[arg(long)]
    pub source: Ipv4Addr,
}

/// The outcome of one audience run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: Target,
    pub viewers: usize,
    pub received: usize,
    /// Latency from the trigger to each viewer.
    pub latency: Latency,
    /// Last arrival minus first arrival.
    pub spread_ms: f64,
    /// Seconds it took to connect every viewer.
    pub connect_seconds: f64,
    /// Size of the event's WebSocket message as the viewers received it.
    pub frame_bytes: usize,
    /// Viewers that held the event before the moment it announced (`opens_at_ms` of a
    /// `drop.countdown`, by this machine's clock): for whom the fan-out was hidden by the
    /// countdown.
    pub before_opening: usize,
    pub verdict: Verdict,
}

/// The workers, still holding their viewers after the report.
pub struct Held {
    workers: Vec<tokio::process::Child>,
    wait_for_done: bool,
}

impl Held {
    /// Lets the viewers go: with `--wait-for-go`, once a line comes on stdin (so that a
    /// caller can read the servers' figures with nobody leaving yet), otherwise at once.
    pub async fn release(self) -> anyhow::Result<()> {
        if self.wait_for_done {
            read_line_from_stdin().await?;
        }
        for mut worker in self.workers {
            // A closed stdin tells the worker to close its viewers and end.
            drop(worker.stdin.take());
            worker.wait().await?;
        }
        Ok(())
    }
}

async fn read_line_from_stdin() -> anyhow::Result<()> {
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    Ok(())
}

/// Runs the coordinator: starts the workers, waits for all viewers, triggers, reports; the
/// viewers stay connected until [`Held::release`].
pub async fn run(args: AudienceArgs) -> anyhow::Result<(Report, Held)> {
    let started = std::time::Instant::now();
    let per_worker = args.viewers.div_ceil(args.workers);
    let mut workers = Vec::new();
    for w in 0..args.workers {
        let first = w * per_worker;
        let count = per_worker.min(args.viewers.saturating_sub(first));
        if count == 0 {
            break;
        }
        workers.push(spawn_worker(
            "audience-worker",
            &args.common,
            w,
            first,
            count,
        )?);
    }
    let connected = Arc::new(AtomicUsize::new(0));
    let frame_bytes = Arc::new(AtomicUsize::new(0));
    let before_opening = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(workers.len());
    for child in &mut workers {
        let stdout = child.stdout.take().unwrap();
        let connected = connected.clone();
        let frame_bytes = frame_bytes.clone();
        let before_opening = before_opening.clone();
        let ready_tx = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut arrivals = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
                match word {
                    "progress" => {
                        connected.fetch_add(rest.parse::<usize>().unwrap_or(0), Ordering::Relaxed);
                    }
                    "ready" => {
                        let _ = ready_tx.send(()).await;
                    }
                    // The worker's last word: it holds its viewers until told to go.
                    "arrivals" => {
                        arrivals = serde_json::from_str::<Vec<u64>>(rest).unwrap_or_default();
                        break;
                    }
                    "frame" => {
                        frame_bytes.fetch_max(rest.parse().unwrap_or(0), Ordering::Relaxed);
                    }
                    "early" => {
                        before_opening.fetch_add(rest.parse().unwrap_or(0), Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            arrivals
        }));
    }
    drop(ready_tx);
    let mut ready = 0;
    let mut progress = tokio::time::interval(Duration::from_secs(2));
    while ready < readers.len() {
        tokio::select! {
            got = ready_rx.recv() => match got {
                Some(()) => ready += 1,
                None => bail!("a worker ended before its viewers were in (open-file limit? see stderr)"),
            },
            _ = progress.tick() => eprintln!("audience: {} of {} viewers connected", connected.load(Ordering::Relaxed), args.viewers),
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "audience: all {} viewers in after {connect_seconds:.1} s",
        args.viewers
    );
    println!("ready");
    std::io::stdout().flush()?;
    if args.wait_for_go {
        read_line_from_stdin().await?;
    }
    let trigger_us = now_us();
    args.trigger.post(&args.trigger_url).await?;
    let mut arrivals = Vec::new();
    for reader in readers {
        arrivals.extend(reader.await?);
    }
    let mut report = summarize(&args, &arrivals, trigger_us, connect_seconds);
    report.frame_bytes = frame_bytes.load(Ordering::Relaxed);
    report.before_opening = before_opening.load(Ordering::Relaxed);
    if let Some(path) = &args.svg {
        std::fs::write(path, svg_histogram(&args, &arrivals, trigger_us))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    let held = Held {
        workers,
        wait_for_done: args.wait_for_go,
    };
    Ok((report, held))
}

/// Starts one worker process (`subcommand`: `audience-worker` or `storm-worker`) for
/// viewers `first ..first + count`, its stdout piped to the caller and its stdin too.
pub fn spawn_worker(
    subcommand: &str,
    common: &Common,
    index: usize,
    first: usize,
    count: usize,
) -> anyhow::Result<tokio::process::Child> {
    let source = source_address(index);
    let target = match common.target {
        Target::Linkdrop => "linkdrop",
        Target::Centrifugo => "centrifugo",
    };
    tokio::process::Command::new(std::env::current_exe()?)
        .args([subcommand, "--target", target])
        .args(["--gateways", &common.gateways.join(",")])
        .args(["--room", &common.room])
        .args(["--count", &count.to_string(), "--first", &first.to_string()])
        .args(["--source", &source.to_string()])
        .env("LOADGEN_TOKEN_SECRET", &common.token_secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting an audience worker")
}

fn summarize(
    args: &AudienceArgs,
    arrivals: &[u64],
    trigger_us: u64,
    connect_seconds: f64,
) -> Report {
    let micros: Vec<u32> = arrivals
        .iter()
        .map(|a| a.saturating_sub(trigger_us).min(u64::from(u32::MAX)) as u32)
        .collect();
    let spread_ms = match (arrivals.iter().min(), arrivals.iter().max()) {
        (Some(first), Some(last)) => (last - first) as f64 / 1000.0,
        _ => 0.0,
    };
    let latency = latency(micros);
    let missed = args.viewers.saturating_sub(arrivals.len()) as u64;
    Report {
        target: args.common.target,
        viewers: args.viewers,
        received: arrivals.len(),
        latency,
        spread_ms,
        connect_seconds,
        frame_bytes: 0,
        before_opening: 0,
        verdict: args
            .limits
            .judge(latency.p99_ms, missed, args.viewers as u64),
    }
}

/// A histogram of arrival latencies, 40 bins from 0 to the slowest.
fn svg_histogram(args: &AudienceArgs, arrivals: &[u64], trigger_us: u64) -> String {
    const BINS: usize = 40;
    let (width, height, left, bottom) = (640.0, 320.0, 50.0, 40.0);
    let ms: Vec<f64> = arrivals
        .iter()
        .map(|a| a.saturating_sub(trigger_us) as f64 / 1000.0)
        .collect();
    let max_ms = ms.iter().cloned().fold(1.0, f64::max);
    let mut counts = [0usize; BINS];
    for m in &ms {
        counts[((m / max_ms * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64;
    let bar_w = (width - left - 10.0) / BINS as f64;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="16">{:?}: {} viewers, arrival of the event after the trigger (ms)</text>
"##,
        args.common.target,
        arrivals.len()
    );
    for (i, count) in counts.iter().enumerate() {
        let h = (*count as f64 / top) * (height - bottom - 30.0);
        svg.push_str(&format!(
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#3b6ea5"/>
"##,
            left + i as f64 * bar_w,
            height - bottom - h,
            bar_w - 1.0
        ));
    }
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"/>
<text x="{left}" y="{ty}">0</text><text x="{x2}" y="{ty}" text-anchor="end">{max_ms:.0} ms</text>
<text x="4" y="{ly}">{top}</text>
</svg>
"##,
        y = height - bottom,
        x2 = width - 10.0,
        ty = height - bottom + 16.0,
        ly = 40.0
    ));
    svg
}

/// Runs one worker: connects its viewers, says `ready`, prints `arrivals` when every
/// viewer saw the event (or the wait ran out).
pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let (all_in, all_in_rx) = tokio::sync::watch::channel(false);
    // Viewers are started by their own task, so that progress is reported meanwhile.
    let starter = tokio::spawn(start_viewers(args.clone(), ready_tx, all_in_rx));
    let mut connected = 0;
    let mut reported = 0;
    while let Some(ok) = ready_rx.recv().await {
        if !ok {
            bail!("a viewer could not connect");
        }
        connected += 1;
        if connected - reported >= 1000 || connected == args.count {
            println!("progress {}", connected - reported);
            reported = connected;
        }
        if connected == args.count {
            break;
        }
    }
    println!("ready");
    std::io::stdout().flush()?;
    // The viewers' wait for the event starts now, not when each got in: a slow join must not
    // use up the wait of the viewers that joined first.
    let _ = all_in.send(true);
    let viewers = starter.await??;
    let mut arrivals = Vec::with_capacity(args.count);
    let mut sockets = Vec::with_capacity(args.count);
    let mut frame_bytes = 0;
    let mut early = 0;
    for viewer in viewers {
        if let Some((arrival, socket)) = viewer.await? {
            arrivals.push(arrival.at_us);
            frame_bytes = frame_bytes.max(arrival.bytes);
            early += usize::from(arrival.before_opening);
            // Kept open until every viewer is done: no disconnects during the fan-out.
            sockets.push(socket);
        }
    }
    println!("frame {frame_bytes}");
    println!("early {early}");
    println!("arrivals {}", serde_json::to_string(&arrivals)?);
    std::io::stdout().flush()?;
    // The viewers stay until the coordinator lets them go (closes this worker's stdin), so
    // that the servers' work for the event is not mixed with their work for the leaving.
    read_line_from_stdin().await?;
    drop(sockets);
    Ok(())
}

type Viewer = tokio::task::JoinHandle<Option<(Arrival, Socket)>>;

/// The event at one viewer.
struct Arrival {
    /// When it arrived, µs since the epoch.
    at_us: u64,
    /// Its message's size.
    bytes: usize,
    /// It came before the `opens_at_ms` it announced.
    before_opening: bool,
}

/// Spawns every viewer of the worker, at most `CONNECTS_IN_FLIGHT` handshakes at once;
/// each says on `ready` whether it got in, then waits for the event.
async fn start_viewers(
    args: WorkerArgs,
    ready: tokio::sync::mpsc::UnboundedSender<bool>,
    all_in: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<Viewer>> {
    let tokens = TokenKeys::new(&Secret::new(args.common.token_secret.clone()));
    let gate = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let mut viewers = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let n = args.first + i;
        let gateway = args.common.gateways[n % args.common.gateways.len()].clone();
        let token = tokens
            .mint(&format!("viewer-{n}"), 3600)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let permit = gate.clone().acquire_owned().await?;
        let ready = ready.clone();
        let common = args.common.clone();
        let source = args.source;
        let mut all_in = all_in.clone();
        viewers.push(tokio::spawn(async move {
            let connection = connect_with_retries(&common, &gateway, source, &token).await;
            let connection = connection.map(|(socket, _hello)| socket);
            drop(permit);
            let mut socket = match connection {
                Ok(socket) => socket,
                Err(e) => {
                    eprintln!("audience-worker: viewer {n}: {e:#}");
                    let _ = ready.send(false);
                    return None;
                }
            };
            let _ = ready.send(true);
            let out_of_time = async move {
                let _ = all_in.wait_for(|in_| *in_).await;
                tokio::time::sleep(EVENT_TIMEOUT).await;
            };
            let arrived = tokio::select! {
                arrived = wait_for_event(common.target, &mut socket) => arrived,
                _ = out_of_time => None,
            };
            arrived.map(|at| (at, socket))
        }));
    }
    Ok(viewers)
}

/// Connects like a real client would: a refused or dropped attempt is tried again.
async fn connect_with_retries(
    common: &Common,
    gateway: &str,
    source: Ipv4Addr,
    token: &str,
) -> anyhow::Result<(Socket, String)> {
    let mut attempt = 1;
    loop {
        match connect(common, gateway, source, token, None).await {
            Ok(socket) => return Ok(socket),
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                eprintln!("audience-worker: attempt {attempt} failed ({e:#}), trying again");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads until the event arrives. Answers the servers' keep-alive pings meanwhile.
async fn wait_for_event(target: Target, socket: &mut Socket) -> Option<Arrival> {
    loop {
        let message = socket.next().await?.ok()?;
        let Message::Text(text) = message else {
            continue;
        };
        let at_us = now_us();
        let arrival = |before_opening| Arrival {
            at_us,
            bytes: text.len(),
            before_opening,
        };
        match target {
            Target::Linkdrop if text.contains("\"type\":\"drop.countdown\"") => {
                let opens_at_ms = number_after(&text, "\"opens_at_ms\":").unwrap_or(0);
                return Some(arrival(at_us / 1000 < opens_at_ms));
            }
            Target::Centrifugo if text.contains("\"pub\"") => return Some(arrival(false)),
            // Centrifugo's ping is an empty object; it wants one back.
            Target::Centrifugo if text.trim() == "{}" => {
                socket.send(Message::text("{}")).await.ok()?;
            }
            _ => {}
        }
    }
}

/// The unsigned number right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::number_after;

    #[test]
    fn a_number_is_read_after_its_key() {
        let frame = r#"{"drop_id":"d","opens_at_ms":1700000003000,"seq":4}"#;
        assert_eq!(
            number_after(frame, "\"opens_at_ms\":"),
            Some(1_700_000_003_000)
        );
        assert_eq!(number_after(frame, "\"stock\":"), None);
    }
}
