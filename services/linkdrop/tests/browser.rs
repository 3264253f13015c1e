//! The host panel and the shopper page in a real browser: `browser/sale.mjs` drives Debian's
//! Chromium with playwright-core (both installed by `scripts/setup`) against a linkdrop
//! started here, and checks each step; this test runs it and checks what it reports.

use linkdrop_testkit as support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::{ADMIN_KEY, TestApp, WebhookReceiver, spawn_app, wait_until_ms};

/// How long the whole browser run may take.
const BROWSER_RUN: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn a_sale_runs_from_the_panel_and_two_phones_reveal_the_link_together() {
    let app = spawn_app().await;
    let report = run_script(
        "sale.mjs",
        &app,
        &[
            ("TOKEN_A", app.token("shopper-a")),
            ("TOKEN_B", app.token("shopper-b")),
        ],
    )
    .await;
    let opens_at_ms = report["opens_at_ms"].as_i64().unwrap();
    let revealed: Vec<i64> = report["revealed_at_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(revealed.len(), 2);
    assert!(revealed.iter().all(|at| *at >= opens_at_ms), "{report}");
    assert!((revealed[0] - revealed[1]).abs() <= 100, "{report}");
}

/// Runs `tests/browser/<script>` with node against `app` (its URL, the admin key, where
/// screenshots go, and `env`); the JSON of its last line, once it exited successfully.
async fn run_script(script: &str, app: &TestApp, env: &[(&str, String)]) -> serde_json::Value {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let run = tokio::process::Command::new("node")
        .arg(scripts.join(script))
        .current_dir(&scripts)
        .env("LINKDROP_URL", &app.base_url)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("SCREENSHOTS", &screenshots)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_RUN, run)
        .await
        .expect("the browser run ends in time")
        .expect("node runs (./scripts/setup installs it, Chromium and playwright-core)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed (screenshots so far in {}):\n{stdout}\n{}",
        screenshots.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("screenshots of {script}: {}", screenshots.display());
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON summary")
}

/// A short stream for the report page: three viewers, one leaves; a drop of two units
/// that sells out (one paid), and a second drop left on sale. Its room id.
async fn scripted_stream(app: &TestApp) -> String {
    let mut hooks = WebhookReceiver::start().await;
    app.subscribe("m-report", &hooks.url, &["order.paid"]).await;
    let room_id = app.create_room("m-report").await;
    let mut first = app.joined_viewer(&room_id, "viewer-1").await;
    let _second = app.joined_viewer(&room_id, "viewer-2").await;
    let third = app.joined_viewer(&room_id, "viewer-3").await;
    first.until_viewers(3).await;
    let scarf = app.create_drop(&room_id, 2, 1).await;
    wait_until_ms(app.launch(&scarf, 1_000).await).await;
    let paid = app.reserve(&scarf, "viewer-1", "scarf-1").await;
    app.reserve(&scarf, "viewer-2", "scarf-2").await;
    let late = app
        .order(&scarf, &app.token("viewer-3"), "scarf-3", 1)
        .await;
    assert_eq!(late.status, 409, "{late:?}");
    assert_eq!(
        app.pay(&paid, &app.token("viewer-1"), "pay-1").await.status,
        200
    );
    hooks.order_event("order.paid", &paid).await;
    let mug = app.create_drop(&room_id, 10, 1).await;
    wait_until_ms(app.launch(&mug, 0).await).await;
    app.reserve(&mug, "viewer-2", "mug-2").await;
    drop(third);
    first.until_viewers(2).await;
    app.flush_analytics().await;
    room_id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_reads_the_analytics_and_the_printable_report_in_the_browser() {
    let app = spawn_app().await;
    let room_id = scripted_stream(&app).await;
    let summary = run_script("report.mjs", &app, &[("ROOM_ID", room_id)]).await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(
        !summary["checked"].as_array().unwrap().is_empty(),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_are_served_from_the_binary_and_the_dev_routes_check_their_caller() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = http.get(&app.base_url).send().await.unwrap();
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/panel");
    for (path, content_type) in [
        ("/panel", "text/html; charset=utf-8"),
        ("/shop", "text/html; charset=utf-8"),
        ("/report", "text/html; charset=utf-8"),
        ("/assets/panel.js", "text/javascript; charset=utf-8"),
        ("/assets/charts.js", "text/javascript; charset=utf-8"),
        ("/assets/analytics.js", "text/javascript; charset=utf-8"),
        ("/assets/report.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        (
            "/assets/linkdrop-client.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let page = http
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.headers()["content-type"], content_type, "{path}");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"),
            "{path}"
        );
    }
    let missing = app.admin_get("/assets/nope.js").await;
    assert_eq!(
        (missing.status, &missing.body["code"]),
        (404, &json!("not_found"))
    );

    let before = linkdrop_domain::clock::now_ms();
    let time = app.admin_get("/v1/time").await;
    assert_eq!(time.status, 200);
    let server_ms = time.body["server_time_ms"].as_i64().unwrap();
    assert!(server_ms >= before && server_ms <= linkdrop_domain::clock::now_ms());

    let minted = app
        .admin_post("/v1/dev/tokens", json!({"user_id": "tester-1"}))
        .await;
    assert_eq!(minted.status, 201, "{minted:?}");
    let token = minted.body["token"].as_str().unwrap();
    let mut viewer = app.viewer(&app.create_room("m_dev").await, token).await;
    assert_eq!(
        viewer.next_json().await["type"],
        "hello",
        "the token opens a room"
    );

    let host_key = app
        .admin_post(
            "/v1/api-keys",
            json!({"role": "host", "merchant_id": "m_dev"}),
        )
        .await;
    let host_key = host_key.body["key"].as_str().unwrap();
    let refused = app
        .request(
            reqwest::Method::POST,
            "/v1/dev/tokens",
            host_key,
            Some(json!({"user_id": "tester-2"})),
            &[],
        )
        .await;
    assert_eq!(refused.status, 403, "only the admin mints tokens");
    let invalid = app
        .admin_post("/v1/dev/tokens", json!({"user_id": ""}))
        .await;
    assert_eq!(invalid.status, 422);
}
