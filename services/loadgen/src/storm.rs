//! A reconnect storm: an audience of one room spread over several linkdrop gateways, one of
//! which is killed (SIGKILL) while the host launches a drop. Its viewers come back on the
//! other gateways with `since` (the last `seq` they saw), as the shopper SDK does; the
//! report says how long until all were back, whether any viewer missed an event or saw a
//! gap in the room's numbering, and how fast the surviving gateways delivered a drop
//! before, during and after the storm.
//!
//! Three launches are triggered: one before the kill (the baseline), one at the kill (while
//! the moved viewers are away: they must get it when they resume) and one after everyone
//! is back. The coordinator waits for every viewer to have seen each before going on.
//! Workers talk to it as the audience's do: lines on their stdout (`ready`, `seen
//! <drop id>`, `report <json>`), and `stop` on their stdin.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use linkdrop_domain::secret::Secret;
use linkdrop_domain::tokens::TokenKeys;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::audience::{Common, Trigger, WorkerArgs, spawn_worker};
use crate::stats::{Latency, latency};
use crate::viewer::{Socket, connect, now_us};

/// Handshakes one worker has in flight at once.
const CONNECTS_IN_FLIGHT: usize = 256;
/// Attempts a viewer makes, over the gateways left, to get back in after losing its own.
const RECONNECT_ATTEMPTS: u32 = 20;
/// The shopper SDK's reconnection backoff (clients/js, `reconnect`): before attempt k a
/// random wait in [0, min(30 s, 1 s · 2^(k−1))] ("full jitter"), so that a gateway's
/// viewers do not all come back in the same instant.
const BACKOFF_BASE_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 30_000;
/// How long the coordinator waits for every viewer to have seen one launch.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    common: Common,
    /// Viewers in all, spread evenly over `--gateways` (list the gateway to kill several
    /// times to give it a bigger share).
    #[arg(long)]
    viewers: usize,
    /// Worker processes (each stays under the open-file limit with its share).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The process to kill (SIGKILL): the gateway listed first in `--gateways`.
    #[arg(long)]
    kill_pid: u32,
    /// Three launch URLs (POST), comma-separated: before, at and after the kill.
    #[arg(long, value_delimiter = ',', required = true)]
    launch_urls: Vec<String>,
    #[command(flatten)]
    trigger: Trigger,
    /// Where to write the report as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What one viewer saw, sent by its worker in the `report` line.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ViewerLog {
    /// When the viewer lost its gateway and when it was back (µs since the epoch).
    pub lost_at_us: Option<u64>,
    pub back_at_us: Option<u64>,
    /// Room events that came with a `seq` more than one past the last seen.
    pub gaps: u32,
    /// Reconnection attempts that failed (refused, timed out, closed before `hello`).
    pub failed_attempts: u32,
    /// Each drop's `drop.countdown`: the drop and when it arrived.
    pub countdowns: Vec<(String, u64)>,
}

/// The outcome of a storm.
#[derive(Debug, Serialize)]
pub struct StormReport {
    pub viewers: usize,
    /// Viewers that lost their gateway and came back.
    pub moved: usize,
    /// Time from the kill until the last moved viewer was back (its `hello`), and the median.
    pub back_max_ms: f64,
    pub back_p50_ms: f64,
    /// Viewers that did not see every launch, and gaps in the numbering seen.
    pub missed: usize,
    pub gaps: u64,
    /// Reconnection attempts that failed, over all moved viewers.
    pub failed_attempts: u64,
    /// The launch before the kill, at every viewer.
    pub before: Latency,
    /// The launch at the kill, at the viewers that kept their gateway.
    pub during_kept: Latency,
    /// The same launch at the moved viewers (delivered when they resumed).
    pub during_moved: Latency,
    /// The launch after everyone was back, at every viewer.
    pub after: Latency,
}

