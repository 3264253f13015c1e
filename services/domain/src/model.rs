//! Rooms, drops and orders: the records of API.md and the rules that make a value valid.
//!
//! Types here can only be built valid (`DropSpec::parse`, `IdempotencyKey::parse`,
//! `Quantity::parse`); handlers parse once at the boundary and pass the typed value on.

use serde::{Deserialize, Serialize};

use crate::drop_meta::LivePhase;

/// A field that failed validation, shown next to the field by the control panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Input the domain does not take: every boundary answers it as its clients expect (HTTP
/// with 422 `invalid` or 400 `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl InputError {
    /// One invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Most units one drop may put on sale.
pub const MAX_STOCK: i64 = 10_000_000;
/// Most units one shopper may be allowed to hold of one drop.
pub const MAX_PER_USER: i64 = 1_000;
/// Longest countdown a host may choose.
pub const MAX_COUNTDOWN_MS: i64 = 10 * 60 * 1000;

/// A live-stream room, owned by a merchant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub id: String,
    pub title: String,
    pub merchant_id: String,
    pub created_at_ms: i64,
}

/// How buyers contend for a drop's stock (docs/fairness.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum Fairness {
    /// Arrival order at the admission script decides.
    Fcfs,
    /// Every request within `window_ms` after opening is an entry; a verifiable draw picks.
    Lottery { window_ms: u32 },
}

impl Fairness {
    pub fn policy(&self) -> &'static str {
        match self {
            Self::Fcfs => "fcfs",
            Self::Lottery { .. } => "lottery",
        }
    }

    pub fn window_ms(&self) -> Option<u32> {
        match self {
            Self::Fcfs => None,
            Self::Lottery { window_ms } => Some(*window_ms),
        }
    }

    /// Rebuilds the policy from its stored columns.
    pub fn from_parts(policy: &str, window_ms: Option<i32>) -> Option<Self> {
        match (policy, window_ms) {
            ("fcfs", _) => Some(Self::Fcfs),
            ("lottery", Some(w)) => u32::try_from(w)
                .ok()
                .map(|window_ms| Self::Lottery { window_ms }),
            _ => None,
        }
    }
}

/// The body of `POST /v1/rooms/{room_id}/drops`, as sent. Numbers are wide so that a
/// negative or huge value is answered 422 `invalid` with its field, not 400.
#[derive(Debug, Clone, Deserialize)]
pub struct NewDrop {
    pub sku: String,
    pub title: String,
    pub image_url: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub max_per_user: Option<i64>,
    pub fairness: Option<FairnessRequest>,
    pub pay_within_s: Option<i64>,
}

/// `fairness` as sent: `{"policy": "fcfs"}` or `{"policy": "lottery", "window_ms": 2000}`.
#[derive(Debug, Clone, Deserialize)]
pub struct FairnessRequest {
    pub policy: String,
    pub window_ms: Option<i64>,
}

/// A drop's configuration, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropSpec {
    pub sku: String,
    pub title: String,
    pub image_url: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
    pub max_per_user: u32,
    pub fairness: Fairness,
    pub pay_within_s: u32,
}

