//! Every alert has a severity, a summary and a runbook section, and promtool unit tests in
//! which it fires and in which it does not.

use std::collections::BTreeSet;

use serde_json::json;

use crate::{monitoring, repo, rules, yaml};

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