/// Runs the coordinator: the audience in, a launch, the kill with a launch, a launch.
pub async fn run(args: StormArgs) -> anyhow::Result<StormReport> {
    if args.launch_urls.len() != 3 {
        bail!("--launch-urls takes three URLs: before, at and after the kill");
    }
    let drop_ids = args
        .launch_urls
        .iter()
        .map(|url| drop_of(url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut workers = Workers::start(&args)?;
    workers.wait_for("ready", args.viewers).await?;
    eprintln!("storm: all {} viewers in", args.viewers);
    let mut launched = Vec::new();
    for (i, url) in args.launch_urls.iter().enumerate() {
        if i == 1 {
            kill(args.kill_pid)?;
            eprintln!("storm: gateway {} killed", args.kill_pid);
        }
        let at = now_us();
        args.trigger.post(url).await?;
        launched.push(at);
        let seen = format!("seen {}", drop_ids[i]);
        if let Err(e) = workers.wait_for(&seen, args.viewers).await {
            eprintln!("storm: {e:#}");
        }
    }
    let logs = workers.stop().await?;
    let report = summarize(&logs, &drop_ids, &launched);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(report)
}

/// The drop of a launch URL: `.../v1/drops/{id}/launch`.
fn drop_of(url: &str) -> anyhow::Result<String> {
    let mut parts = url.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some("launch"), Some(id)) if !id.is_empty() => Ok(id.to_string()),
        _ => bail!("a launch URL ends in /v1/drops/{{id}}/launch: {url}"),
    }
}

fn kill(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("could not kill process {pid}");
    }
    Ok(())
}

/// The report from every viewer's log. `launched[i]` is when drop `drop_ids[i]` was
/// launched (µs since the epoch).
fn summarize(logs: &[ViewerLog], drop_ids: &[String], launched: &[u64]) -> StormReport {
    let kill_us = launched[1];
    let arrival = |log: &ViewerLog, i: usize| {
        log.countdowns
            .iter()
            .find(|(drop, _)| *drop == drop_ids[i])
            .map(|(_, at)| at.saturating_sub(launched[i]).min(u64::from(u32::MAX)) as u32)
    };
    let moved: Vec<&ViewerLog> = logs.iter().filter(|l| l.lost_at_us.is_some()).collect();
    let back: Vec<u32> = moved
        .iter()
        .filter_map(|l| l.back_at_us)
        .map(|at| at.saturating_sub(kill_us).min(u64::from(u32::MAX)) as u32)
        .collect();
    let back = latency(back);
    let of = |viewers: &mut dyn Iterator<Item = &ViewerLog>, i| {
        latency(viewers.filter_map(|l| arrival(l, i)).collect())
    };
    StormReport {
        viewers: logs.len(),
        moved: moved.len(),
        back_max_ms: back.max_ms,
        back_p50_ms: back.p50_ms,
        missed: logs
            .iter()
            .filter(|l| (0..drop_ids.len()).any(|i| arrival(l, i).is_none()))
            .count(),
        gaps: logs.iter().map(|l| u64::from(l.gaps)).sum(),
        failed_attempts: logs.iter().map(|l| u64::from(l.failed_attempts)).sum(),
        before: of(&mut logs.iter(), 0),
        during_kept: of(&mut logs.iter().filter(|l| l.lost_at_us.is_none()), 1),
        during_moved: of(&mut moved.iter().copied(), 1),
        after: of(&mut logs.iter(), 2),
    }
}

/// The worker processes, and what each has said so far.
struct Workers {
    children: Vec<tokio::process::Child>,
    lines: mpsc::UnboundedReceiver<(usize, String)>,
    /// Per line (`ready`, `seen <drop>`): how many viewers it covers, summed over workers.
    counts: std::collections::HashMap<String, usize>,
    reports: Vec<Option<Vec<ViewerLog>>>,
}

