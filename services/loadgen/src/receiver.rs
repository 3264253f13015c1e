//! The webhook benchmark's two ends of plain HTTP: a receiver that answers every POST with
//! 200 on kept-alive connections (and counts them), and the baseline that POSTs to it as
//! fast as it answers over a fixed number of connections — what loopback HTTP alone allows,
//! to compare the dispatcher with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::{Latency, latency};

#[derive(Args, Debug, Clone)]
pub struct ReceiverArgs {
    /// Where to listen, host:port (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
}

/// Serves until killed; prints `listening <addr>` once bound.
pub async fn receive(args: ReceiverArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.addr).await?;
    println!("listening {}", listener.local_addr()?);
    let served = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let served = served.clone();
        tokio::spawn(async move {
            let _ = answer_requests(stream, &served).await;
        });
    }
}

/// Answers each request of one connection with an empty 200, until the peer closes.
async fn answer_requests(stream: TcpStream, served: &AtomicU64) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut length = 0usize;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("content-length")?;
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        stream
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
        served.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Args, Debug, Clone)]
pub struct PostsArgs {
    /// Where to POST, http://host:port/path.
    #[arg(long)]
    url: String,
    #[arg(long)]
    requests: u64,
    /// Kept-alive connections, each sending its share one after another.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Size of each body.
    #[arg(long, default_value_t = 300)]
    body_bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct PostsReport {
    pub requests: u64,
    pub per_s: f64,
    pub latency: Latency,
}

/// POSTs `requests` bodies over `concurrency` connections as fast as they are answered.
pub async fn post_many(args: PostsArgs) -> anyhow::Result<PostsReport> {
    let rest = args
        .url
        .strip_prefix("http://")
        .context("only http:// URLs")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let body = Bytes::from(format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(args.body_bytes.saturating_sub(10))
    ));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (authority, path, body, next) = (
            authority.to_string(),
            format!("/{path}"),
            body.clone(),
            next.clone(),
        );
        let total = args.requests;
        workers.push(tokio::spawn(async move {
            let mut sender = crate::http::connect(&authority).await?;
            let mut micros = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                let request = Request::post(&path)
                    .header("host", &authority)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let response = sender.send_request(request).await?;
                let _ = response.into_body().collect().await;
                micros.push(sent.elapsed().as_micros() as u32);
            }
            anyhow::Ok(micros)
        }));
    }
    let mut micros = Vec::new();
    for worker in workers {
        micros.extend(worker.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(PostsReport {
        requests: micros.len() as u64,
        per_s: micros.len() as f64 / seconds,
        latency: latency(micros),
    })
}
