//! The room's post-live report, `GET /v1/rooms/{room_id}/report` (JSON, or CSV with
//! `format=csv`): the audience curve with new and returning viewers, each drop's funnel,
//! conversion, time to sell out, demand and retention, buyers and repeat buyers, and the
//! advice drawn from them. The figures come from the records (analytics batches and the
//! orders themselves) and each drop's live milestones; the panel polls the same route.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use linkdrop_domain::analytics::{Advice, Audience, DropInputs, DropReport, Second, advise};
use linkdrop_domain::clock::now_ms;
use linkdrop_domain::model::Room;
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::Principal;
use linkdrop_infra::json::ApiQuery;
use linkdrop_infra::viewers;
use linkdrop_records::analytics::{self, Buyers, DropFigures, DropOrders};
use linkdrop_records::db::Db;
use linkdrop_records::drops::{self, DropRecord};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ControlState;
use crate::rooms::load_room;
use crate::view;

/// Most points of the audience curve (a long stream gets coarser steps).
const MAX_POINTS: usize = 1000;
/// How often figures past their retention are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// With `format=csv`: `drops` (default) or `audience`.
    table: Option<String>,
}

/// The report as JSON (schemas/openapi.yaml, `RoomReport`).
#[derive(Debug, Serialize)]
pub struct RoomReport {
    pub room: Room,
    pub generated_at_ms: i64,
    pub from_ms: i64,
    pub until_ms: i64,
    pub audience: AudienceReport,
    pub buyers: BuyersReport,
    pub drops: Vec<DropReport>,
    pub advice: Vec<Advice>,
}

#[derive(Debug, Serialize)]
pub struct AudienceReport {
    #[serde(flatten)]
    pub curve: Audience,
    pub unique_viewers: i64,
    /// Viewers who had never watched another room of the merchant before.
    pub new_viewers: i64,
    pub returning_viewers: i64,
}

#[derive(Debug, Serialize)]
pub struct BuyersReport {
    /// Shoppers with a paid order in the room.
    pub unique: i64,
    /// Of those, shoppers who had paid for an order in another room of the merchant before.
    pub repeat: i64,
}

/// Which table a CSV answer holds.
enum Table {
    Drops,
    Audience,
}

fn wanted(params: &ReportParams) -> Result<Option<Table>, ApiError> {
    match (params.format.as_deref(), params.table.as_deref()) {
        (None | Some("json"), None) => Ok(None),
        (None | Some("json"), Some(_)) => Err(ApiError::invalid(
            "table",
            "only with format=csv: drops or audience",
        )),
        (Some("csv"), None | Some("drops")) => Ok(Some(Table::Drops)),
        (Some("csv"), Some("audience")) => Ok(Some(Table::Audience)),
        (Some("csv"), Some(_)) => Err(ApiError::invalid("table", "drops or audience")),
        (Some(_), _) => Err(ApiError::invalid("format", "json or csv")),
    }
}

pub async fn get(
    State(state): State<ControlState>,
    principal: Principal,
    Path(room_id): Path<String>,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let table = wanted(&params)?;
    let room = load_room(&state, &principal, &room_id).await?;
    let report = build(&state, room).await?;
    Ok(match table {
        None => Json(report).into_response(),
        Some(Table::Drops) => csv(&report.room.id, "drops", drops_csv(&report.drops)),
        Some(Table::Audience) => csv(&report.room.id, "audience", audience_csv(&report)),
    })
}

