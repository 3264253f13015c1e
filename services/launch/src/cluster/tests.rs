use super::*;
use crate::scratch::{Scratch, env};

fn cluster_in(scratch: &Scratch, base: &str) -> Cluster {
    Cluster::from_env(&env(&[
        (
            "LINKDROP_CLUSTER_DIR",
            scratch.path().join("c").to_str().unwrap(),
        ),
        ("LINKDROP_CLUSTER_PORT_BASE", base),
        ("LINKDROP_ADMIN_KEY", "mine"),
    ]))
    .unwrap()
}

#[test]
fn every_component_has_its_port_from_the_base() {
    let scratch = Scratch::new("ports");
    let cluster = cluster_in(&scratch, "20000");
    let (lines, all_up) = cluster.status();
    assert!(!all_up);
    let ports: Vec<(String, String)> = lines
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].to_string(), words[3].to_string())
        })
        .collect();
    let expected = [
        ("redis-1", 20001),
        ("redis-2", 20002),
        ("redis-3", 20003),
        ("kafka-1", 20011),
        ("kafka-2", 20012),
        ("kafka-3", 20013),
        ("postgres", 20030),
        ("gateway-1", 20041),
        ("gateway-2", 20042),
        ("gateway-3", 20043),
        ("orders-1", 20051),
        ("orders-2", 20052),
        ("settle-1", 20062),
        ("settle-2", 20063),
        ("relay-1", 20061),
        ("webhooks-1", 20064),
        ("control-1", 20060),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect();
    assert_eq!(ports, expected);
    assert_eq!(cluster.kafka.nodes[2].controller_port, 20023);
    let error = cluster.kill("gateway-9").unwrap_err().to_string();
    assert!(error.contains("unknown component 'gateway-9'"), "{error}");
}

#[test]
fn a_base_too_high_for_the_cluster_bus_is_refused() {
    let scratch = Scratch::new("base");
    for (base, why) in [("60000", "is too high"), ("x", "must be a number, got 'x'")] {
        let error = Cluster::from_env(&env(&[
            ("LINKDROP_CLUSTER_DIR", scratch.path().to_str().unwrap()),
            ("LINKDROP_CLUSTER_PORT_BASE", base),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("LINKDROP_CLUSTER_PORT_BASE") && error.contains(why),
            "{error}"
        );
    }
}

#[test]
fn a_cluster_keeps_its_port_base() {
    let scratch = Scratch::new("marker");
    let cluster = cluster_in(&scratch, "20000");
    cluster.check_marker().unwrap();
    // Without the setting, the recorded base is the default.
    let again = Cluster::from_env(&env(&[(
        "LINKDROP_CLUSTER_DIR",
        cluster.dir.to_str().unwrap(),
    )]))
    .unwrap();
    assert_eq!(again.base, 20000);
    let moved = cluster_in(&scratch, "21000");
    let error = moved.check_marker().unwrap_err().to_string();
    assert!(
        error.contains("holds a cluster on LINKDROP_CLUSTER_PORT_BASE=20000, not 21000"),
        "{error}"
    );
}

#[test]
fn a_directory_that_is_not_a_clusters_is_not_used() {
    let scratch = Scratch::new("foreign");
    let cluster = cluster_in(&scratch, "20000");
    fs::create_dir_all(&cluster.dir).unwrap();
    fs::write(cluster.dir.join("notes.txt"), "mine").unwrap();
    let error = cluster.check_marker().unwrap_err().to_string();
    assert!(
        error.contains("is not empty and has no .linkdrop-cluster marker"),
        "{error}"
    );
    let error = cluster.down(true).unwrap_err().to_string();
    assert!(error.contains("not deleting it"), "{error}");
    assert!(cluster.dir.join("notes.txt").exists());
}

#[test]
fn the_processes_get_the_callers_settings_generated_secrets_and_the_clusters_engines() {
    let scratch = Scratch::new("env");
    let mut caller = env(&[
        (
            "LINKDROP_CLUSTER_DIR",
            scratch.path().join("c").to_str().unwrap(),
        ),
        ("LINKDROP_CLUSTER_PORT_BASE", "20000"),
        ("LINKDROP_ADMIN_KEY", "mine"),
        ("LINKDROP_LOG_FORMAT", "text"),
        // A shell that pointed at the single-node stack.
        ("LINKDROP_REDIS_URL", "redis://127.0.0.1:16379"),
    ]);
    let cluster = Cluster::from_env(&caller).unwrap();
    assert!(cluster.exports().is_err(), "no cluster yet");
    fs::create_dir_all(&cluster.dir).unwrap();
    let env = cluster.process_env().unwrap();
    assert_eq!(
        env["LINKDROP_ADMIN_KEY"], "mine",
        "the caller's setting wins"
    );
    assert_eq!(env["LINKDROP_LOG_FORMAT"], "text");
    assert_eq!(env["LINKDROP_KAFKA_REPLICATION"], "3", "a default");
    assert_eq!(env["LINKDROP_JWT_SECRET"].len(), 64, "generated");
    assert_eq!(
        env["LINKDROP_REDIS_URL"],
        cluster.redis_url(),
        "the cluster's own engines"
    );
    assert_eq!(env["LINKDROP_REDIS_CLUSTER"], "true");
    let mode = fs::metadata(cluster.dir.join("cluster.env"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    // Generated once: a later start gets the same secrets.
    caller.remove("LINKDROP_ADMIN_KEY");
    let later = Cluster::from_env(&caller).unwrap().process_env().unwrap();
    assert_eq!(later["LINKDROP_JWT_SECRET"], env["LINKDROP_JWT_SECRET"]);
    assert!(later["LINKDROP_ADMIN_KEY"].starts_with("admin_"));
    let exports: Exports = cluster.exports().unwrap().into_iter().collect();
    assert_eq!(exports["LINKDROP_JWT_SECRET"], env["LINKDROP_JWT_SECRET"]);
    assert_eq!(
        exports["LINKDROP_CLUSTER_GATEWAYS"],
        "127.0.0.1:20041,127.0.0.1:20042,127.0.0.1:20043"
    );
    assert_eq!(exports["LINKDROP_CLUSTER_CONTROL"], "127.0.0.1:20060");
    let gateway = cluster.app_env(&cluster.apps[0], &env);
    assert_eq!(gateway["LINKDROP_PUBLIC_URL"], "http://127.0.0.1:20041");
    assert!(
        !cluster
            .app_env(&cluster.apps[3], &env)
            .contains_key("LINKDROP_PUBLIC_URL")
    );
}

type Exports = std::collections::BTreeMap<String, String>;
