//! The crate graph says who owns what (docs/architecture.md): the domain crate stands on no
//! web, database, Redis or Kafka library and on no other linkdrop crate; no role crate
//! depends on another role crate; every role depends only on the domain, infrastructure and
//! records crates. The test kit (`linkdrop-testkit`) is for tests only: a dev-dependency,
//! never a normal dependency of any crate. And no crate declares a dependency it does not
//! use. Read from `cargo metadata` and the crates' sources, so that a change to a
//! Cargo.toml that breaks the rule fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

const ROLES: [&str; 6] = [
    "linkdrop-gateway",
    "linkdrop-orders",
    "linkdrop-relay",
    "linkdrop-settle",
    "linkdrop-webhooks",
    "linkdrop-control",
];
/// What a role may stand on, of linkdrop's own crates.
const SHARED: [&str; 4] = [
    "linkdrop-domain",
    "linkdrop-infra",
    "linkdrop-records",
    "linkdrop-engine",
];
/// The crate of the integration tests' kit: it starts the whole binary, so no crate may
/// build on it but tests.
const TEST_KIT: &str = "linkdrop-testkit";
/// Libraries the domain crate must not need.
const PLATFORM: [&str; 9] = [
    "axum", "hyper", "redis", "sqlx", "rdkafka", "tokio", "metrics", "tracing", "mlua",
];

struct Package {
    name: String,
    dir: PathBuf,
    /// Normal and dev dependencies, by name as written in Cargo.toml.
    deps: Vec<(String, bool)>,
}

fn packages() -> Vec<Package> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().unwrap().to_string(),
            dir: Path::new(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_path_buf(),
            deps: p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_string(),
                        d["kind"].as_str() == Some("dev"),
                    )
                })
                .collect(),
        })
        .collect()
}

fn normal_deps(package: &Package) -> BTreeSet<&str> {
    package
        .deps
        .iter()
        .filter(|(_, dev)| !dev)
        .map(|(name, _)| name.as_str())
        .collect()
}

#[test]
fn the_domain_crate_stands_on_no_platform_library_and_no_other_linkdrop_crate() {
    let packages = packages();
    let domain = packages
        .iter()
        .find(|p| p.name == "linkdrop-domain")
        .unwrap();
    let deps = normal_deps(domain);
    let wrong: Vec<_> = deps
        .iter()
        .filter(|d| PLATFORM.contains(d) || d.starts_with("linkdrop"))
        .collect();
    assert!(wrong.is_empty(), "linkdrop-domain depends on {wrong:?}");
}

#[test]
fn no_role_depends_on_another_role_and_roles_stand_only_on_the_shared_crates() {
    let packages = packages();
    for role in packages.iter().filter(|p| ROLES.contains(&p.name.as_str())) {
        let ours: Vec<_> = normal_deps(role)
            .into_iter()
            .filter(|d| d.starts_with("linkdrop"))
            .filter(|d| !SHARED.contains(d))
            .collect();
        assert!(ours.is_empty(), "{} depends on {ours:?}", role.name);
    }
}

#[test]
fn the_test_kit_is_a_dev_dependency_only() {
    let packages = packages();
    assert!(
        packages.iter().any(|p| p.name == TEST_KIT),
        "{TEST_KIT} is a workspace member"
    );
    let wrong: Vec<_> = packages
        .iter()
        .filter(|p| normal_deps(p).contains(TEST_KIT))
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        wrong.is_empty(),
        "{TEST_KIT} is a normal dependency of {wrong:?}"
    );
    let tested_with_it: Vec<_> = packages
        .iter()
        .filter(|p| p.deps.iter().any(|(name, dev)| name == TEST_KIT && *dev))
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        tested_with_it.contains(&"linkdrop"),
        "the integration tests of linkdrop use {TEST_KIT}: {tested_with_it:?}"
    );
}

#[test]
fn the_load_generator_builds_without_kafka_or_lua() {
    let packages = packages();
    let loadgen = packages
        .iter()
        .find(|p| p.name == "linkdrop-loadgen")
        .unwrap();
    let ours: Vec<_> = normal_deps(loadgen)
        .into_iter()
        .filter(|d| d.starts_with("linkdrop") || matches!(*d, "rdkafka" | "mlua"))
        .filter(|d| *d != "linkdrop-domain")
        .collect();
    assert!(ours.is_empty(), "linkdrop-loadgen depends on {ours:?}");
}

#[test]
fn the_launcher_builds_with_the_standard_library_alone() {
    let packages = packages();
    let launcher = packages
        .iter()
        .find(|p| p.name == "linkdrop-launch")
        .unwrap();
    let deps = normal_deps(launcher);
    // scripts/stack builds it before scripts/setup has installed anything (no C toolchain
    // for librdkafka or Lua yet), in a few seconds.
    assert!(deps.is_empty(), "linkdrop-launch depends on {deps:?}");
}

/// Dependencies that are used without their name appearing in the code, and why.
const USED_UNNAMED: [(&str, &str); 0] = [];

#[test]
fn every_declared_dependency_is_used() {
    let mut unused = Vec::new();
    for package in packages() {
        let sources = rust_sources(&package.dir);
        for (dep, _) in &package.deps {
            let ident = dep.replace('-', "_");
            let used = sources.iter().any(|text| {
                text.contains(&format!("{ident}::"))
                    || text.contains(&format!("use {ident}"))
                    || text.contains(&format!("extern crate {ident}"))
                    || text.contains(&format!("#[{ident}::"))
            }) || USED_UNNAMED.iter().any(|(name, _)| name == dep);
            if !used {
                unused.push(format!("{}: {dep}", package.name));
            }
        }
    }
    assert!(unused.is_empty(), "declared but never used: {unused:#?}");
}

#[test]
fn every_workspace_dependency_is_used_by_a_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let manifest = std::fs::read_to_string(root).unwrap();
    let section = manifest
        .split("[workspace.dependencies]")
        .nth(1)
        .expect("a [workspace.dependencies] section");
    let section = section.split("\n[").next().unwrap();
    let declared: BTreeSet<&str> = section
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    let used: BTreeSet<String> = packages()
        .iter()
        .flat_map(|p| p.deps.iter().map(|(name, _)| name.clone()))
        .collect();
    let unused: Vec<_> = declared
        .into_iter()
        .filter(|name| !used.contains(*name))
        .collect();
    assert!(
        unused.is_empty(),
        "workspace dependencies no crate uses: {unused:?}"
    );
}

fn rust_sources(dir: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("node_modules") && !path.ends_with("target") {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                texts.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    texts
}
