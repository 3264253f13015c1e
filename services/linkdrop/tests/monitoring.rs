//! deploy/monitoring: the alert rules, their PrometheusRule twin in the production overlay,
//! the Grafana dashboard and the runbook agree with each other and with what linkdrop
//! exports. The running application (on the stack, or embedded with
//! `LINKDROP_TEST_BACKEND=embedded`) must export every metric that a rule or a panel reads,
//! and a real Prometheus scraping it evaluates every rule without error or alert; every
//! alert has a severity, a summary and a runbook section, and promtool unit tests in
//! which it fires and in which it does not; the dashboard imports (a row per concern, units,
//! valid PromQL). promtool's own checks and unit tests run in `scripts/test`. Tools come from
//! `scripts/setup` (Debian's prometheus and promtool, kustomize, the test venv's PyYAML);
//! nothing is fetched here.

use linkdrop_testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{embedded, spawn_app, test_python, wait_until_ms};

/// Metrics that only a settlement worker on Kafka exports: on the embedded backend there is
/// no Kafka and the relay settles in process (`linkdrop all` starts no settlement worker).
/// On the stack they must be exported like every other; embedded, they must not be (so
/// that this list stays true).
const STACK_ONLY: [&str; 10] = [
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
const MADE_BY_PROMETHEUS: [&str; 1] = ["up"];

const ROLES: [&str; 6] = [
    "gateway", "orders", "relay", "settle", "webhooks", "control",
];

/// The rows of the dashboard, one per concern, in this order.
const DASHBOARD_ROWS: [&str; 5] = [
    "Audience and fan-out",
    "The rush",
    "Settlement",
    "Webhooks",
    "Process health",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn monitoring() -> PathBuf {
    repo().join("deploy/monitoring")
}

/// Where this test writes what it generates.
fn scratch() -> PathBuf {
    let dir = repo().join("target/monitoring-check");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a command; its stdout, or a panic with everything it said.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run (./scripts/setup installs it): {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every document of a YAML file (or of kustomize's output) as JSON, read by PyYAML.
fn yaml_documents(file: &Path) -> Vec<Value> {
    let json = run(Command::new(test_python())
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))")
        .arg(file));
    serde_json::from_str(&json).unwrap()
}

fn yaml(file: &Path) -> Value {
    yaml_documents(file).remove(0)
}

fn rules() -> Vec<Value> {
    let file = yaml(&monitoring().join("linkdrop-rules.yaml"));
    file["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(monitoring().join("grafana/linkdrop.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// The queries of every panel: (panel title, expression).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or_default().into()))
        })
        .collect()
}

/// The names of the series a PromQL expression reads: identifiers that are neither
/// functions, aggregations, keywords, label names (in `{…}` or after `by`, `without`, `on`,
/// `ignoring`, `group_left`, `group_right`), strings, durations, numbers nor Grafana
/// variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
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
fn names_in_use() -> BTreeMap<String, BTreeSet<String>> {
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
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// The metric (family) a series belongs to: histograms export `_bucket`, `_sum`, `_count`.
fn family(series: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .unwrap_or(series)
}

/// What of `used` a scrape lacks, naming where each is read; what is exported though
/// listed stack-only when `embedded`.
fn check_exported(
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
fn metric_names_are_read_from_promql() {
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
fn a_metric_that_is_not_exported_is_named_with_its_readers() {
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

/// A little of everything (a room, a viewer, a drop launched, an order), then one scrape:
/// every series a rule or a panel reads is there. Metrics of rare events (dead letters,
/// accept errors) are there too: each role declares its metrics when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_read_is_exported() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_monitoring").await;
    let mut viewer = app.viewer(&room_id, &app.token("viewer-1")).await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    let opens_at_ms = app.launch(&drop_id, 0).await;
    let countdown = viewer.next_of_type("drop.countdown").await;
    assert_eq!(countdown["drop"]["id"], drop_id.as_str(), "{countdown}");
    wait_until_ms(opens_at_ms).await;
    let order = app.order(&drop_id, &app.token("shopper-1"), "k1", 1).await;
    assert_eq!(order.status, 201, "{order:?}");

    let scrape = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported = exported_names(&scrape);
    let problems = check_exported(&names_in_use(), &exported, embedded());
    assert!(
        problems.is_empty(),
        "{}\n\nthe scrape:\n{scrape}",
        problems.join("\n")
    );
    // What this traffic did shows, and the process is ready in each of its roles.
    for (series, at_least) in [
        ("linkdrop_drops_launched_total", 1.0),
        (
            "linkdrop_orders_total{outcome=\"reserved\",how=\"fresh\"}",
            1.0,
        ),
        ("linkdrop_admission_seconds_count", 1.0),
        ("linkdrop_gateway_connections", 1.0),
        ("process_open_fds", 1.0),
    ] {
        assert!(
            value(&scrape, series) >= at_least,
            "{series} below {at_least}:\n{scrape}"
        );
    }
    for role in ROLES {
        assert_eq!(
            value(&scrape, &format!("linkdrop_ready{{role=\"{role}\"}}")),
            1.0,
            "{scrape}"
        );
    }
}

/// The value of one series of a scrape (0 when absent).
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook_section() {
    let runbook = std::fs::read_to_string(repo().join("docs/operating/alerts.md")).unwrap();
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|title| title.trim().to_string())
        .collect();
    let mut alerts = BTreeSet::new();
    for rule in rules() {
        let alert = rule["alert"]
            .as_str()
            .unwrap_or_else(|| panic!("only alerts here: {rule}"));
        assert!(alerts.insert(alert.to_string()), "{alert} twice");
        assert!(
            ["critical", "warning", "info"].contains(&rule["labels"]["severity"].as_str().unwrap()),
            "{alert}: severity"
        );
        let annotations = &rule["annotations"];
        for key in ["summary", "description"] {
            assert!(
                annotations[key].as_str().is_some_and(|s| s.len() > 10),
                "{alert}: {key}"
            );
        }
        assert_eq!(
            annotations["runbook_url"],
            format!("docs/operating/alerts.md#{}", alert.to_lowercase()),
            "{alert}"
        );
        assert!(
            sections.contains(alert),
            "docs/operating/alerts.md has no section `### {alert}`"
        );
    }
    let stale: Vec<_> = sections
        .iter()
        .filter(|s| s.starts_with("Linkdrop") && !alerts.contains(*s))
        .collect();
    assert!(
        stale.is_empty(),
        "runbook sections without a rule: {stale:?}"
    );
    assert!(alerts.len() >= 20, "{alerts:?}");
}

#[test]
fn every_alert_is_unit_tested_firing_and_not_firing() {
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(monitoring().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        files += 1;
        let tests = yaml(&path);
        assert_eq!(
            tests["rule_files"],
            json!(["../linkdrop-rules.yaml"]),
            "{path:?}"
        );
        for test in tests["tests"].as_array().unwrap() {
            for case in test["alert_rule_test"].as_array().unwrap() {
                let alert = case["alertname"].as_str().unwrap().to_string();
                match case["exp_alerts"].as_array() {
                    Some(expected) if !expected.is_empty() => fires.insert(alert),
                    _ => quiet.insert(alert),
                };
            }
        }
    }
    assert!(files > 0);
    for rule in rules() {
        let alert = rule["alert"].as_str().unwrap();
        assert!(
            fires.contains(alert),
            "no promtool test in which {alert} fires"
        );
        assert!(
            quiet.contains(alert),
            "no promtool test in which {alert} does not fire"
        );
    }
}

/// `kustomize build` of the production overlay, as documents.
fn production() -> Vec<Value> {
    let cache = std::env::var("LINKDROP_CACHE_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/linkdrop",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let yaml = run(Command::new(format!("{cache}/go-tools/bin/kustomize"))
        .arg("build")
        .arg(repo().join("deploy/k8s/overlays/production")));
    let file = scratch().join("production.yaml");
    std::fs::write(&file, yaml).unwrap();
    yaml_documents(&file)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The production overlay's PrometheusRule holds exactly the rules of
/// deploy/monitoring/linkdrop-rules.yaml (scripts/monitoring-rules writes it), and its
/// PodMonitor scrapes every role's pods under the job the rules expect.
#[test]
fn the_production_overlay_carries_the_rules_and_scrapes_every_role() {
    let docs = production();
    let rule = find(&docs, "PrometheusRule", "linkdrop");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "linkdrop");
    let plain = yaml(&monitoring().join("linkdrop-rules.yaml"));
    assert!(
        rule["spec"] == plain,
        "deploy/k8s/overlays/production/prometheus-rules.yaml differs from deploy/monitoring/linkdrop-rules.yaml: run scripts/monitoring-rules"
    );

    let monitor = find(&docs, "PodMonitor", "linkdrop");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let selected = &monitor["spec"]["selector"]["matchExpressions"][0];
    assert_eq!(selected["operator"], "In");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert!(
        endpoint["relabelings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["targetLabel"] == "job" && r["replacement"] == "linkdrop"),
        "{endpoint}"
    );
    for role in ROLES {
        let deployment = find(&docs, "Deployment", &format!("linkdrop-{role}"));
        let template = &deployment["spec"]["template"];
        let label = &template["metadata"]["labels"][selected["key"].as_str().unwrap()];
        assert!(
            selected["values"].as_array().unwrap().contains(label),
            "the PodMonitor does not select the {role} pods ({label})"
        );
        let ports = &template["spec"]["containers"][0]["ports"];
        assert!(
            ports
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == endpoint["port"]),
            "{role} has no port {}",
            endpoint["port"]
        );
    }
}

/// Whether promtool accepts a rules file.
fn promtool_check_rules(file: &Path) -> Result<(), String> {
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file)
        .output()
        .expect("promtool runs (./scripts/setup installs it)");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr))
    }
}

/// The dashboard's queries as recording rules, Grafana's variables given values, so that
/// promtool checks their PromQL.
fn queries_as_rules(queries: &[(String, String)]) -> Value {
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$instance", ".*");
            json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    json!({"groups": [{"name": "dashboard", "rules": rules}]})
}

#[test]
fn the_dashboard_imports_with_a_row_per_concern_units_and_valid_queries() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "linkdrop");
    assert!(dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].as_i64().unwrap() >= 36);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(datasource["query"], "prometheus");
    let ds_uid = format!("${{{}}}", datasource["name"].as_str().unwrap());

    let panels = dashboard["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows, DASHBOARD_ROWS);
    let mut ids = BTreeSet::new();
    let mut cells: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut in_row = BTreeMap::new();
    let mut row = "";
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(ids.insert(panel["id"].as_i64().unwrap()), "{title}: id");
        let pos = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            pos[k]
                .as_i64()
                .unwrap_or_else(|| panic!("{title}: gridPos"))
        });
        assert!(x >= 0 && w > 0 && x + w <= 24 && h > 0, "{title}: {pos}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if panel["type"] == "row" {
            row = title;
            continue;
        }
        *in_row.entry(row).or_insert(0) += 1;
        assert!(
            ["timeseries", "stat"].contains(&panel["type"].as_str().unwrap()),
            "{title}"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{title}: no unit"
        );
        assert_eq!(panel["datasource"]["uid"], ds_uid.as_str(), "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], ds_uid.as_str(), "{title}");
            assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    for row in DASHBOARD_ROWS {
        assert!(in_row.get(row).is_some_and(|n| *n >= 2), "row {row}");
    }

    let queries = dashboard_queries(&dashboard);
    let file = scratch().join("dashboard-queries.yaml");
    std::fs::write(&file, queries_as_rules(&queries).to_string()).unwrap();
    promtool_check_rules(&file).unwrap_or_else(|e| panic!("the dashboard's PromQL: {e}"));
    // The check can fail.
    let broken = scratch().join("broken-queries.yaml");
    let one = [("broken".to_string(), "sum(rate(x[1m])".to_string())];
    std::fs::write(&broken, queries_as_rules(&one).to_string()).unwrap();
    assert!(promtool_check_rules(&broken).is_err());
}

