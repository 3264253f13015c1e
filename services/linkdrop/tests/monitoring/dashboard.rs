//! The Grafana dashboard: it imports, a row per concern in order, units, and queries that
//! promtool accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::{monitoring, scratch};

/// The rows of the dashboard, one per concern, in this order.
pub const DASHBOARD_ROWS: [&str; 5] = [
    "Audience and fan-out",
    "The rush",
    "Settlement",
    "Webhooks",
    "Process health",
];
pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(monitoring().join("grafana/linkdrop.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// The queries of every panel: (panel title, expression).
pub fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
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
