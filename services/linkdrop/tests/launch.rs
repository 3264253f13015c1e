//! A launch survives its own failure: the real binary is killed at a failpoint after each
//! step that follows the launch script (the drop is open for orders, but not yet recorded,
//! or recorded but not yet announced), started again, and the host's retry completes the
//! missing steps: 202 with the same opening time and seed hash, and the room hears exactly
//! one `drop.countdown`. A retry after everything was done is 409 `already_launched`. On the
//! stack, or on the embedded backend when the tests run so.

use linkdrop_testkit as support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::processes::Process;
use support::{
    TestApp, embedded, embedded_env, fresh_data_dir, fresh_database, fresh_namespace, test_env,
};

/// One installation's settings, and how a test reaches a process of it.
struct Installation {
    env: BTreeMap<String, String>,
    database_url: String,
    namespace: String,
    data_dir: std::path::PathBuf,
}

impl Installation {
    async fn new() -> Self {
        let namespace = fresh_namespace();
        let data_dir = fresh_data_dir();
        if embedded() {
            let env = embedded_env(&data_dir, &namespace);
            return Self {
                env,
                database_url: String::new(),
                namespace,
                data_dir,
            };
        }
        let database_url = fresh_database().await;
        Self {
            env: test_env(&database_url, &namespace),
            database_url,
            namespace,
            data_dir,
        }
    }

    async fn start(&self, failpoint: Option<&str>) -> (Process, TestApp) {
        let mut env = self.env.clone();
        if let Some(failpoint) = failpoint {
            env.insert("LINKDROP_FAILPOINT".into(), failpoint.into());
        }
        let process = Process::start(&["all"], &env).await;
        let app = if embedded() {
            TestApp::external_embedded(&process.addr, &self.data_dir).await
        } else {
            TestApp::external(&process.addr, &self.database_url, &self.namespace).await
        };
        (process, app)
    }
}

/// Launches `drop_id` with a 60 s countdown; `None` when no answer came (the process died).
async fn try_launch(app: &TestApp, drop_id: &str) -> Option<(u16, Value)> {
    let response = app
        .http
        .post(format!("{}/v1/drops/{drop_id}/launch", app.base_url))
        .bearer_auth(support::ADMIN_KEY)
        .json(&json!({"countdown_ms": 60_000}))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// The `drop.countdown` frames of the room's whole history, up to the drop's close.
async fn countdowns_until_closed(app: &TestApp, room_id: &str, drop_id: &str) -> Vec<Value> {
    let closed = app
        .admin_post(&format!("/v1/drops/{drop_id}/close"), json!({}))
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let mut viewer = app.viewer_since(room_id, &app.token("late"), 0).await;
    let mut countdowns = Vec::new();
    loop {
        let frame = viewer.next_json().await;
        match frame["type"].as_str() {
            Some("drop.countdown") => countdowns.push(frame),
            Some("drop.closed") => return countdowns,
            _ => {}
        }
    }
}

async fn a_launch_killed_at(failpoint: &str, fairness: Value) {
    let installation = Installation::new().await;
    let (mut doomed, app) = installation.start(Some(failpoint)).await;
    let room_id = app.create_room("m_launch").await;
    let drop = app
        .admin_post(
            &format!("/v1/rooms/{room_id}/drops"),
            json!({"sku": "L", "title": "lamp", "image_url": "https://img.example/l.png",
                   "price_cents": 100, "currency": "CNY", "stock": 5, "fairness": fairness}),
        )
        .await;
    let drop_id = drop.body["id"].as_str().unwrap().to_string();
    assert!(
        try_launch(&app, &drop_id).await.is_none(),
        "the process died"
    );
    doomed.killed_by_failpoint().await;

    let (_process, app) = installation.start(None).await;
    let (status, retried) = try_launch(&app, &drop_id).await.expect("an answer");
    assert_eq!(status, 202, "{retried}");
    let (status, again) = try_launch(&app, &drop_id).await.expect("an answer");
    assert_eq!(
        (status, &again["code"]),
        (409, &json!("already_launched")),
        "{again}"
    );

    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(drop.body["opens_at_ms"], retried["opens_at_ms"]);
    let countdowns = countdowns_until_closed(&app, &room_id, &drop_id).await;
    assert_eq!(countdowns.len(), 1, "{countdowns:?}");
    assert_eq!(countdowns[0]["opens_at_ms"], retried["opens_at_ms"]);
    assert_eq!(countdowns[0]["seed_hash"], drop.body["seed_hash"]);
    if fairness["policy"] == "lottery" {
        assert!(retried["seed_hash"].is_string(), "{retried}");
        assert_eq!(countdowns[0]["seed_hash"], retried["seed_hash"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_killed_after_its_script_is_completed_by_the_retry() {
    a_launch_killed_at(
        "control.launch.after_script",
        json!({"policy": "lottery", "window_ms": 1000}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_killed_after_its_record_is_completed_by_the_retry() {
    a_launch_killed_at("control.launch.after_record", json!({"policy": "fcfs"})).await;
}