/// A Prometheus server (Debian's, from `scripts/setup`) scraping linkdrop under the job
/// `linkdrop` every second and evaluating the rules every second; killed when dropped.
struct Prometheus {
    url: String,
    child: tokio::process::Child,
    dir: PathBuf,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let dir = scratch().join(format!("prometheus-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [monitoring().join("linkdrop-rules.yaml")],
            "scrape_configs": [{
                "job_name": "linkdrop",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [target]}],
            }],
        });
        std::fs::write(dir.join("prometheus.yaml"), config.to_string()).unwrap();
        let listen = format!("127.0.0.1:{}", support::processes::free_port());
        let mut child = tokio::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yaml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus runs (./scripts/setup installs it)");
        // Ready when it says so.
        let stderr = child.stderr.take().unwrap();
        let ready = async {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut said = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Server is ready to receive web requests") {
                    // Keep reading, so that it never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Ok(());
                }
                said.push(line);
            }
            Err(said.join("\n"))
        };
        match tokio::time::timeout(support::PATIENCE, ready).await {
            Ok(Ok(())) => {}
            Ok(Err(said)) => panic!("prometheus stopped:\n{said}"),
            Err(_) => panic!("prometheus did not get ready"),
        }
        Prometheus {
            url: format!("http://{listen}"),
            child,
            dir,
        }
    }

    async fn api(&self, path: &str) -> Value {
        let body: Value = reqwest::get(format!("{}/api/v1/{path}", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{path}: {body}");
        body["data"].clone()
    }

    /// Asks again (every 100 ms, within [`support::PATIENCE`]) until `done` holds for the
    /// answer to `path`; that answer.
    async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + support::PATIENCE;
        loop {
            let data = self.api(path).await;
            if done(&data) {
                return data;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus: {what} did not happen; {path}: {data}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last evaluation of every rule group.
fn evaluations(rules: &Value) -> Vec<String> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["lastEvaluation"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A real Prometheus scrapes a running linkdrop and evaluates every rule on what it
/// scraped: each evaluates without error, and on this healthy installation none is pending
/// or firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_linkdrop_and_evaluates_every_rule_without_alerting() {
    let app = spawn_app().await;
    let prometheus = Prometheus::start(&app.addr.to_string()).await;
    let ready = prometheus
        .until(
            "query?query=linkdrop_ready%7Bjob%3D%22linkdrop%22%7D%20%3D%3D%201",
            "a scrape of linkdrop, ready in every role",
            |data| {
                data["result"]
                    .as_array()
                    .is_some_and(|r| r.len() == ROLES.len())
            },
        )
        .await;
    let mut roles: Vec<&str> = ready["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["metric"]["role"].as_str().unwrap())
        .collect();
    roles.sort();
    let mut expected = ROLES;
    expected.sort();
    assert_eq!(roles, expected);

    // Every group evaluated again after that scrape.
    let before = evaluations(&prometheus.api("rules").await);
    let evaluated_rules = prometheus
        .until(
            "rules",
            "an evaluation of every group after the scrape",
            |data| {
                evaluations(data)
                    .iter()
                    .zip(&before)
                    .all(|(now, then)| now != then)
            },
        )
        .await;
    let mut evaluated = 0;
    let mut problems = Vec::new();
    for group in evaluated_rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            evaluated += 1;
            let name = rule["name"].as_str().unwrap();
            if rule["health"] != "ok" {
                problems.push(format!("{name}: {} {}", rule["health"], rule["lastError"]));
            }
            if rule["state"] != "inactive" {
                problems.push(format!("{name} is {}: {}", rule["state"], rule["alerts"]));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(evaluated, rules().len());
}
