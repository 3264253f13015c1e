//! Advice for the host, drawn from the report's figures. Each rule is one function that
//! looks at the drops and returns what it advises, with the figures behind it, or nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::report::DropReport;

/// One piece of advice: a stable code, the drop it is about (None: the whole room), the
/// sentence for the host, and the figures it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub code: &'static str,
    pub drop_id: Option<String>,
    pub text: String,
    pub figures: BTreeMap<&'static str, Value>,
}

/// Sold out faster than this with far more taps than units: there was room for more.
pub const FAST_SELL_OUT_MS: i64 = 1_000;
/// Taps per unit beyond which demand clearly exceeded the stock.
pub const HIGH_DEMAND: f64 = 3.0;
/// Share of reservations expiring unpaid beyond which payment needs attention.
pub const HIGH_EXPIRY: f64 = 0.2;
/// Fewest reservations for the expiry share to mean anything.
pub const MIN_RESERVED: i64 = 10;
/// Share of viewers left 5 minutes after a drop below which the audience is falling.
pub const LOW_RETENTION: f64 = 0.8;
/// Share of the room the countdown must reach before opening.
pub const COUNTDOWN_REACH: f64 = 0.95;
/// Fewest viewers at launch for the countdown's reach to mean anything.
pub const MIN_VIEWERS: i64 = 10;
/// Share of a closed drop's units sold below which the drop was too big.
pub const LOW_SELL_THROUGH: f64 = 0.5;

/// Every rule's advice for the room's drops (oldest drop first).
pub fn advise(drops: &[DropReport]) -> Vec<Advice> {
    let per_drop = drops.iter().flat_map(|d| {
        [
            more_units(d),
            unpaid_expiring(d),
            countdown_too_short(d),
            unsold_stock(d),
        ]
    });
    per_drop
        .chain(std::iter::once(audience_falls_after_drops(drops)))
        .flatten()
        .collect()
}