/// Gathers the room's figures into its report.
pub async fn build(state: &ControlState, room: Room) -> Result<RoomReport, ApiError> {
    let rows = drops::list_room(&state.db, &room.id).await?;
    let seconds: Vec<Second> = analytics::seconds(&state.db, &room.id)
        .await?
        .into_iter()
        .map(|s| Second {
            at_s: s.at_s,
            viewers: s.viewers,
            joins: s.joins,
            leaves: s.leaves,
        })
        .collect();
    let mut figures: HashMap<String, DropFigures> = analytics::drop_figures(&state.db, &room.id)
        .await?
        .into_iter()
        .map(|f| (f.drop_id.clone(), f))
        .collect();
    let mut orders: HashMap<String, DropOrders> = analytics::drop_orders(&state.db, &room.id)
        .await?
        .into_iter()
        .map(|o| (o.drop_id.clone(), o))
        .collect();
    let mut drops = Vec::with_capacity(rows.len());
    for row in rows {
        let milestones = view::milestones(state, &row).await?;
        let counted = figures.remove(&row.id).unwrap_or_default();
        let ordered = orders.remove(&row.id).unwrap_or_default();
        let inputs = drop_inputs(row, milestones, counted, ordered);
        drops.push(DropReport::of(inputs, &seconds));
    }
    drops.sort_by_key(|d| {
        (
            d.known.launched_at_ms.unwrap_or(i64::MAX),
            d.known.drop_id.clone(),
        )
    });
    let mix = analytics::viewer_mix(&state.db, &room.id).await?;
    let Buyers { unique, repeat } = analytics::room_buyers(&state.db, &room.id).await?;
    let (from_s, until_s) = period(&room, &seconds, &drops);
    let advice = advise(&drops);
    Ok(RoomReport {
        generated_at_ms: now_ms(),
        from_ms: from_s * 1000,
        until_ms: until_s * 1000,
        audience: AudienceReport {
            curve: Audience::of(&seconds, from_s, until_s, MAX_POINTS),
            unique_viewers: mix.unique,
            new_viewers: mix.unique - mix.returning,
            returning_viewers: mix.returning,
        },
        buyers: BuyersReport { unique, repeat },
        drops,
        advice,
        room,
    })
}

fn drop_inputs(
    row: DropRecord,
    milestones: view::Milestones,
    counted: DropFigures,
    ordered: DropOrders,
) -> DropInputs {
    DropInputs {
        stock: i64::from(row.stock),
        policy: row.fairness.policy().to_string(),
        pay_within_s: i64::from(row.pay_within_s),
        launched_at_ms: counted.launched_at_ms,
        opens_at_ms: milestones.opens_at_ms,
        sold_out_at_ms: milestones.sold_out_at_ms,
        closed_at_ms: milestones.closed_at_ms,
        viewers_at_launch: counted.viewers_at_launch,
        countdown_reached: counted.countdown_reached,
        taps: counted.taps,
        reserved: ordered.reserved,
        paid: ordered.paid,
        expired: ordered.expired,
        buyers: ordered.buyers,
        repeat_buyers: ordered.repeat_buyers,
        drop_id: row.id,
        title: row.title,
        sku: row.sku,
    }
}

/// The seconds the report covers: from the first figure (or launch, or the room's
/// creation) to the last.
fn period(room: &Room, seconds: &[Second], drops: &[DropReport]) -> (i64, i64) {
    let instants = drops
        .iter()
        .flat_map(|d| {
            [
                d.known.launched_at_ms,
                d.known.opens_at_ms,
                d.known.sold_out_at_ms,
                d.known.closed_at_ms,
            ]
        })
        .flatten()
        .map(|ms| ms.div_euclid(1000))
        .chain(seconds.iter().map(|s| s.at_s));
    let (from, until) = instants.fold((None::<i64>, None::<i64>), |(lo, hi), s| {
        (
            Some(lo.map_or(s, |lo| lo.min(s))),
            Some(hi.map_or(s, |hi| hi.max(s))),
        )
    });
    let created = room.created_at_ms.div_euclid(1000);
    let from = from.unwrap_or(created);
    (from, until.unwrap_or(from).max(from))
}

/// Records a drop's launch for the analytics: now, and the room's viewers now. A failure
/// is logged; it never fails the launch.
pub async fn record_launch(state: &ControlState, row: &DropRecord) {
    let viewers = match viewers::total(&state.redis, &state.keys, &row.room_id).await {
        Ok(viewers) => viewers as i64,
        Err(e) => {
            tracing::warn!(drop_id = %row.id, error = %e, "could not count the viewers at launch");
            return;
        }
    };
    if let Err(e) = analytics::record_launch(&state.db, &row.id, now_ms(), viewers).await {
        tracing::warn!(drop_id = %row.id, error = %e, "could not record the launch's viewers");
    }
}

