//! Logs (tracing) and metrics (Prometheus text format), installed once per process.
//!
//! Every role declares its metrics when it starts (a `register_metrics` function in each
//! role crate), so that every series an alert rule or a dashboard panel reads is exported
//! from the first scrape on, at zero, and a counter's first increment shows as an increase.
//! `deploy/monitoring/` holds the rules and the dashboard; `services/linkdrop/tests/
//! monitoring/` checks that everything they use is exported.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the log subscriber; later calls (tests start many apps) are ignored.
pub fn init_logs(config: &TelemetryConfig) {
    // The filter was checked with the configuration (`LINKDROP_LOG`).
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Buckets of every `*_seconds` histogram: from a millisecond (admission, fan-out) to a
/// minute (relay and settlement lag), so that quantiles can be aggregated over processes
/// (`histogram_quantile` over `sum by (le)`).
const SECONDS_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Buckets of `linkdrop_settle_batch_size` (orders per settlement transaction).
const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// The process-wide metrics recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("linkdrop_settle_batch_size".into()),
                        &BATCH_SIZE_BUCKETS,
                    )
                })
                .expect("the buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// The process's own figures (`process_cpu_seconds_total`, `process_open_fds`,
/// `process_max_fds`, `process_resident_memory_bytes`, …), read at every scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

/// Refreshes the process figures; `/metrics` calls it before rendering.
pub fn collect_process_metrics() {
    process_collector().collect();
}

/// The metrics every process has, whatever roles it runs: HTTP problem answers, room
/// events published, readiness, and the process figures. Installs the recorder first.
pub fn register_metrics() {
    let _ = metrics_handle();
    metrics::describe_counter!(
        "linkdrop_http_errors_total",
        "HTTP answers that were problems, by code (internal and unavailable are the 5xx faults)"
    );
    // The codes the alert rules watch, so that their first occurrence counts as an increase.
    for code in ["internal", "unavailable", "overloaded", "rate_limited"] {
        metrics::counter!("linkdrop_http_errors_total", "code" => code).increment(0);
    }
    metrics::describe_counter!(
        "linkdrop_room_events_published_total",
        "Room events published on the room bus"
    );
    metrics::counter!("linkdrop_room_events_published_total").increment(0);
    metrics::describe_gauge!(
        READY,
        "1 when every backend check of /readyz passes, else 0; one series per role the process runs"
    );
    collect_process_metrics();
}

/// The readiness gauge, set from the checks of `/readyz` (also at every scrape).
const READY: &str = "linkdrop_ready";

/// Records the readiness of the process for each of its `roles`.
pub fn record_readiness(roles: &[&'static str], ready: bool) {
    for role in roles {
        metrics::gauge!(READY, "role" => *role).set(if ready { 1.0 } else { 0.0 });
    }
}

/// Shorthand for the role crates: a counter described and exported at zero.
pub fn declare_counter(name: &'static str, help: &'static str) {
    metrics::describe_counter!(name, help);
    metrics::counter!(name).increment(0);
}

/// A gauge described and exported (at zero unless it was set already).
pub fn declare_gauge(name: &'static str, help: &'static str) {
    metrics::describe_gauge!(name, help);
    metrics::gauge!(name).increment(0.0);
}

/// A histogram in seconds, described and exported (empty until the first record).
pub fn declare_seconds(name: &'static str, help: &'static str) {
    metrics::describe_histogram!(name, Unit::Seconds, help);
    let _ = metrics::histogram!(name);
}