fn figures<const N: usize>(pairs: [(&'static str, Value); N]) -> BTreeMap<&'static str, Value> {
    pairs.into_iter().collect()
}

fn seconds(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// A drop gone in under a second with several taps per unit could have carried more.
pub fn more_units(d: &DropReport) -> Option<Advice> {
    let sell_out_ms = d.sell_out_ms.filter(|ms| *ms < FAST_SELL_OUT_MS)?;
    let demand = d.demand_ratio.filter(|r| *r >= HIGH_DEMAND)?;
    Some(Advice {
        code: "more_units",
        drop_id: Some(d.known.drop_id.clone()),
        text: format!(
            "{} sold out {} s after opening with {demand:.1} taps per unit: the next drop of \
             this item could carry more units.",
            d.known.title,
            seconds(sell_out_ms)
        ),
        figures: figures([
            ("sell_out_ms", json!(sell_out_ms)),
            ("taps", json!(d.known.taps)),
            ("stock", json!(d.known.stock)),
            ("demand_ratio", json!(demand)),
        ]),
    })
}

/// Many reservations left to expire unpaid: shorter time to pay, or a reminder.
pub fn unpaid_expiring(d: &DropReport) -> Option<Advice> {
    if d.known.reserved < MIN_RESERVED {
        return None;
    }
    let share = d.known.expired as f64 / d.known.reserved as f64;
    if share < HIGH_EXPIRY {
        return None;
    }
    Some(Advice {
        code: "unpaid_expiring",
        drop_id: Some(d.known.drop_id.clone()),
        text: format!(
            "{} of {} reservations of {} expired unpaid ({}): shorten pay_within_s (now {} s) \
             or remind buyers to pay, so the units go back to the room sooner.",
            d.known.expired,
            d.known.reserved,
            d.known.title,
            percent(share),
            d.known.pay_within_s
        ),
        figures: figures([
            ("expired", json!(d.known.expired)),
            ("reserved", json!(d.known.reserved)),
            ("expired_share", json!((share * 1000.0).round() / 1000.0)),
            ("pay_within_s", json!(d.known.pay_within_s)),
        ]),
    })
}

/// The countdown ended before the link reached the whole room.
pub fn countdown_too_short(d: &DropReport) -> Option<Advice> {
    let viewers = d.known.viewers_at_launch.filter(|v| *v >= MIN_VIEWERS)?;
    let countdown_ms = d.known.opens_at_ms? - d.known.launched_at_ms?;
    let share = d.known.countdown_reached as f64 / viewers as f64;
    if share >= COUNTDOWN_REACH {
        return None;
    }
    Some(Advice {
        code: "countdown_too_short",
        drop_id: Some(d.known.drop_id.clone()),
        text: format!(
            "Only {} of {viewers} viewers had the link of {} before it opened ({} s \
             countdown): a longer countdown gives the whole room the same start.",
            d.known.countdown_reached,
            d.known.title,
            seconds(countdown_ms)
        ),
        figures: figures([
            ("countdown_reached", json!(d.known.countdown_reached)),
            ("viewers_at_launch", json!(viewers)),
            ("countdown_ms", json!(countdown_ms)),
        ]),
    })
}

/// A closed drop that sold less than half its units was bigger than the room wanted.
pub fn unsold_stock(d: &DropReport) -> Option<Advice> {
    d.known.closed_at_ms?;
    if d.known.stock <= 0 || d.known.sold_out_at_ms.is_some() {
        return None;
    }
    let share = d.known.paid as f64 / d.known.stock as f64;
    if share >= LOW_SELL_THROUGH {
        return None;
    }
    Some(Advice {
        code: "unsold_stock",
        drop_id: Some(d.known.drop_id.clone()),
        text: format!(
            "{} closed with {} of {} units paid for ({}): a smaller drop, or the item at \
             another moment of the stream, may sell through.",
            d.known.title,
            d.known.paid,
            d.known.stock,
            percent(share)
        ),
        figures: figures([
            ("paid", json!(d.known.paid)),
            ("stock", json!(d.known.stock)),
            ("sell_through", json!((share * 1000.0).round() / 1000.0)),
        ]),
    })
}

/// The audience fell after every drop (two at least): viewers leave once they have bought
/// or missed out.
pub fn audience_falls_after_drops(drops: &[DropReport]) -> Option<Advice> {
    let kept: Vec<f64> = drops.iter().filter_map(|d| d.retention.after_5m).collect();
    if kept.len() < 2 || kept.iter().any(|k| *k >= LOW_RETENTION) {
        return None;
    }
    let mean = kept.iter().sum::<f64>() / kept.len() as f64;
    Some(Advice {
        code: "audience_falls_after_drops",
        drop_id: None,
        text: format!(
            "The audience fell after each of {} drops: 5 minutes later {} of the viewers at \
             launch were still watching on average. Announce the next drop before the last \
             one ends to give viewers a reason to stay.",
            kept.len(),
            percent(mean)
        ),
        figures: figures([
            ("drops", json!(kept.len())),
            ("mean_after_5m", json!((mean * 1000.0).round() / 1000.0)),
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::report::{DropInputs, Retention};

    fn drop(inputs: DropInputs) -> DropReport {
        DropReport::of(
            DropInputs {
                drop_id: "drp_1".into(),
                title: "Silk scarf".into(),
                stock: 100,
                pay_within_s: 600,
                ..inputs
            },
            &[],
        )
    }

    fn sold_out_in(ms: i64, taps: i64) -> DropReport {
        drop(DropInputs {
            opens_at_ms: Some(10_000),
            sold_out_at_ms: Some(10_000 + ms),
            taps,
            ..DropInputs::default()
        })
    }

    #[test]
    fn a_fast_sell_out_with_high_demand_asks_for_more_units() {
        let advice = more_units(&sold_out_in(400, 900)).expect("advice");
        assert_eq!(advice.code, "more_units");
        assert!(advice.text.contains("0.4 s") && advice.text.contains("9.0 taps per unit"));
        assert_eq!(advice.figures["demand_ratio"], json!(9.0));
        assert!(more_units(&sold_out_in(1_500, 900)).is_none(), "too slow");
        assert!(
            more_units(&sold_out_in(400, 250)).is_none(),
            "demand too low"
        );
    }

    #[test]
    fn many_unpaid_expiries_ask_for_a_shorter_time_to_pay() {
        let expiring = |reserved, expired| {
            unpaid_expiring(&drop(DropInputs {
                reserved,
                expired,
                ..DropInputs::default()
            }))
        };
        let advice = expiring(40, 10).expect("advice");
        assert!(advice.text.contains("10 of 40") && advice.text.contains("600 s"));
        assert_eq!(advice.figures["expired_share"], json!(0.25));
        assert!(expiring(40, 7).is_none(), "under a fifth");
        assert!(expiring(5, 5).is_none(), "too few to tell");
    }

    #[test]
    fn a_countdown_that_missed_part_of_the_room_asks_for_a_longer_one() {
        let reached = |countdown_reached| {
            countdown_too_short(&drop(DropInputs {
                launched_at_ms: Some(0),
                opens_at_ms: Some(3_000),
                viewers_at_launch: Some(1_000),
                countdown_reached,
                ..DropInputs::default()
            }))
        };
        let advice = reached(800).expect("advice");
        assert!(advice.text.contains("800 of 1000") && advice.text.contains("3.0 s"));
        assert!(reached(990).is_none());
    }

    #[test]
    fn a_closed_drop_that_sold_little_suggests_a_smaller_one() {
        let closed = |paid, sold_out_at_ms| {
            unsold_stock(&drop(DropInputs {
                closed_at_ms: Some(1),
                paid,
                sold_out_at_ms,
                ..DropInputs::default()
            }))
        };
        assert!(closed(20, None).expect("advice").text.contains("20 of 100"));
        assert!(closed(60, None).is_none(), "sold more than half");
        assert!(
            closed(20, Some(5)).is_none(),
            "sold out (units came back later)"
        );
    }

    #[test]
    fn an_audience_falling_after_every_drop_is_pointed_out() {
        let kept = |after_5m| DropReport {
            retention: Retention {
                after_5m,
                ..Retention::default()
            },
            ..drop(DropInputs::default())
        };
        let advice = audience_falls_after_drops(&[kept(Some(0.5)), kept(Some(0.7))]);
        assert!(advice.expect("advice").text.contains("60 %"));
        assert!(audience_falls_after_drops(&[kept(Some(0.5)), kept(Some(0.9))]).is_none());
        assert!(audience_falls_after_drops(&[kept(Some(0.5)), kept(None)]).is_none());
    }

    #[test]
    fn advise_gathers_every_rule() {
        let codes: Vec<_> = advise(&[sold_out_in(400, 900)])
            .into_iter()
            .map(|a| a.code)
            .collect();
        assert_eq!(codes, ["more_units"]);
    }
}
