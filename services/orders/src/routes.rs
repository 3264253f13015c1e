//! HTTP routes of the orders role.

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use linkdrop_domain::ids;
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::{IdempotencyKey, Quantity};
use linkdrop_infra::ApiError;
use linkdrop_infra::analytics::Analytics;
use linkdrop_infra::auth::{Auth, Shopper};
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::json::ApiJson;
use linkdrop_infra::trace::{SpanKind, Trace};
use linkdrop_records::db::Db;
use serde::Deserialize;
use serde_json::json;

use crate::admission::{AdmissionError, Answer, Decision, OrderRequest, Rejection};
use crate::admission_queue::{AdmissionQueue, Admitted};
use crate::edge::{Edge, Refusal};
use crate::lifecycle::{Lifecycle, LifecycleError, Payment};
use crate::lottery::Drawer;
use crate::protection::Protection;
use crate::queries;
use crate::stock::StockTicker;

/// Header set on an answer replayed for a reused Idempotency-Key (the body is identical).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// What the orders routes share; cloned per request, so one `Arc` inside.
#[derive(Clone)]
pub struct OrdersState(Arc<OrdersParts>);

impl OrdersState {
    pub fn new(parts: OrdersParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for OrdersState {
    type Target = OrdersParts;

    fn deref(&self) -> &OrdersParts {
        &self.0
    }
}

/// The parts of [`OrdersState`].
pub struct OrdersParts {
    /// Refuses at the edge what the script would refuse (none when switched off).
    pub edge: Option<Edge>,
    pub admission: AdmissionQueue,
    pub lifecycle: Lifecycle,
    pub redis: RedisConn,
    pub keys: Keys,
    pub protection: Protection,
    pub drawer: Drawer,
    pub stock: StockTicker,
    pub auth: Auth,
    /// The system of record, for order queries.
    pub db: Db,
    /// Counts the taps of each drop for the host's analytics.
    pub analytics: Analytics,
}

impl FromRef<OrdersState> for Auth {
    fn from_ref(state: &OrdersState) -> Auth {
        state.auth.clone()
    }
}

pub fn router(state: OrdersState) -> Router {
    Router::new()
        .route("/v1/drops/{drop_id}/orders", post(place_order))
        .route("/v1/orders/{order_id}", get(queries::get_order))
        .route("/v1/orders/{order_id}/pay", post(pay_order))
        .route("/v1/orders", get(queries::list_orders))
        .with_state(state)
}

/// The body of an order request.
#[derive(Debug, Deserialize)]
struct OrderBody {
    qty: i64,
}

/// Per-IP limit, authentication, per-user limit, in-flight cap, then the body: the cheap
/// refusals come before the work.
async fn place_order(
    State(state): State<OrdersState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(drop_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    state.protection.check_ip(peer.ip())?;
    let (mut parts, body) = request.into_parts();
    let traced = parts.extensions.get::<Trace>().cloned();
    let shopper = Shopper::from_request_parts(&mut parts, &state).await?;
    if ids::is_well_formed(&drop_id) {
        state.analytics.tapped(&drop_id);
    }
    state.protection.check_user(&shopper.user_id)?;
    let _in_flight = state.protection.enter()?;
    let headers = parts.headers.clone();
    let ApiJson(body) =
        ApiJson::<OrderBody>::from_request(Request::from_parts(parts, body), &state).await?;
    let key = IdempotencyKey::parse(headers.get("idempotency-key").and_then(|v| v.to_str().ok()))?;
    if !ids::is_well_formed(&drop_id) {
        return Err(ApiError::NotFound("drop"));
    }
    let qty = Quantity::parse(body.qty)?;
    if let Some(edge) = &state.edge
        && let Some(refusal) = edge.check(&drop_id, &shopper.user_id, qty.get()).await?
    {
        metrics::counter!("linkdrop_orders_total", "outcome" => refusal.outcome(), "how" => "edge")
            .increment(1);
        return Err(refusal_error(refusal));
    }
    let started = std::time::Instant::now();
    let admission = traced.map(|t| t.child("admission", SpanKind::Internal));
    let request = OrderRequest {
        user_id: shopper.user_id,
        key,
        qty,
        trace: admission.as_ref().map(Trace::traceparent),
    };
    let decided = state.admission.admit(&drop_id, request).await;
    if let Some(span) = admission {
        trace_admission(span, &drop_id, &decided);
    }
    let decision = decided.map_err(|e| match e.as_ref() {
        AdmissionError::Redis(e) => ApiError::from(e),
        other => ApiError::internal(other),
    })?;
    metrics::histogram!("linkdrop_admission_seconds").record(started.elapsed().as_secs_f64());
    match decision {
        Decision::Fresh {
            answer,
            stock_left,
            sold_out_at_ms,
        } => {
            count_outcome(&answer, "fresh");
            match &answer {
                Answer::Reserved { .. } => state.stock.stock_changed(&drop_id),
                Answer::Entered { draw_at_ms, .. } => state.drawer.schedule(&drop_id, *draw_at_ms),
                _ => {}
            }
            if let Some(at) = sold_out_at_ms {
                announce_sold_out(&state, &drop_id, at);
            }
            tracing::debug!(%drop_id, stock_left, "order decided");
            Ok(answer_response(answer))
        }
        Decision::Replay(answer) => {
            count_outcome(&answer, "replay");
            let mut response = answer_response(answer);
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            Ok(response)
        }
        Decision::Reject(Rejection::DrawPending { .. }) => {
            let drawer = state.drawer.clone();
            tokio::spawn(async move {
                if let Err(e) = drawer.draw(&drop_id).await {
                    tracing::warn!(%drop_id, error = %e, "draw failed");
                }
            });
            Err(ApiError::DrawPending)
        }
        Decision::Reject(rejection) => {
            if let Rejection::SoldOut = rejection {
                metrics::counter!("linkdrop_orders_total", "outcome" => "sold_out", "how" => "script")
                    .increment(1);
            }
            Err(rejection_error(rejection))
        }
    }
}

/// Ends the admission span with what was decided (and the order, when one was made).
fn trace_admission(span: Trace, drop_id: &str, decided: &Admitted) {
    span.set("linkdrop.drop_id", drop_id.to_string());
    let (decision, order_id) = match decided {
        Ok(Decision::Fresh { answer, .. }) => ("fresh", answer_order_id(answer)),
        Ok(Decision::Replay(answer)) => ("replay", answer_order_id(answer)),
        Ok(Decision::Reject(_)) => ("reject", None),
        Err(e) => {
            span.fail(e);
            ("error", None)
        }
    };
    span.set("linkdrop.decision", decision);
    if let Some(order_id) = order_id {
        span.set("linkdrop.order_id", order_id.to_string());
    }
    span.end();
}

fn answer_order_id(answer: &Answer) -> Option<&str> {
    match answer {
        Answer::Reserved { order_id, .. } | Answer::Entered { order_id, .. } => Some(order_id),
        Answer::LimitReached { .. } => None,
    }
}

fn count_outcome(answer: &Answer, how: &'static str) {
    let outcome = match answer {
        Answer::Reserved { .. } => "reserved",
        Answer::Entered { .. } => "entered",
        Answer::LimitReached { .. } => "limit_reached",
    };
    metrics::counter!("linkdrop_orders_total", "outcome" => outcome, "how" => how).increment(1);
}

fn announce_sold_out(state: &OrdersState, drop_id: &str, at: i64) {
    let stock = state.stock.clone();
    let drop_id = drop_id.to_string();
    tokio::spawn(async move {
        if let Err(e) = stock.sold_out(&drop_id, at).await {
            tracing::warn!(%drop_id, error = %e, "could not publish drop.sold_out");
        }
    });
}

/// The HTTP answer of a final decision; the same for the first request and every replay.
fn answer_response(answer: Answer) -> Response {
    match answer {
        Answer::Reserved {
            order_id,
            qty,
            pay_by_ms,
        } => (
            StatusCode::CREATED,
            axum::Json(json!({
                "order_id": order_id,
                "status": "reserved",
                "qty": qty,
                "pay_by_ms": pay_by_ms,
            })),
        )
            .into_response(),
        Answer::Entered {
            order_id,
            qty,
            draw_at_ms,
        } => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "order_id": order_id,
                "status": "entered",
                "qty": qty,
                "draw_at_ms": draw_at_ms,
            })),
        )
            .into_response(),
        Answer::LimitReached { max_per_user } => {
            ApiError::LimitReached { max_per_user }.into_response()
        }
    }
}