impl DropSpec {
    /// Checks every field and reports all invalid ones at once.
    pub fn parse(req: NewDrop) -> Result<DropSpec, InputError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                errors.push(FieldError::new(field, message));
            }
        };
        check(text_len_ok(&req.sku, 64), "sku", "1 to 64 characters");
        check(text_len_ok(&req.title, 200), "title", "1 to 200 characters");
        check(
            is_http_url(&req.image_url),
            "image_url",
            "an http:// or https:// URL of at most 2048 characters",
        );
        check(
            (0..=1_000_000_000_000).contains(&req.price_cents),
            "price_cents",
            "a whole number of minor units, 0 or more",
        );
        check(
            req.currency.len() == 3 && req.currency.bytes().all(|b| b.is_ascii_uppercase()),
            "currency",
            "a three-letter ISO 4217 code such as CNY",
        );
        check(
            (1..=MAX_STOCK).contains(&req.stock),
            "stock",
            "at least 1 and at most 10000000",
        );
        let max_per_user = req.max_per_user.unwrap_or(1);
        check(
            (1..=MAX_PER_USER).contains(&max_per_user),
            "max_per_user",
            "at least 1 and at most 1000",
        );
        let pay_within_s = req.pay_within_s.unwrap_or(600);
        check(
            (1..=86_400).contains(&pay_within_s),
            "pay_within_s",
            "between 1 and 86400 seconds",
        );
        let fairness = match req.fairness {
            None => Some(Fairness::Fcfs),
            Some(f) => parse_fairness(f, &mut errors),
        };
        match fairness {
            Some(fairness) if errors.is_empty() => Ok(DropSpec {
                sku: req.sku,
                title: req.title,
                image_url: req.image_url,
                price_cents: req.price_cents,
                currency: req.currency,
                stock: req.stock as u32,
                max_per_user: max_per_user as u32,
                fairness,
                pay_within_s: pay_within_s as u32,
            }),
            _ => Err(InputError::Invalid(errors)),
        }
    }
}

fn parse_fairness(req: FairnessRequest, errors: &mut Vec<FieldError>) -> Option<Fairness> {
    match (req.policy.as_str(), req.window_ms) {
        ("fcfs", _) => Some(Fairness::Fcfs),
        ("lottery", Some(w)) if (100..=600_000).contains(&w) => Some(Fairness::Lottery {
            window_ms: w as u32,
        }),
        ("lottery", _) => {
            errors.push(FieldError::new(
                "fairness.window_ms",
                "a lottery needs window_ms between 100 and 600000",
            ));
            None
        }
        _ => {
            errors.push(FieldError::new("fairness.policy", "fcfs or lottery"));
            None
        }
    }
}

fn text_len_ok(s: &str, max_chars: usize) -> bool {
    let n = s.trim().chars().count();
    n >= 1 && s.chars().count() <= max_chars
}

/// True for an absolute http(s) URL with a host and no whitespace.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            s.len() <= 2048 && !host.is_empty() && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Where a drop is in its life, as reported by `GET /v1/drops/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropState {
    Draft,
    Countdown,
    Open,
    SoldOut,
    Closed,
}

impl DropState {
    /// The state at `now_ms` from the stored phase, the opening time and the units left.
    pub fn at(
        phase: LivePhase,
        opens_at_ms: Option<i64>,
        stock_left: i64,
        now_ms: i64,
    ) -> DropState {
        match (phase, opens_at_ms) {
            (LivePhase::Closed, _) => Self::Closed,
            (LivePhase::Launched, Some(opens)) if now_ms < opens => Self::Countdown,
            (LivePhase::Launched, Some(_)) if stock_left <= 0 => Self::SoldOut,
            (LivePhase::Launched, Some(_)) => Self::Open,
            (LivePhase::Draft, _) | (LivePhase::Launched, None) => Self::Draft,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Countdown => "countdown",
            Self::Open => "open",
            Self::SoldOut => "sold_out",
            Self::Closed => "closed",
        }
    }
}

/// Where an order is in its life (API.md, `GET /v1/orders/{order_id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Entered,
    Lost,
    Reserved,
    Paid,
    Expired,
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 6] = [
        Self::Entered,
        Self::Lost,
        Self::Reserved,
        Self::Paid,
        Self::Expired,
        Self::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Entered => "entered",
            Self::Lost => "lost",
            Self::Reserved => "reserved",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `value` (as [`OrderStatus::as_str`] writes it).
    pub fn parse(value: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| UnknownValue::new("order status", value))
    }
}

/// Where the delivery of one merchant event to one webhook endpoint stands: the values of
/// `webhook_deliveries.state` and of the `state` of `GET /v1/webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Due at its next attempt time (or claimed by a dispatcher).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Its last attempt failed, or the endpoint answered 410 Gone: a dead letter.
    Dead,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [Self::Pending, Self::Delivered, Self::Dead];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// The state named `value` (as [`DeliveryState::as_str`] writes it).
    pub fn parse(value: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| UnknownValue::new("delivery state", value))
    }
}

