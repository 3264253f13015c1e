//! Order queries: `GET /v1/orders/{id}` for the shopper who placed the order and the drop's
//! merchant, and the merchant's paginated `GET /v1/orders` (the system of record).
//!
//! A single order is read from the system of record ([`linkdrop_records::orders`]) and from its live
//! state in Redis, which is where admission, payment and expiry decide: the live status
//! wins, so a shopper sees their order (and its payment) at once, before settlement has
//! written it.

use axum::Json;
use axum::extract::{Path, State};
use linkdrop_domain::drop_meta::DropMetaField;
use linkdrop_domain::ids::drop_of_order;
use linkdrop_domain::model::OrderStatus;
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::{Caller, Principal};
use linkdrop_infra::json::ApiQuery;
use linkdrop_records::orders::{self, Order, OrderFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::routes::OrdersState;

/// Most orders on one page of `GET /v1/orders`.
const MAX_PAGE: i64 = 500;
const DEFAULT_PAGE: i64 = 50;
/// What `status` may be.
const STATUSES: &str = "one of entered, lost, reserved, paid, expired, cancelled";

/// An order as the API shows it.
#[derive(Debug, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub drop_id: String,
    pub user_id: String,
    pub qty: i32,
    pub status: OrderStatus,
    /// Absent while the order is known only from its live state.
    pub admitted_at_ms: Option<i64>,
    /// Absent for a lottery entry that has not been drawn (or lost).
    pub pay_by_ms: Option<i64>,
    pub paid_at_ms: Option<i64>,
    #[serde(skip)]
    pub merchant_id: String,
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        Self {
            order_id: order.order_id,
            drop_id: order.drop_id,
            user_id: order.user_id,
            qty: order.qty,
            status: order.status,
            admitted_at_ms: Some(order.admitted_at_ms),
            pay_by_ms: order.pay_by_ms,
            paid_at_ms: order.paid_at_ms,
            merchant_id: order.merchant_id,
        }
    }
}

pub async fn get_order(
    State(state): State<OrdersState>,
    Path(order_id): Path<String>,
    caller: Caller,
) -> Result<Json<OrderView>, ApiError> {
    let recorded = orders::find(&state.db, &order_id)
        .await?
        .map(OrderView::from);
    let live = live_order(&state, &order_id).await?;
    let order = match (recorded, live) {
        (Some(mut order), Some(live)) => {
            order.status = live.status;
            order.pay_by_ms = live.pay_by_ms.or(order.pay_by_ms);
            order.paid_at_ms = live.paid_at_ms.or(order.paid_at_ms);
            order
        }
        (Some(order), None) | (None, Some(order)) => order,
        (None, None) => return Err(ApiError::NotFound("order")),
    };
    let visible = match &caller {
        Caller::Shopper(shopper) => shopper.user_id == order.user_id,
        Caller::Principal(principal) => principal.require_merchant_of(&order.merchant_id).is_ok(),
    };
    // Someone else's order is indistinguishable from one that does not exist.
    if !visible {
        return Err(ApiError::NotFound("order"));
    }
    Ok(Json(order))
}

/// The order as its drop's live state in Redis knows it, if it does.
async fn live_order(state: &OrdersState, order_id: &str) -> Result<Option<OrderView>, ApiError> {
    let Some(drop_id) = drop_of_order(order_id) else {
        return Ok(None);
    };
    let orders_key = state.keys.drop_orders(&drop_id);
    let mut redis = state.redis.clone();
    let (live, merchant_id): (Option<String>, Option<String>) = redis::pipe()
        .hget(&orders_key, order_id)
        .hget(
            state.keys.drop_meta(&drop_id),
            DropMetaField::MerchantId.as_str(),
        )
        .query_async(&mut redis)
        .await?;
    let Some(live) = live else {
        return Ok(None);
    };
    let merchant_id = merchant_id.ok_or_else(|| {
        BadStoredValue::missing(
            state.keys.drop_meta(&drop_id),
            DropMetaField::MerchantId.as_str(),
        )
    })?;
    let mut order = parse_live_order(&orders_key, order_id, &live)?;
    order.drop_id = drop_id;
    order.merchant_id = merchant_id;
    Ok(Some(order))
}

