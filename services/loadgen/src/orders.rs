//! Order storms: `n` requests, each from its own shopper with its own Idempotency-Key,
//! sent by `concurrency` connections — as fast as they are answered (saturation), or at a
//! fixed rate, reached at once or ramped up to (latency measured from each request's
//! scheduled time, so a stalled server is not hidden by requests that were never sent).
//! Answers other than 201 and 409 (sold out, limit reached: what a storm expects) and
//! requests with no answer count as errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::io::Write;

use clap::Args;
use linkdrop_domain::secret::Secret;
use linkdrop_domain::tokens::TokenKeys;
use serde::Serialize;

use crate::http::RawConnection;
use crate::limits::{Limits, Verdict, error_rate};
use crate::stats::{Latency, latency, progress};

#[derive(Args, Debug, Clone)]
pub struct OrdersArgs {
    /// linkdrop's address, host:port.
    #[arg(long)]
    addr: String,
    /// The drop to order from.
    #[arg(long)]
    drop: String,
    /// The shopper-token secret (LINKDROP_JWT_SECRET of the server).
    #[arg(long, env = "LINKDROP_JWT_SECRET")]
    jwt_secret: String,
    /// Requests in all.
    #[arg(long)]
    requests: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Requests per second; omitted = as fast as answered.
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds over which the rate climbs from zero to `--rate` (then holds).
    #[arg(long, requires = "rate", default_value_t = 0.0)]
    ramp_s: f64,
    /// Shopper ids are `<prefix><n>`; vary it between runs against the same drop.
    #[arg(long, default_value = "shopper-")]
    user_prefix: String,
    #[command(flatten)]
    limits: Limits,
}

/// The body of every order request.
const BODY: &[u8] = br#"{"qty":1}"#;

/// What a storm came to.
#[derive(Debug, Serialize)]
pub struct Report {
    pub requests: u64,
    pub seconds: f64,
    /// Answers per second, whatever their status.
    pub answers_per_s: f64,
    /// 201 answers per second.
    pub accepted_per_s: f64,
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection errors).
    pub failed: u64,
    /// Failed requests and answers other than 201 and 409, per request.
    pub error_rate: f64,
    pub latency: Latency,
    /// Milliseconds from the start by which each percent of the answers had arrived.
    pub progress_ms: Vec<f64>,
    pub verdict: Verdict,
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    failed: u64,
    micros: Vec<u32>,
    /// When each answer arrived, in microseconds from the start of the storm.
    answered_at: Vec<u64>,
}

pub async fn run(args: OrdersArgs) -> anyhow::Result<Report> {
    // Every shopper's token is made before the clock starts: the storm measures linkdrop.
    let tokens = TokenKeys::new(&Secret::new(args.jwt_secret.clone()));
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..args.requests)
            .map(|n| tokens.mint(&format!("{}{n}", args.user_prefix), 3600))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let args = args.clone();
        let tokens = tokens.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            client(args, tokens, next, started).await
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await??;
        for (status, n) in tally.by_status {
            *total.by_status.entry(status).or_default() += n;
        }
        total.failed += tally.failed;
        total.micros.extend(tally.micros);
        total.answered_at.extend(tally.answered_at);
    }
    let seconds = started.elapsed().as_secs_f64();
    let answers: u64 = total.by_status.values().sum();
    let accepted = total.by_status.get(&201).copied().unwrap_or(0);
    let errors = total.failed + errors(&total.by_status);
    let latency = latency(total.micros);
    Ok(Report {
        requests: args.requests,
        seconds,
        answers_per_s: answers as f64 / seconds,
        accepted_per_s: accepted as f64 / seconds,
        by_status: total.by_status,
        failed: total.failed,
        error_rate: error_rate(errors, args.requests),
        verdict: args.limits.judge(latency.p99_ms, errors, args.requests),
        latency,
        progress_ms: progress(total.answered_at),
    })
}

/// Answers that are neither an order (201) nor an expected refusal (409).
fn errors(by_status: &BTreeMap<u16, u64>) -> u64 {
    by_status
        .iter()
        .filter(|(status, _)| !matches!(status, 201 | 409))
        .map(|(_, n)| n)
        .sum()
}

/// When request `n` is due, in seconds from the start, at `rate` per second reached by a
/// linear climb over `ramp_s` seconds: during the climb `rate·t²/(2·ramp_s)` requests are
/// due by time `t`, after it `rate` more each second.
fn due_at_s(n: u64, rate: u64, ramp_s: f64) -> f64 {
    let (n, rate) = (n as f64, rate as f64);
    let during_ramp = rate * ramp_s / 2.0;
    if n < during_ramp {
        (2.0 * n * ramp_s / rate).sqrt()
    } else {
        ramp_s + (n - during_ramp) / rate
    }
}

/// One connection: takes the next request number until all are sent.
async fn client(
    args: OrdersArgs,
    tokens: Arc<Vec<String>>,
    next: Arc<AtomicU64>,
    started: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut connection = RawConnection::open(&args.addr).await?;
    let head = format!(
        "POST /v1/drops/{}/orders HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        args.drop,
        args.addr,
        BODY.len()
    );
    let mut request = Vec::with_capacity(1024);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= args.requests {
            return Ok(tally);
        }
        let scheduled = match args.rate {
            Some(rate) => {
                let at = started + Duration::from_secs_f64(due_at_s(n, rate, args.ramp_s));
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        request.clear();
        request.extend_from_slice(head.as_bytes());
        write!(
            request,
            "authorization: Bearer {}\r\nidempotency-key: k{n}\r\n\r\n",
            tokens[n as usize]
        )?;
        request.extend_from_slice(BODY);
        match connection.round_trip(&request).await {
            Ok(status) => {
                *tally.by_status.entry(status).or_default() += 1;
                tally
                    .micros
                    .push(scheduled.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                tally.answered_at.push(started.elapsed().as_micros() as u64);
            }
            Err(_) => {
                tally.failed += 1;
                connection = RawConnection::open(&args.addr).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_ramp_requests_are_evenly_spaced() {
        assert_eq!(due_at_s(0, 100, 0.0), 0.0);
        assert_eq!(due_at_s(250, 100, 0.0), 2.5);
    }

    #[test]
    fn a_ramp_sends_half_its_full_rate_on_average_then_the_full_rate() {
        // 100/s reached over 10 s: 500 requests during the climb, then 100 a second.
        assert_eq!(due_at_s(500, 100, 10.0), 10.0);
        assert_eq!(due_at_s(600, 100, 10.0), 11.0);
        // A quarter of the climb's requests are due halfway through it.
        assert!((due_at_s(125, 100, 10.0) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn only_unexpected_answers_are_errors() {
        let by_status = BTreeMap::from([(201, 10), (409, 90), (429, 2), (503, 1)]);
        assert_eq!(errors(&by_status), 3);
    }
}
