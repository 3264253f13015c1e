//! The production overlay carries the alert rules as a PrometheusRule and scrapes every
//! role with a PodMonitor.

use std::process::Command;

use serde_json::Value;

use crate::{ROLES, monitoring, repo, run, scratch, yaml, yaml_documents};

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