impl Workers {
    fn start(args: &StormArgs) -> anyhow::Result<Self> {
        let per_worker = args.viewers.div_ceil(args.workers);
        let (tx, lines) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        for w in 0..args.workers {
            let first = w * per_worker;
            let count = per_worker.min(args.viewers.saturating_sub(first));
            if count == 0 {
                break;
            }
            let mut child = spawn_worker("storm-worker", &args.common, w, first, count)?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send((w, line));
                }
            });
            children.push(child);
        }
        let reports = vec![None; children.len()];
        Ok(Self {
            children,
            lines,
            counts: Default::default(),
            reports,
        })
    }

    /// Waits until the workers said `what` for `viewers` viewers in all (`<what> <n>`).
    async fn wait_for(&mut self, what: &str, viewers: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + LAUNCH_TIMEOUT;
        while self.counts.get(what).copied().unwrap_or(0) < viewers {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .with_context(|| format!("no `{what}` from every viewer in time"))?
                .context("the workers ended")?;
            self.take(line)?;
        }
        Ok(())
    }

    fn take(&mut self, (worker, line): (usize, String)) -> anyhow::Result<()> {
        if let Some(json) = line.strip_prefix("report ") {
            self.reports[worker] = Some(serde_json::from_str(json)?);
        } else if let Some((what, n)) = line.rsplit_once(' ')
            && let Ok(n) = n.parse::<usize>()
        {
            *self.counts.entry(what.to_string()).or_default() += n;
        }
        Ok(())
    }

    /// Tells every worker to stop and collects their viewers' logs.
    async fn stop(mut self) -> anyhow::Result<Vec<ViewerLog>> {
        for child in &mut self.children {
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(b"stop\n").await?;
                stdin.flush().await?;
            }
        }
        while self.reports.iter().any(Option::is_none) {
            let line = self
                .lines
                .recv()
                .await
                .context("a worker ended without its report")?;
            self.take(line)?;
        }
        Ok(self.reports.into_iter().flatten().flatten().collect())
    }
}

/// What a worker's viewers tell it.
enum Said {
    In,
    Seen(String),
}

