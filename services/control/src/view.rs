//! The drop as `GET /v1/drops/{drop_id}` shows it: its record joined with its live figures.
//! A live state that is there must be whole and parse; a bad field is an error naming its
//! key (a 500), never a default.

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_meta::{DropMetaField, LivePhase};
use linkdrop_domain::model::DropState;
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::ApiError;
use linkdrop_infra::drop_meta::DropMeta;
use serde_json::{Value, json};

use linkdrop_records::drops::DropRecord;

use crate::ControlState;

/// The fields of a drop's live state that its view shows.
const LIVE_FIELDS: &[DropMetaField] = &[
    DropMetaField::Phase,
    DropMetaField::OpensAtMs,
    DropMetaField::StockLeft,
    DropMetaField::Paid,
    DropMetaField::SoldOutAtMs,
    DropMetaField::ClosedAtMs,
];

/// What a drop's view shows of its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveFigures {
    phase: LivePhase,
    opens_at_ms: Option<i64>,
    stock_left: i64,
    paid: i64,
    sold_out_at_ms: Option<i64>,
    closed_at_ms: Option<i64>,
}

impl LiveFigures {
    /// The figures of `live`, or — when the drop has no live state (its creation did not
    /// get to write it, or Redis lost it; launch and close write it again) — those of the
    /// record: nothing sold. A live state that is there must be whole and parse.
    fn of(row: &DropRecord, live: &DropMeta) -> Result<Self, BadStoredValue> {
        use DropMetaField::*;
        if live.is_empty() {
            return Ok(Self {
                phase: recorded_phase(row)?,
                opens_at_ms: row.opens_at_ms,
                stock_left: i64::from(row.stock),
                paid: 0,
                sold_out_at_ms: None,
                closed_at_ms: row.closed_at_ms,
            });
        }
        let phase = live.require_phase()?;
        // Launch sets the opening time with the phase; a closed draft has none.
        let opens_at_ms = match phase {
            LivePhase::Launched => Some(live.require_int(OpensAtMs)?),
            LivePhase::Draft | LivePhase::Closed => live.int(OpensAtMs)?,
        };
        Ok(Self {
            phase,
            opens_at_ms,
            stock_left: live.require_int(StockLeft)?,
            paid: live.require_int(Paid)?,
            sold_out_at_ms: live.int(SoldOutAtMs)?,
            closed_at_ms: live.int(ClosedAtMs)?.or(row.closed_at_ms),
        })
    }
}

/// The drop's phase as its record last knew it (the live state is newer).
fn recorded_phase(row: &DropRecord) -> Result<LivePhase, BadStoredValue> {
    LivePhase::parse(&row.phase).ok_or_else(|| {
        BadStoredValue::unparsable(
            format!("drops {}", row.id),
            "phase",
            "draft, launched or closed",
            &row.phase,
        )
    })
}

/// When a drop opened, sold out and closed, as its live state (or its record) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Milestones {
    pub opens_at_ms: Option<i64>,
    pub sold_out_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
}

pub async fn milestones(state: &ControlState, row: &DropRecord) -> Result<Milestones, ApiError> {
    let live = DropMeta::read(&state.redis, &state.keys, &row.id, LIVE_FIELDS).await?;
    let live = LiveFigures::of(row, &live)?;
    Ok(Milestones {
        opens_at_ms: live.opens_at_ms,
        sold_out_at_ms: live.sold_out_at_ms,
        closed_at_ms: live.closed_at_ms,
    })
}

