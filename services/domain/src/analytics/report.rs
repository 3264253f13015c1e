//! One drop's figures in the post-live report: its funnel (viewers at launch → taps →
//! reserved → paid) with conversion rates, time to sell out, demand per unit, and how many
//! viewers stayed after it.

use serde::Serialize;

use super::audience::{Second, viewers_at};

/// What is known of a drop: its record, its live milestones and what was counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DropInputs {
    pub drop_id: String,
    pub title: String,
    pub sku: String,
    pub stock: i64,
    pub policy: String,
    pub pay_within_s: i64,
    pub launched_at_ms: Option<i64>,
    pub opens_at_ms: Option<i64>,
    pub sold_out_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub viewers_at_launch: Option<i64>,
    pub countdown_reached: i64,
    pub taps: i64,
    pub reserved: i64,
    pub paid: i64,
    pub expired: i64,
    pub buyers: i64,
    pub repeat_buyers: i64,
}

/// Conversion along the funnel; None where the step before it is zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Taps per viewer at launch (above 1 when viewers tap again).
    pub tap: Option<f64>,
    /// Reserved orders per tap.
    pub reserve: Option<f64>,
    /// Paid orders per reserved order.
    pub pay: Option<f64>,
    /// Paid orders per viewer at launch.
    pub overall: Option<f64>,
}

/// Viewers 1 and 5 minutes after the launch, and their share of the viewers at launch;
/// None until that moment is in the figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Retention {
    pub viewers_1m: Option<i64>,
    pub viewers_5m: Option<i64>,
    pub after_1m: Option<f64>,
    pub after_5m: Option<f64>,
}

/// A drop as the report shows it: what is known of it, and what is worked out from that.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropReport {
    #[serde(flatten)]
    pub known: DropInputs,
    pub rates: Rates,
    /// From opening to the last unit taken.
    pub sell_out_ms: Option<i64>,
    /// Taps per unit on sale.
    pub demand_ratio: Option<f64>,
    pub retention: Retention,
}

fn ratio(part: i64, whole: Option<i64>) -> Option<f64> {
    let whole = whole.filter(|w| *w > 0)?;
    Some(round3(part as f64 / whole as f64))
}

/// Three decimals are enough for a rate and keep the report readable.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl DropReport {
    /// The report of a drop from its inputs and the room's stored seconds.
    pub fn of(d: DropInputs, seconds: &[Second]) -> Self {
        let rates = Rates {
            tap: ratio(d.taps, d.viewers_at_launch),
            reserve: ratio(d.reserved, Some(d.taps)),
            pay: ratio(d.paid, Some(d.reserved)),
            overall: ratio(d.paid, d.viewers_at_launch),
        };
        let sell_out_ms = match (d.opens_at_ms, d.sold_out_at_ms) {
            (Some(opens), Some(sold)) => Some((sold - opens).max(0)),
            _ => None,
        };
        let after = |minutes: i64| {
            d.launched_at_ms
                .and_then(|at| viewers_at(seconds, at + minutes * 60_000))
        };
        let (viewers_1m, viewers_5m) = (after(1), after(5));
        let retention = Retention {
            viewers_1m,
            viewers_5m,
            after_1m: viewers_1m.and_then(|v| ratio(v, d.viewers_at_launch)),
            after_5m: viewers_5m.and_then(|v| ratio(v, d.viewers_at_launch)),
        };
        Self {
            rates,
            sell_out_ms,
            demand_ratio: ratio(d.taps, Some(d.stock)),
            retention,
            known: d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launched() -> DropInputs {
        DropInputs {
            drop_id: "drp_1".into(),
            stock: 100,
            launched_at_ms: Some(1_000_000),
            opens_at_ms: Some(1_003_000),
            sold_out_at_ms: Some(1_003_400),
            viewers_at_launch: Some(200),
            taps: 900,
            reserved: 100,
            paid: 80,
            ..DropInputs::default()
        }
    }

    #[test]
    fn the_funnel_converts_each_step_against_the_one_before() {
        let report = DropReport::of(launched(), &[]);
        assert_eq!(
            report.rates,
            Rates {
                tap: Some(4.5),
                reserve: Some(0.111),
                pay: Some(0.8),
                overall: Some(0.4),
            }
        );
        assert_eq!(report.sell_out_ms, Some(400));
        assert_eq!(report.demand_ratio, Some(9.0));
    }

    #[test]
    fn a_rate_over_nothing_is_unknown_not_zero() {
        let report = DropReport::of(
            DropInputs {
                stock: 10,
                ..DropInputs::default()
            },
            &[],
        );
        assert_eq!(report.rates, Rates::default());
        assert_eq!(report.sell_out_ms, None);
        assert_eq!(report.demand_ratio, Some(0.0));
    }

    #[test]
    fn retention_compares_viewers_later_with_viewers_at_launch_once_known() {
        let second = |at_s, viewers| Second {
            at_s,
            viewers,
            joins: 0,
            leaves: 0,
        };
        let seconds = [second(1_000, 200), second(1_060, 150)];
        let report = DropReport::of(launched(), &seconds);
        assert_eq!(report.retention.viewers_1m, Some(150));
        assert_eq!(report.retention.after_1m, Some(0.75));
        assert_eq!(
            report.retention.viewers_5m, None,
            "five minutes not reached yet"
        );
        assert_eq!(report.retention.after_5m, None);
    }
}