/// Runs one worker: connects its viewers, says `ready <n>`, then `seen <drop> <n>` as its
/// viewers see launches, and on `stop` the viewers' logs.
pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let tokens = TokenKeys::new(&Secret::new(args.common.token_secret.clone()));
    let gate = std::sync::Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let (said_tx, mut said) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let mut viewers = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let n = args.first + i;
        let token = tokens
            .mint(&format!("viewer-{n}"), 3600)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let viewer = StormViewer {
            n,
            common: args.common.clone(),
            source: args.source,
            token,
            said: said_tx.clone(),
            stop: stop.clone(),
        };
        viewers.push(tokio::spawn(viewer.run(gate.clone())));
    }
    drop(said_tx);
    let stdin = tokio::spawn(async {
        let mut line = String::new();
        let _ = BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await;
    });
    tokio::pin!(stdin);
    let mut counts = std::collections::HashMap::<String, usize>::new();
    loop {
        tokio::select! {
            _ = &mut stdin => break,
            Some(what) = said.recv() => {
                let line = match what {
                    Said::In => "ready".to_string(),
                    Said::Seen(drop) => format!("seen {drop}"),
                };
                let count = counts.entry(line.clone()).or_default();
                *count += 1;
                if *count == args.count {
                    println!("{line} {count}");
                    std::io::stdout().flush()?;
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let mut logs = Vec::with_capacity(args.count);
    for viewer in viewers {
        logs.push(viewer.await??);
    }
    println!("report {}", serde_json::to_string(&logs)?);
    std::io::stdout().flush()?;
    Ok(())
}

/// One viewer of a storm: connected, reading the room, reconnecting when its gateway goes.
struct StormViewer {
    n: usize,
    common: Common,
    source: Ipv4Addr,
    token: String,
    said: mpsc::UnboundedSender<Said>,
    stop: watch::Receiver<bool>,
}

/// The parts of a frame a storm viewer reads.
#[derive(Deserialize)]
struct FrameHead {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<u64>,
    /// A `drop.countdown`'s drop (`{"id": ...}`).
    #[serde(rename = "drop")]
    launched: Option<Named>,
}

#[derive(Deserialize)]
struct Named {
    id: String,
}

impl StormViewer {
    async fn run(mut self, gate: std::sync::Arc<Semaphore>) -> anyhow::Result<ViewerLog> {
        let mut log = ViewerLog::default();
        let home = self.common.gateways[self.n % self.common.gateways.len()].clone();
        let permit = gate.acquire_owned().await?;
        let (mut socket, hello) = self.connect_first(&home).await?;
        drop(permit);
        let mut last = head(&hello)?.seq.unwrap_or(0);
        let _ = self.said.send(Said::In);
        let mut seen = HashSet::new();
        loop {
            // The socket is given away, so that a dead one is closed before its replacement
            // opens (a worker holds thousands, under the open-file limit).
            if self.read(socket, &mut last, &mut seen, &mut log).await? {
                return Ok(log);
            }
            // The gateway is gone: back in through another, with the last `seq` seen.
            log.lost_at_us.get_or_insert_with(now_us);
            let (resumed, hello) = self.reconnect(&home, last, &mut log).await?;
            log.back_at_us = Some(now_us());
            socket = resumed;
            let _ = head(&hello)?;
        }
    }

    /// The first connection, to the viewer's own gateway (tried three times).
    async fn connect_first(&self, home: &str) -> anyhow::Result<(Socket, String)> {
        let mut attempt = 1;
        loop {
            match connect(&self.common, home, self.source, &self.token, None).await {
                Ok(connected) => return Ok(connected),
                Err(_) if attempt < 3 => attempt += 1,
                Err(e) => return Err(e).with_context(|| format!("viewer {}", self.n)),
            }
        }
    }

    /// Reads frames until told to stop (true) or the connection ends (false).
    async fn read(
        &mut self,
        mut socket: Socket,
        last: &mut u64,
        seen: &mut HashSet<String>,
        log: &mut ViewerLog,
    ) -> anyhow::Result<bool> {
        loop {
            let message = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => return Ok(true),
                message = socket.next() => message,
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ok(false),
            };
            let frame = head(&text)?;
            if follow(last, &frame) {
                log.gaps += 1;
            }
            if frame.kind == "drop.countdown"
                && let Some(Named { id: drop }) = frame.launched
                && seen.insert(drop.clone())
            {
                log.countdowns.push((drop.clone(), now_us()));
                let _ = self.said.send(Said::Seen(drop));
            }
        }
    }

    /// Connects to the gateways other than `lost`, in turn from this viewer's own place,
    /// resuming after `since`.
    async fn reconnect(
        &self,
        lost: &str,
        since: u64,
        log: &mut ViewerLog,
    ) -> anyhow::Result<(Socket, String)> {
        let others: Vec<&String> = self
            .common
            .gateways
            .iter()
            .filter(|g| *g != lost)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if others.is_empty() {
            bail!("no gateway left to reconnect to");
        }
        let mut error = None;
        for attempt in 1..=RECONNECT_ATTEMPTS {
            tokio::time::sleep(backoff(attempt)).await;
            let gateway = others[(self.n + attempt as usize) % others.len()];
            match connect(&self.common, gateway, self.source, &self.token, Some(since)).await {
                Ok(connected) => return Ok(connected),
                Err(e) => {
                    log.failed_attempts += 1;
                    error = Some(e);
                }
            }
        }
        Err(error.expect("at least one attempt"))
            .with_context(|| format!("viewer {} could not get back in", self.n))
    }
}

/// The wait before reconnection attempt `attempt` (from 1), as the shopper SDK draws it.
fn backoff(attempt: u32) -> Duration {
    let window = backoff_window(attempt);
    Duration::from_millis(rand::random_range(0..=window))
}

fn backoff_window(attempt: u32) -> u64 {
    let doublings = attempt.saturating_sub(1).min(30);
    BACKOFF_BASE_MS
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX_MS)
}

/// Moves `last` (the `seq` seen last) past `frame`; true when the frame skipped numbers (a
/// gap). A `resync` sets the place; duplicates and frames without a `seq` change nothing.
fn follow(last: &mut u64, frame: &FrameHead) -> bool {
    match (frame.kind.as_str(), frame.seq) {
        ("resync", Some(seq)) => *last = seq,
        (_, Some(seq)) if seq > *last => {
            let gap = seq > *last + 1;
            *last = seq;
            return gap;
        }
        _ => {}
    }
    false
}

fn head(text: &str) -> anyhow::Result<FrameHead> {
    serde_json::from_str(text).with_context(|| format!("not a frame: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lost: Option<u64>, back: Option<u64>, countdowns: &[(&str, u64)]) -> ViewerLog {
        ViewerLog {
            lost_at_us: lost,
            back_at_us: back,
            gaps: 0,
            failed_attempts: 0,
            countdowns: countdowns
                .iter()
                .map(|(d, at)| (d.to_string(), *at))
                .collect(),
        }
    }

    #[test]
    fn the_report_splits_kept_and_moved_viewers_and_counts_the_missed() {
        let drops = ["d0", "d1", "d2"].map(String::from);
        let launched = [1_000_000, 2_000_000, 3_000_000];
        let logs = [
            log(
                None,
                None,
                &[("d0", 1_010_000), ("d1", 2_020_000), ("d2", 3_030_000)],
            ),
            log(
                Some(2_000_500),
                Some(2_400_000),
                &[("d0", 1_005_000), ("d1", 2_500_000), ("d2", 3_010_000)],
            ),
            log(Some(2_000_100), None, &[("d0", 1_001_000)]),
        ];
        let report = summarize(&logs, &drops, &launched);
        assert_eq!(report.viewers, 3);
        assert_eq!(report.moved, 2);
        assert_eq!(report.missed, 1, "the viewer that never came back");
        assert_eq!(report.back_max_ms, 400.0);
        assert_eq!(report.before.max_ms, 10.0);
        assert_eq!(report.during_kept.max_ms, 20.0);
        assert_eq!(report.during_moved.max_ms, 500.0);
        assert_eq!(report.after.max_ms, 30.0);
    }

    #[test]
    fn a_skipped_seq_is_a_gap_and_a_resync_is_not() {
        let frame = |kind: &str, seq| FrameHead {
            kind: kind.to_string(),
            seq,
            launched: None,
        };
        let mut last = 4;
        assert!(!follow(&mut last, &frame("drop.countdown", Some(5))));
        assert!(!follow(&mut last, &frame("room.viewers", None)));
        assert!(
            !follow(&mut last, &frame("drop.stock", Some(5))),
            "a duplicate"
        );
        assert!(
            follow(&mut last, &frame("drop.stock", Some(7))),
            "6 skipped"
        );
        assert!(!follow(&mut last, &frame("resync", Some(20))));
        assert!(!follow(&mut last, &frame("drop.open", Some(21))));
        assert_eq!(last, 21);
    }

    #[test]
    fn reconnections_back_off_like_the_shopper_sdk() {
        assert_eq!(backoff_window(1), 1_000);
        assert_eq!(backoff_window(2), 2_000);
        assert_eq!(backoff_window(5), 16_000);
        assert_eq!(backoff_window(6), 30_000);
        assert_eq!(backoff_window(40), 30_000);
        assert!(backoff(1) <= Duration::from_secs(1));
    }

    #[test]
    fn a_launch_url_names_its_drop() {
        assert_eq!(
            drop_of("http://127.0.0.1:1/v1/drops/drp_x/launch").unwrap(),
            "drp_x"
        );
        assert!(drop_of("http://127.0.0.1:1/v1/drops/drp_x").is_err());
    }
}
