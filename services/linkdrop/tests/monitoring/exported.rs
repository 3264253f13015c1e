//! A running linkdrop exports every series the rules and the dashboard read.

use crate::ROLES;
use crate::series::{check_exported, exported_names, names_in_use};
use crate::support::{embedded, spawn_app, wait_until_ms};

/// A little of everything (a room, a viewer, a drop launched, an order), then one scrape:
/// every series a rule or a panel reads is there. Metrics of rare events (dead letters,
/// accept errors) are there too: each role declares its metrics when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_read_is_exported() {
    let app = spawn_app().await;
    let room_id = app.create_room("m_monitoring").await;
    let mut viewer = app.viewer(&room_id, &app.token("viewer-1")).await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    let opens_at_ms = app.launch(&drop_id, 0).await;
    let countdown = viewer.next_of_type("drop.countdown").await;
    assert_eq!(countdown["drop"]["id"], drop_id.as_str(), "{countdown}");
    wait_until_ms(opens_at_ms).await;
    let order = app.order(&drop_id, &app.token("shopper-1"), "k1", 1).await;
    assert_eq!(order.status, 201, "{order:?}");

    let scrape = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported = exported_names(&scrape);
    let problems = check_exported(&names_in_use(), &exported, embedded());
    assert!(
        problems.is_empty(),
        "{}\n\nthe scrape:\n{scrape}",
        problems.join("\n")
    );
    // What this traffic did shows, and the process is ready in each of its roles.
    for (series, at_least) in [
        ("linkdrop_drops_launched_total", 1.0),
        (
            "linkdrop_orders_total{outcome=\"reserved\",how=\"fresh\"}",
            1.0,
        ),
        ("linkdrop_admission_seconds_count", 1.0),
        ("linkdrop_gateway_connections", 1.0),
        ("process_open_fds", 1.0),
    ] {
        assert!(
            value(&scrape, series) >= at_least,
            "{series} below {at_least}:\n{scrape}"
        );
    }
    for role in ROLES {
        assert_eq!(
            value(&scrape, &format!("linkdrop_ready{{role=\"{role}\"}}")),
            1.0,
            "{scrape}"
        );
    }
}

/// The value of one series of a scrape (0 when absent).
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