/// The drop as `GET /v1/drops/{id}` shows it: record plus live figures.
pub async fn drop_view(state: &ControlState, row: &DropRecord) -> Result<Value, ApiError> {
    let live = DropMeta::read(&state.redis, &state.keys, &row.id, LIVE_FIELDS).await?;
    let live = LiveFigures::of(row, &live)?;
    let stock = i64::from(row.stock);
    let drop_state = DropState::at(live.phase, live.opens_at_ms, live.stock_left, now_ms());
    Ok(json!({
        "id": row.id,
        "room_id": row.room_id,
        "merchant_id": row.merchant_id,
        "sku": row.sku,
        "title": row.title,
        "image_url": row.image_url,
        "price_cents": row.price_cents,
        "currency": row.currency,
        "max_per_user": row.max_per_user,
        "fairness": row.fairness,
        "pay_within_s": row.pay_within_s,
        "state": drop_state.as_str(),
        "stock": stock,
        "stock_left": live.stock_left,
        "reserved": stock - live.stock_left - live.paid,
        "paid": live.paid,
        "opens_at_ms": live.opens_at_ms,
        "sold_out_at_ms": live.sold_out_at_ms,
        "closed_at_ms": live.closed_at_ms,
        "seed_hash": row.seed_hash,
        "created_at_ms": row.created_at_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkdrop_domain::model::Fairness;

    fn row() -> DropRecord {
        DropRecord {
            id: "drp_1".into(),
            room_id: "room_1".into(),
            merchant_id: "m1".into(),
            sku: "SKU-1".into(),
            title: "Tea".into(),
            image_url: "https://img.example/t.png".into(),
            price_cents: 990,
            currency: "CNY".into(),
            stock: 10,
            max_per_user: 1,
            fairness: Fairness::Lottery { window_ms: 2000 },
            pay_within_s: 600,
            phase: "launched".into(),
            opens_at_ms: Some(1_000),
            closed_at_ms: None,
            seed_hash: None,
            created_at_ms: 1,
        }
    }

    fn live(values: [Option<&str>; 6]) -> DropMeta {
        DropMeta::from_values(
            "ld:{d:drp_1}:meta",
            LIVE_FIELDS,
            values.iter().map(|v| v.map(str::to_string)).collect(),
        )
    }

    #[test]
    fn the_view_takes_the_live_figures() {
        let figures = LiveFigures::of(
            &row(),
            &live([
                Some("launched"),
                Some("1000"),
                Some("4"),
                Some("2"),
                None,
                None,
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                figures.phase,
                figures.stock_left,
                figures.paid,
                figures.opens_at_ms
            ),
            (LivePhase::Launched, 4, 2, Some(1_000))
        );
    }

    #[test]
    fn without_a_live_state_the_view_is_the_record_with_nothing_sold() {
        let figures = LiveFigures::of(&row(), &live([None; 6])).unwrap();
        assert_eq!(
            (
                figures.phase,
                figures.stock_left,
                figures.paid,
                figures.opens_at_ms
            ),
            (LivePhase::Launched, 10, 0, Some(1_000))
        );
        let bad_record = DropRecord {
            phase: "live".into(),
            ..row()
        };
        let err = LiveFigures::of(&bad_record, &live([None; 6])).unwrap_err();
        assert_eq!(err.field, "phase");
    }

    #[test]
    fn live_figures_that_are_missing_or_bad_are_errors_naming_the_field() {
        let cases = [
            (
                [Some("open"), Some("1000"), Some("4"), Some("2"), None, None],
                "phase",
            ),
            (
                [Some("launched"), None, Some("4"), Some("2"), None, None],
                "opens_at_ms",
            ),
            (
                [
                    Some("launched"),
                    Some("1000"),
                    Some("x"),
                    Some("2"),
                    None,
                    None,
                ],
                "stock_left",
            ),
            (
                [Some("launched"), Some("1000"), Some("4"), None, None, None],
                "paid",
            ),
            (
                [
                    Some("closed"),
                    Some("1000"),
                    Some("4"),
                    Some("2"),
                    None,
                    Some("t"),
                ],
                "closed_at_ms",
            ),
        ];
        for (values, field) in cases {
            let err = LiveFigures::of(&row(), &live(values)).unwrap_err();
            assert_eq!(err.key, "ld:{d:drp_1}:meta");
            assert_eq!(err.field, field, "{values:?}");
        }
    }
}
