//! The series that the alert rules and the dashboard read (names parsed from PromQL), the
//! series a scrape exports, and what of the first a scrape lacks.

use std::collections::{BTreeMap, BTreeSet};

use crate::dashboard::{dashboard, dashboard_queries};
use crate::rules;

/// Metrics that only a settlement worker on Kafka exports: on the embedded backend there is
/// no Kafka and the relay settles in process (`linkdrop all` starts no settlement worker).
/// On the stack they must be exported like every other; embedded, they must not be (so
/// that this list stays true).
pub const STACK_ONLY: [&str; 10] = [
    "linkdrop_settle_consumer_lag",
    "linkdrop_settle_latency_seconds",
    "linkdrop_settle_batch_size",
    "linkdrop_settle_batch_seconds",
    "linkdrop_settle_inserted_total",
    "linkdrop_settle_duplicates_total",
    "linkdrop_settle_drawn_total",
    "linkdrop_settle_paid_total",
    "linkdrop_settle_expired_total",
    "linkdrop_settle_malformed_total",
];

/// Series that Prometheus makes itself for every target, not linkdrop.
pub const MADE_BY_PROMETHEUS: [&str; 1] = ["up"];
/// The names of the series a PromQL expression reads: identifiers that are neither
/// functions, aggregations, keywords, label names (in `{…}` or after `by`, `without`, `on`,
/// `ignoring`, `group_left`, `group_right`), strings, durations, numbers nor Grafana
/// variables.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 20] = [
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "inf",
        "nan",
        // Aggregations, which may have `by (…)` between their name and their `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut labels_follow = false;
    let mut i = 0;
    // Skips from an opening character to its closing one, strings included.
    let skip = |mut i: usize, close: char| -> usize {
        while i < chars.len() && chars[i] != close {
            if matches!(chars[i], '"' | '\'' | '`') {
                let quote = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        i + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip(i + 1, c);
        } else if c == '{' {
            i = skip(i + 1, '}');
        } else if c == '[' {
            i = skip(i + 1, ']');
        } else if c == '(' && labels_follow {
            labels_follow = false;
            i = skip(i + 1, ')');
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable, a number or a duration.
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.{}".contains(chars[i]))
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if LABEL_LISTS.contains(&word.as_str()) {
                labels_follow = true;
            } else if KEYWORDS.contains(&word.to_lowercase().as_str()) || next == Some(&'(') {
                // A keyword, or a function or aggregation.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every series a rule expression or a panel query reads, with where it is read.
pub fn names_in_use() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in rules() {
        let alert = rule["alert"].as_str().unwrap();
        for name in metric_names(rule["expr"].as_str().unwrap()) {
            used.entry(name)
                .or_default()
                .insert(format!("rule {alert}"));
        }
    }
    for (panel, expr) in dashboard_queries(&dashboard()) {
        for name in metric_names(&expr) {
            used.entry(name)
                .or_default()
                .insert(format!("panel {panel:?}"));
        }
    }
    used
}

/// The names of the series in a scrape (Prometheus text format).
pub fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// The metric (family) a series belongs to: histograms export `_bucket`, `_sum`, `_count`.
pub fn family(series: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .unwrap_or(series)
}

/// What of `used` a scrape lacks, naming where each is read; what is exported though
/// listed stack-only when `embedded`.
pub fn check_exported(
    used: &BTreeMap<String, BTreeSet<String>>,
    exported: &BTreeSet<String>,
    embedded: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, readers) in used {
        let stack_only = STACK_ONLY.contains(&family(name));
        if MADE_BY_PROMETHEUS.contains(&name.as_str()) {
            continue;
        }
        match (exported.contains(name), embedded && stack_only) {
            (false, false) => problems.push(format!(
                "{name} is not exported, but read by {}",
                Vec::from_iter(readers.iter().cloned()).join(", ")
            )),
            (true, true) => problems.push(format!(
                "{name} is exported on the embedded backend, but listed in STACK_ONLY"
            )),
            _ => {}
        }
    }
    problems
}

#[test]
pub fn metric_names_are_read_from_promql() {
    let names = |expr| Vec::from_iter(metric_names(expr));
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (instance, le) (rate(a_seconds_bucket{le!="x}", job=~"b|c"}[5m] offset 1h)))"#
        ),
        ["a_seconds_bucket"]
    );
    assert_eq!(
        names(
            "max by (role) (ready) == 0 or absent(ready{role=\"settle\"}) and on (x) group_left (y) z > bool 0.8"
        ),
        ["ready", "z"]
    );
    assert_eq!(
        names(
            "sum(rate(x_total{instance=~\"$instance\"}[$__rate_interval])) / (max_fds > 0) or vector(0)"
        ),
        ["max_fds", "x_total"]
    );
    assert_eq!(names("sum without(role) (up) * 1e3"), ["up"]);
}

#[test]
pub fn a_metric_that_is_not_exported_is_named_with_its_readers() {
    let used = BTreeMap::from([
        (
            "linkdrop_gone_total".to_string(),
            BTreeSet::from(["rule LinkdropGone".to_string()]),
        ),
        (
            "linkdrop_settle_consumer_lag".to_string(),
            BTreeSet::from(["rule LinkdropSettleLagHigh".to_string()]),
        ),
        ("up".to_string(), BTreeSet::from(["rule X".to_string()])),
    ]);
    let exported = BTreeSet::from(["linkdrop_settle_consumer_lag".to_string()]);
    assert_eq!(
        check_exported(&used, &exported, false),
        ["linkdrop_gone_total is not exported, but read by rule LinkdropGone"]
    );
    assert_eq!(
        check_exported(&used, &exported, true),
        [
            "linkdrop_gone_total is not exported, but read by rule LinkdropGone",
            "linkdrop_settle_consumer_lag is exported on the embedded backend, but listed in STACK_ONLY"
        ]
    );
    assert!(check_exported(&used, &BTreeSet::new(), true).len() == 1);
}