/// An entry of a drop's orders hash (at `key`, field `order_id`):
/// `<status>\t<user>\t<qty>\t<pay_by_ms>[\t<paid_at_ms>\t<payment ref>]`, where a time
/// of 0 means none (a lottery entry has no deadline until it wins). `drop_id` and
/// `merchant_id` are left for the caller.
fn parse_live_order(key: &str, order_id: &str, text: &str) -> Result<OrderView, BadStoredValue> {
    let bad = || {
        BadStoredValue::unparsable(
            key,
            order_id,
            "<status>\\t<user>\\t<qty>\\t<pay_by_ms>[\\t<paid_at_ms>\\t<ref>]",
            text,
        )
    };
    let fields: Vec<&str> = text.split('\t').collect();
    let (status, user_id, qty, pay_by_ms) = match fields.as_slice() {
        [status, user, qty, pay_by, ..] if !user.is_empty() => (status, user, qty, pay_by),
        _ => return Err(bad()),
    };
    let time = |text: &str| match text.parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(bad()),
    };
    Ok(OrderView {
        order_id: order_id.to_string(),
        drop_id: String::new(),
        user_id: user_id.to_string(),
        qty: qty.parse().map_err(|_| bad())?,
        status: OrderStatus::parse(status).map_err(|_| bad())?,
        admitted_at_ms: None,
        pay_by_ms: time(pay_by_ms)?,
        paid_at_ms: fields.get(4).map(|at| time(at)).transpose()?.flatten(),
        merchant_id: String::new(),
    })
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    drop_id: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
    /// Only for the admin key: whose orders to list (all merchants when absent).
    merchant_id: Option<String>,
}

pub async fn list_orders(
    State(state): State<OrdersState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let merchant_id = match &principal {
        Principal::Admin => params.merchant_id.clone(),
        Principal::Merchant { merchant_id } => Some(merchant_id.clone()),
        Principal::Host { .. } => return Err(ApiError::Forbidden),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 500"));
    }
    let status = params
        .status
        .as_deref()
        .map(OrderStatus::parse)
        .transpose()
        .map_err(|_| ApiError::invalid("status", STATUSES))?;
    let filter = OrderFilter {
        merchant_id: merchant_id.as_deref(),
        drop_id: params.drop_id.as_deref(),
        status,
        after: params.cursor.as_deref(),
        limit,
    };
    let items: Vec<OrderView> = orders::list(&state.db, &filter)
        .await?
        .into_iter()
        .map(OrderView::from)
        .collect();
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|o| o.order_id.clone()))
        .flatten();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ld:{d:drp_1}:orders";

    #[test]
    fn a_live_order_reads_its_status_and_times() {
        let order = parse_live_order(KEY, "ord_1", "paid\tu-1\t2\t5000\t4000\tref-9").unwrap();
        assert_eq!(
            (
                order.status.as_str(),
                order.user_id.as_str(),
                order.qty,
                order.pay_by_ms,
                order.paid_at_ms
            ),
            ("paid", "u-1", 2, Some(5000), Some(4000))
        );
        let entry = parse_live_order(KEY, "ord_2", "entered\tu-2\t1\t0").unwrap();
        assert_eq!((entry.pay_by_ms, entry.paid_at_ms), (None, None));
    }

    #[test]
    fn a_live_order_that_does_not_parse_names_its_key_and_order() {
        for text in [
            "reserved\tu-1\tmany\t5000",
            "reserved\tu-1\t1",
            "reserved\t\t1\t5000",
            "resrved\tu-1\t1\t5000",
            "reserved\tu-1\t1\tsoon",
        ] {
            let err = parse_live_order(KEY, "ord_1", text).unwrap_err();
            assert_eq!(
                (err.key.as_str(), err.field.as_str()),
                (KEY, "ord_1"),
                "{text}"
            );
        }
    }
}
