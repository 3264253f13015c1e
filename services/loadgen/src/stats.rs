//! Latency summaries from recorded samples.

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Summarizes latencies given in microseconds.
pub fn latency(mut micros: Vec<u32>) -> Latency {
    if micros.is_empty() {
        return Latency::default();
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let i = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
        f64::from(micros[i]) / 1000.0
    };
    Latency {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: f64::from(*micros.last().unwrap()) / 1000.0,
    }
}

/// When the answers came in: the milliseconds from the start by which 0%, 1%, … 100% of
/// them had arrived (101 points; empty without answers). The picture of a rush.
pub fn progress(mut micros_since_start: Vec<u64>) -> Vec<f64> {
    if micros_since_start.is_empty() {
        return Vec::new();
    }
    micros_since_start.sort_unstable();
    let last = micros_since_start.len() - 1;
    (0..=100)
        .map(|percent| micros_since_start[last * percent / 100] as f64 / 1000.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_has_a_point_per_percent_from_first_to_last() {
        let curve = progress((1..=1000).rev().map(|ms| ms * 1000).collect());
        assert_eq!(curve.len(), 101);
        assert_eq!((curve[0], curve[50], curve[100]), (1.0, 500.0, 1000.0));
        assert!(progress(Vec::new()).is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = latency((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(latency(Vec::new()), Latency::default());
    }
}