/// Deletes figures older than `retention_days` now and every hour, until `shutdown`.
pub async fn sweep_old_figures(db: Db, retention_days: u32, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before_ms = now_ms() - i64::from(retention_days) * 86_400_000;
        match analytics::delete_before(&db, before_ms).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, retention_days, "old analytics deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete old analytics"),
        }
    }
}

/// A CSV answer, offered as a download named after the room and table.
fn csv(room_id: &str, table: &str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{room_id}-{table}.csv\"");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

/// One CSV field: quoted when it holds a separator, a quote or a line break; text that a
/// spreadsheet would take for a formula is prefixed with `'`.
fn field(text: &str) -> String {
    let text = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn number<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

const DROPS_HEADER: &str = "drop_id,title,sku,stock,policy,pay_within_s,launched_at_ms,\
opens_at_ms,sold_out_at_ms,closed_at_ms,viewers_at_launch,countdown_reached,taps,reserved,\
paid,expired,buyers,repeat_buyers,tap_rate,reserve_rate,pay_rate,overall_rate,sell_out_ms,\
demand_ratio,viewers_1m,viewers_5m,retention_1m,retention_5m";

/// The drops table: one row per drop, every figure of the report (times in epoch
/// milliseconds, rates as fractions, empty where unknown).
fn drops_csv(drops: &[DropReport]) -> String {
    let mut out = format!("{DROPS_HEADER}\r\n");
    for d in drops {
        let row = [
            field(&d.known.drop_id),
            field(&d.known.title),
            field(&d.known.sku),
            d.known.stock.to_string(),
            d.known.policy.clone(),
            d.known.pay_within_s.to_string(),
            number(d.known.launched_at_ms),
            number(d.known.opens_at_ms),
            number(d.known.sold_out_at_ms),
            number(d.known.closed_at_ms),
            number(d.known.viewers_at_launch),
            d.known.countdown_reached.to_string(),
            d.known.taps.to_string(),
            d.known.reserved.to_string(),
            d.known.paid.to_string(),
            d.known.expired.to_string(),
            d.known.buyers.to_string(),
            d.known.repeat_buyers.to_string(),
            number(d.rates.tap),
            number(d.rates.reserve),
            number(d.rates.pay),
            number(d.rates.overall),
            number(d.sell_out_ms),
            number(d.demand_ratio),
            number(d.retention.viewers_1m),
            number(d.retention.viewers_5m),
            number(d.retention.after_1m),
            number(d.retention.after_5m),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The audience curve: one row per point.
fn audience_csv(report: &RoomReport) -> String {
    let mut out = String::from("at_ms,viewers,joins,leaves\r\n");
    for p in &report.audience.curve.points {
        out.push_str(&format!(
            "{},{},{},{}\r\n",
            p.at_ms, p.viewers, p.joins, p.leaves
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("Silk scarf"), "Silk scarf");
        assert_eq!(field("Tea, green"), "\"Tea, green\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn the_drops_table_has_one_field_per_header_column() {
        let drop = DropReport::of(
            DropInputs {
                drop_id: "drp_1".into(),
                title: "Tea, green".into(),
                stock: 10,
                taps: 30,
                ..DropInputs::default()
            },
            &[],
        );
        let table = drops_csv(&[drop]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], DROPS_HEADER);
        let header_columns = DROPS_HEADER.split(',').count();
        // The quoted title holds one comma of its own.
        assert_eq!(lines[1].split(',').count(), header_columns + 1);
        assert!(
            lines[1].contains(",3,"),
            "demand ratio 30 taps / 10 units: {}",
            lines[1]
        );
    }

    #[test]
    fn only_known_formats_and_tables_are_accepted() {
        let params = |format: Option<&str>, table: Option<&str>| ReportParams {
            format: format.map(str::to_string),
            table: table.map(str::to_string),
        };
        assert!(matches!(wanted(&params(None, None)), Ok(None)));
        assert!(matches!(
            wanted(&params(Some("csv"), None)),
            Ok(Some(Table::Drops))
        ));
        assert!(matches!(
            wanted(&params(Some("csv"), Some("audience"))),
            Ok(Some(Table::Audience))
        ));
        assert!(wanted(&params(Some("xml"), None)).is_err());
        assert!(wanted(&params(None, Some("drops"))).is_err());
        assert!(wanted(&params(Some("csv"), Some("orders"))).is_err());
    }
}
