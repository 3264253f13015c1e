//! deploy/monitoring: the alert rules, their PrometheusRule twin in the production overlay,
//! the Grafana dashboard and the runbook agree with each other and with what linkdrop
//! exports. The running application (on the stack, or embedded with
//! `LINKDROP_TEST_BACKEND=embedded`) must export every metric that a rule or a panel reads,
//! and a real Prometheus scraping it evaluates every rule without error or alert; every
//! alert has a severity, a summary and a runbook section, and promtool unit tests in
//! which it fires and in which it does not; the dashboard imports (a row per concern, units,
//! valid PromQL). promtool's own checks and unit tests run in `scripts/test`. Tools come from
//! `scripts/setup` (Debian's prometheus and promtool, kustomize, the test venv's PyYAML);
//! nothing is fetched here.//!
//! [`series`]: which series the rules and the dashboard read, and what a scrape lacks;
//! [`exported`]: a running linkdrop exports them; [`alerts`]: severity, summary, runbook and
//! unit tests of every alert; [`overlay`]: the production overlay's twin of the rules;
//! [`dashboard`]: the dashboard; [`prometheus`]: a real Prometheus scraping linkdrop.

use linkdrop_testkit as support;

mod alerts;
mod dashboard;
mod exported;
mod overlay;
mod prometheus;
mod series;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::test_python;

const ROLES: [&str; 6] = [
    "gateway", "orders", "relay", "settle", "webhooks", "control",
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
