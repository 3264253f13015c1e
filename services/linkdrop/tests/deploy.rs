//! deploy/: the Kubernetes manifests (base and the production overlay, rendered by
//! kustomize) pass strict validation against the Kubernetes schemas and have what
//! operators rely on (probes, autoscaling, disruption budgets, drain time, non-root); the
//! Compose file passes the Compose specification's schema. The validators must be able to
//! fail: a broken manifest and a broken Compose file are refused. Tools come from
//! `scripts/setup` (kustomize and the Compose schema in the cache, kubernetes-validate in
//! the test venv); nothing is fetched here.

use linkdrop_testkit as support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use linkdrop_infra::config::{Config, RedisTarget};
use serde_json::Value;
use support::test_python;

/// The Kubernetes version whose schemas the manifests are checked against.
const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn go_tools() -> PathBuf {
    let cache = std::env::var("LINKDROP_CACHE_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/linkdrop",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    PathBuf::from(cache).join("go-tools")
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

/// `kustomize build <dir>`, written to a file next to the other test output.
fn render(overlay: &str) -> PathBuf {
    let yaml = run(Command::new(go_tools().join("bin/kustomize"))
        .arg("build")
        .arg(repo().join("deploy/k8s").join(overlay)));
    let out = repo().join("target/deploy-check");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join(format!("{}.yaml", overlay.replace('/', "-")));
    std::fs::write(&file, yaml).unwrap();
    file
}

/// Whether kubernetes-validate accepts every resource of `file` (strict: no unknown fields).
fn kubernetes_validate(file: &Path) -> Result<(), String> {
    let validator = Path::new(&test_python()).with_file_name("kubernetes-validate");
    let output = Command::new(validator)
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs (./scripts/setup installs it)");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() && !said.contains("ERROR") {
        Ok(())
    } else {
        Err(said)
    }
}

/// Every document of a YAML file as JSON.
fn documents(file: &Path) -> Vec<Value> {
    let json = run(Command::new(test_python()).arg("-c").arg(
        "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
    ).arg(file));
    serde_json::from_str(&json).unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

const ROLES: [&str; 6] = [
    "control", "gateway", "orders", "relay", "settle", "webhooks",
];

#[test]
fn the_kubernetes_manifests_validate_and_have_probes_autoscaling_and_budgets() {
    for overlay in ["base", "overlays/production"] {
        let file = render(overlay);
        kubernetes_validate(&file).unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let docs = documents(&file);
        for role in ROLES {
            let deployment = find(&docs, "Deployment", &format!("linkdrop-{role}"));
            let pod = &deployment["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            assert_eq!(container["args"][0], role, "{overlay} {role}");
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        }
        for role in ["gateway", "orders"] {
            let hpa = find(
                &docs,
                "HorizontalPodAutoscaler",
                &format!("linkdrop-{role}"),
            );
            assert!(hpa["spec"]["maxReplicas"].as_i64() > hpa["spec"]["minReplicas"].as_i64());
        }
        for role in ["control", "gateway", "orders"] {
            find(&docs, "PodDisruptionBudget", &format!("linkdrop-{role}"));
            find(&docs, "Service", &format!("linkdrop-{role}"));
        }
        let gateway = find(&docs, "Deployment", "linkdrop-gateway");
        let grace = gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap();
        assert!(grace >= 60, "gateways need time to drain, got {grace} s");
        find(&docs, "Job", "linkdrop-migrate");
        find(&docs, "ConfigMap", "linkdrop-config");
        find(&docs, "Secret", "linkdrop-secrets");
    }
    let production = documents(&render("overlays/production"));
    let gateway = find(&production, "Deployment", "linkdrop-gateway");
    assert_eq!(gateway["metadata"]["namespace"], "linkdrop");
    assert_eq!(gateway["spec"]["replicas"], 6);
    assert_eq!(
        gateway["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/linkdrop/linkdrop:0.1.0"
    );
    let config = find(&production, "ConfigMap", "linkdrop-config");
    assert_eq!(config["data"]["LINKDROP_REDIS_DURABILITY"], "always");
    // What the pods get is a configuration linkdrop accepts: a Redis Cluster and a
    // replicated orders topic. The Secret's placeholders are refused, so that a deployment
    // nobody filled in stops at once, naming the key.
    let as_env = |map: &Value| -> BTreeMap<String, String> {
        map.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    };
    let settings = as_env(&config["data"]);
    let parsed =
        Config::from_sources(None, &settings).expect("linkdrop accepts the production settings");
    assert!(
        matches!(parsed.redis.require().unwrap(), RedisTarget::Cluster(nodes) if nodes.len() == 3)
    );
    let secrets = find(&production, "Secret", "linkdrop-secrets");
    let mut with_placeholders = settings.clone();
    with_placeholders.extend(as_env(&secrets["stringData"]));
    let refused = Config::from_sources(None, &with_placeholders).unwrap_err();
    assert_eq!(refused.key, "LINKDROP_WEBHOOK_SECRET_KEY");
    assert_eq!(parsed.kafka.replication, 3);
}

#[test]
fn a_broken_manifest_is_refused() {
    let out = repo().join("target/deploy-check");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: three\n  \
         selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    \
         spec: {containers: [{name: c, image: i, colour: blue}]}\n",
    )
    .unwrap();
    let refused = kubernetes_validate(&file).expect_err("the validator refuses it");
    assert!(
        refused.contains("replicas") || refused.contains("three"),
        "{refused}"
    );
}

/// Checks a Compose file against the Compose specification's schema.
fn compose_check(file: &Path) -> Result<(), String> {
    let script = "import json, sys, yaml, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  doc = yaml.safe_load(open(sys.argv[2]))\n\
                  errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)\n\
                  print('\\n'.join(f'{list(e.path)}: {e.message}' for e in errors))\n\
                  sys.exit(1 if errors else 0)";
    let output = Command::new(test_python())
        .args(["-c", script])
        .arg(go_tools().join("compose-spec.json"))
        .arg(file)
        .output()
        .expect("the test venv's Python runs");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr))
    }
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let file = repo().join("deploy/compose.yaml");
    compose_check(&file).unwrap_or_else(|e| panic!("deploy/compose.yaml: {e}"));
    let compose = &documents(&file)[0];
    for service in ROLES
        .into_iter()
        .chain(["redis", "postgres", "kafka", "migrate"])
    {
        assert!(
            compose["services"][service].is_object(),
            "no service {service}"
        );
    }
    for role in ROLES {
        assert_eq!(compose["services"][role]["command"][0], role);
    }

    let broken = repo().join("target/deploy-check/broken-compose.yaml");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, "services:\n  web:\n    image: x\n    ports: 5\n").unwrap();
    let refused = compose_check(&broken).expect_err("a wrong type is refused");
    assert!(refused.contains("ports"), "{refused}");
}
