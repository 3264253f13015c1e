//! The launcher's linkdrop processes (what `scripts/bench` and `scripts/load` start with
//! `linkdrop-launch role`), on the real binary: `linkdrop all` on the embedded backend
//! started detached, ready once it answers `/readyz`, found again by its pidfile, stopped
//! with SIGTERM; one that cannot start is reported with the log that says why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use linkdrop_launch::report::Voice;
use linkdrop_launch::role::{self, App};
use linkdrop_testkit::processes::free_port;
use linkdrop_testkit::{ADMIN_KEY, JWT_SECRET, PATIENCE, WEBHOOK_SECRET_KEY};

const VOICE: Voice = Voice("role");

/// A directory of the test's own under `target/`.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/launch-test")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn embedded_env(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k == "PATH" || k == "HOME")
        .chain(
            [
                ("LINKDROP_DATA_DIR", dir.join("data").to_str().unwrap()),
                ("LINKDROP_ADMIN_KEY", ADMIN_KEY),
                ("LINKDROP_JWT_SECRET", JWT_SECRET),
                ("LINKDROP_WEBHOOK_SECRET_KEY", WEBHOOK_SECRET_KEY),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect()
}

fn all_in(dir: &std::path::Path) -> App {
    App {
        name: "all-1".into(),
        args: vec!["all".into()],
        port: free_port(),
        dir: dir.to_path_buf(),
    }
}

#[test]
fn a_process_is_started_found_again_and_stopped() {
    let dir = scratch("started");
    let app = all_in(&dir);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_linkdrop"));
    let env = embedded_env(&dir);
    let at = Instant::now();
    let pid = app.start(VOICE, &bin, &env).unwrap().expect("started");
    app.wait(VOICE, Some(at), PATIENCE).unwrap();
    assert!(linkdrop_launch::proc::http_ok(app.port, "/readyz"));
    assert_eq!(app.pid(), Some(pid), "found again by its pidfile");
    assert_eq!(
        app.start(VOICE, &bin, &env).unwrap(),
        None,
        "a running process is not started twice"
    );
    role::stop_all(VOICE, std::slice::from_ref(&app), Duration::from_secs(20)).unwrap();
    assert_eq!(app.pid(), None);
    assert!(!app.pidfile().exists());
    assert!(
        std::fs::read_to_string(app.log())
            .unwrap()
            .contains("linkdrop listening")
    );
}

#[test]
fn a_process_that_cannot_start_is_reported_with_its_log() {
    let dir = scratch("refused");
    let app = all_in(&dir);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_linkdrop"));
    let mut env = embedded_env(&dir);
    env.insert("LINKDROP_ORDERS_PER_USER_PER_S".into(), "many".into());
    let at = Instant::now();
    let started = app.start(VOICE, &bin, &env);
    let failure = started
        .and_then(|_| app.wait(VOICE, Some(at), PATIENCE))
        .expect_err("a bad setting stops the process");
    let report = failure.render("role");
    assert!(report.contains("all-1 FAILED"), "{report}");
    assert!(
        report.contains("LINKDROP_ORDERS_PER_USER_PER_S"),
        "the log names the setting:\n{report}"
    );
}