/// A name that is none of the values of its kind (an order status, a delivery state): the
/// error says which kind and which value, so that a stored value that does not parse is
/// reported, never replaced by a default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {kind}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

impl UnknownValue {
    pub fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: value.to_string(),
        }
    }
}

/// The `Idempotency-Key` of an order request: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: Option<&str>) -> Result<Self, InputError> {
        let raw =
            raw.ok_or_else(|| InputError::BadRequest("missing Idempotency-Key header".into()))?;
        let valid = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(InputError::BadRequest(
                "Idempotency-Key must be 1 to 128 visible ASCII characters".into(),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units asked for in one order: at least 1 (the per-drop maximum is checked atomically
/// with the stock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(qty: i64) -> Result<Self, InputError> {
        if !(1..=MAX_PER_USER).contains(&qty) {
            return Err(InputError::invalid(
                "qty",
                "at least 1 and at most max_per_user",
            ));
        }
        Ok(Self(qty as u32))
    }

    pub fn get(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_request() -> NewDrop {
        NewDrop {
            sku: "SKU-1".into(),
            title: "Lamp".into(),
            image_url: "https://img.example/lamp.png".into(),
            price_cents: 9900,
            currency: "CNY".into(),
            stock: 100,
            max_per_user: None,
            fairness: None,
            pay_within_s: None,
        }
    }

    #[test]
    fn a_drop_takes_the_documented_defaults() {
        let spec = DropSpec::parse(drop_request()).unwrap();
        assert_eq!(spec.max_per_user, 1);
        assert_eq!(spec.fairness, Fairness::Fcfs);
        assert_eq!(spec.pay_within_s, 600);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut req = drop_request();
        req.stock = 0;
        req.image_url = "ftp://x".into();
        req.fairness = Some(FairnessRequest {
            policy: "lottery".into(),
            window_ms: None,
        });
        let Err(InputError::Invalid(errors)) = DropSpec::parse(req) else {
            panic!("expected invalid");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["image_url", "stock", "fairness.window_ms"]);
    }

    #[test]
    fn drop_state_follows_phase_time_and_stock() {
        assert_eq!(
            DropState::at(LivePhase::Draft, None, 5, 0),
            DropState::Draft
        );
        assert_eq!(
            DropState::at(LivePhase::Launched, Some(10), 5, 9),
            DropState::Countdown
        );
        assert_eq!(
            DropState::at(LivePhase::Launched, Some(10), 5, 10),
            DropState::Open
        );
        assert_eq!(
            DropState::at(LivePhase::Launched, Some(10), 0, 11),
            DropState::SoldOut
        );
        assert_eq!(
            DropState::at(LivePhase::Closed, Some(10), 5, 11),
            DropState::Closed
        );
    }

    #[test]
    fn idempotency_keys_must_be_present_and_printable() {
        assert!(IdempotencyKey::parse(None).is_err());
        assert!(IdempotencyKey::parse(Some("")).is_err());
        assert!(IdempotencyKey::parse(Some("has space")).is_err());
        assert!(IdempotencyKey::parse(Some(&"k".repeat(129))).is_err());
        assert_eq!(IdempotencyKey::parse(Some("k-1")).unwrap().as_str(), "k-1");
    }

    #[test]
    fn statuses_and_states_parse_what_they_write_and_name_what_they_do_not() {
        for status in [
            OrderStatus::Entered,
            OrderStatus::Paid,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str()), Ok(state));
        }
        assert_eq!(
            OrderStatus::parse("refunded").unwrap_err().to_string(),
            "\"refunded\" is not a known order status"
        );
        assert_eq!(
            DeliveryState::parse("Pending").unwrap_err().to_string(),
            "\"Pending\" is not a known delivery state"
        );
    }

    #[test]
    fn quantity_below_one_is_invalid() {
        assert!(matches!(Quantity::parse(0), Err(InputError::Invalid(_))));
        assert_eq!(Quantity::parse(2).unwrap().get(), 2);
    }
}
