//! The orders role's metrics, declared at start like every other role's (each role crate
//! has a `register_metrics`). They are declared here for now; their place is the orders
//! crate, next to where they are counted (`services/orders/src/routes.rs`,
//! `protection.rs`, `lifecycle.rs`, `lottery.rs`).

use linkdrop_domain::telemetry::{declare_counter, declare_seconds};

/// Declares the orders role's metrics, at zero, so that they are exported from the start.
pub fn register_orders_metrics() {
    metrics::describe_counter!(
        "linkdrop_orders_total",
        "Orders decided by the admission script, by outcome and how (fresh, replay)"
    );
    for outcome in ["reserved", "entered", "sold_out", "limit_reached"] {
        for how in ["fresh", "replay"] {
            metrics::counter!("linkdrop_orders_total", "outcome" => outcome, "how" => how)
                .increment(0);
        }
    }
    declare_seconds(
        "linkdrop_admission_seconds",
        "Time of one admission decision on the drop's live state",
    );
    declare_counter(
        "linkdrop_orders_shed_total",
        "Order requests answered 503 because LINKDROP_ORDERS_MAX_IN_FLIGHT were in flight",
    );
    metrics::describe_counter!(
        "linkdrop_orders_rate_limited_total",
        "Order requests answered 429 by the per-user or per-address limit, by scope"
    );
    for scope in ["user", "ip"] {
        metrics::counter!("linkdrop_orders_rate_limited_total", "scope" => scope).increment(0);
    }
    declare_counter(
        "linkdrop_orders_expired_total",
        "Unpaid orders expired, their units returned",
    );
    declare_counter("linkdrop_lottery_draws_total", "Lottery draws made");
}
