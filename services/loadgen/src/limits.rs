//! Pass/fail limits of a load test (what k6 calls thresholds), judged against its report:
//! the run fails when its 99th percentile latency or its share of errors is over the limit.

use clap::Args;
use serde::Serialize;

#[derive(Args, Debug, Clone, Default)]
pub struct Limits {
    /// Fail when the 99th percentile latency is over this many milliseconds.
    #[arg(long)]
    pub p99_max_ms: Option<f64>,
    /// Fail when more than this share of the requests (or viewers) are errors, e.g. 0.01.
    #[arg(long)]
    pub error_rate_max: Option<f64>,
}

/// Whether a run kept within its limits, and which it broke.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    pub breaches: Vec<String>,
}

impl Limits {
    /// Judges a run of `total` requests, `errors` of them errors, with latency `p99_ms`.
    pub fn judge(&self, p99_ms: f64, errors: u64, total: u64) -> Verdict {
        let mut breaches = Vec::new();
        if let Some(max) = self.p99_max_ms
            && p99_ms > max
        {
            breaches.push(format!("p99 {p99_ms:.1} ms is over {max} ms"));
        }
        let rate = error_rate(errors, total);
        if let Some(max) = self.error_rate_max
            && rate > max
        {
            breaches.push(format!(
                "error rate {rate:.4} ({errors} of {total}) is over {max}"
            ));
        }
        Verdict {
            passed: breaches.is_empty(),
            breaches,
        }
    }
}

/// Errors per request; none when nothing was sent.
pub fn error_rate(errors: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        errors as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_within_its_limits_passes() {
        let limits = Limits {
            p99_max_ms: Some(50.0),
            error_rate_max: Some(0.01),
        };
        let verdict = limits.judge(49.9, 1, 100);
        assert!(verdict.passed, "{verdict:?}");
        assert!(verdict.breaches.is_empty());
    }

    #[test]
    fn each_broken_limit_is_named() {
        let limits = Limits {
            p99_max_ms: Some(50.0),
            error_rate_max: Some(0.01),
        };
        let verdict = limits.judge(50.1, 2, 100);
        assert!(!verdict.passed);
        assert_eq!(verdict.breaches.len(), 2, "{verdict:?}");
        assert!(verdict.breaches[0].starts_with("p99 50.1 ms"));
        assert!(verdict.breaches[1].contains("2 of 100"));
    }

    #[test]
    fn no_limits_always_pass() {
        assert!(Limits::default().judge(1e9, 100, 100).passed);
    }
}