fn rejection_error(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::NotFound => ApiError::NotFound("drop"),
        Rejection::IdempotencyConflict => ApiError::IdempotencyConflict,
        Rejection::NotOpen { opens_at_ms } => ApiError::NotOpen { opens_at_ms },
        Rejection::Closed => ApiError::Closed,
        Rejection::SoldOut => ApiError::SoldOut,
        Rejection::QtyOverLimit { max_per_user } => ApiError::invalid(
            "qty",
            format!("at most max_per_user ({max_per_user}) units per order"),
        ),
        Rejection::DrawPending { .. } => ApiError::DrawPending,
    }
}

/// The answer to an edge refusal: the same as the script's.
fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound => ApiError::NotFound("drop"),
        Refusal::NotOpen { opens_at_ms } => ApiError::NotOpen { opens_at_ms },
        Refusal::Closed => ApiError::Closed,
        Refusal::SoldOut => ApiError::SoldOut,
    }
}

#[derive(Debug, Deserialize)]
struct PayRequest {
    payment_ref: String,
}

/// `POST /v1/orders/{order_id}/pay`: the shopper (standing in for a payment provider's
/// callback) pays a reserved order before its deadline.
async fn pay_order(
    State(state): State<OrdersState>,
    Path(order_id): Path<String>,
    shopper: Shopper,
    ApiJson(body): ApiJson<PayRequest>,
) -> Result<Response, ApiError> {
    let reference = body.payment_ref;
    if !(1..=128).contains(&reference.len()) || !reference.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "payment_ref",
            "1 to 128 visible ASCII characters",
        ));
    }
    let payment = state
        .lifecycle
        .pay(&order_id, &shopper.user_id, &reference)
        .await
        .map_err(|e| match e {
            LifecycleError::Redis(e) => ApiError::from(e),
            other => ApiError::internal(other),
        })?;
    match payment {
        Payment::Paid {
            paid_at_ms,
            payment_ref,
            qty,
        } => Ok(axum::Json(json!({
            "order_id": order_id,
            "status": "paid",
            "qty": qty,
            "paid_at_ms": paid_at_ms,
            "payment_ref": payment_ref,
        }))
        .into_response()),
        Payment::Expired => Err(ApiError::Expired),
        Payment::NotPayable { status } => Err(ApiError::NotPayable { status }),
        Payment::NotFound => Err(ApiError::NotFound("order")),
    }
}
