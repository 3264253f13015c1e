//! The orders role's metrics, declared at start (at zero) so that they are exported before
//! the first order: what the alert rules and the dashboard read.

use linkdrop_infra::telemetry::{declare_counter, declare_seconds};

/// Declares the orders role's metrics.
pub fn register_metrics() {
    metrics::describe_counter!(
        "linkdrop_orders_total",
        "Order requests answered, by outcome and how: fresh or replay (the admission script), script (a refusal of the script), edge (refused by the orders process alone)"
    );
    for outcome in ["reserved", "entered", "limit_reached"] {
        for how in ["fresh", "replay"] {
            metrics::counter!("linkdrop_orders_total", "outcome" => outcome, "how" => how)
                .increment(0);
        }
    }
    for outcome in ["sold_out", "closed", "not_open", "not_found"] {
        metrics::counter!("linkdrop_orders_total", "outcome" => outcome, "how" => "edge")
            .increment(0);
    }
    metrics::counter!("linkdrop_orders_total", "outcome" => "sold_out", "how" => "script")
        .increment(0);
    declare_seconds(
        "linkdrop_admission_seconds",
        "Time of one admission decision on the drop's live state, waiting for its batch included",
    );
    metrics::describe_histogram!(
        "linkdrop_admission_batch_size",
        "Order requests decided by one call of the admission script"
    );
    let _ = metrics::histogram!("linkdrop_admission_batch_size");
    declare_counter(
        "linkdrop_orders_edge_reads_total",
        "Reads of a drop's state by the edge (nothing known, or older than LINKDROP_ORDERS_EDGE_MAX_AGE_MS)",
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
