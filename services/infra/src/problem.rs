//! The error of every HTTP boundary, rendered as `application/problem+json` (RFC 9457) with
//! the stable `code` listed in API.md.
//!
//! Internal failures (Redis, PostgreSQL, Kafka) are logged with their cause and answered with
//! a generic 500 or 503: no SQL, no stack, no connection string ever reaches a client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub use linkdrop_domain::model::FieldError;
use linkdrop_domain::model::InputError;
use linkdrop_domain::stored::BadStoredValue;
use linkdrop_domain::tokens::TokenError;

/// Everything an HTTP handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// A shopper token that is refused; the body says why (`reason`).
    #[error("unauthorized: {0}")]
    BadToken(TokenError),
    #[error("forbidden")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("route not found")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("sold out")]
    SoldOut,
    #[error("limit reached")]
    LimitReached { max_per_user: u32 },
    #[error("idempotency key reused with a different body")]
    IdempotencyConflict,
    #[error("already launched")]
    AlreadyLaunched,
    #[error("closed")]
    Closed,
    #[error("expired")]
    Expired,
    #[error("not payable")]
    NotPayable { status: String },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("not open")]
    NotOpen { opens_at_ms: Option<i64> },
    #[error("rate limited")]
    RateLimited { retry_after_s: u64 },
    #[error("overloaded")]
    Overloaded { retry_after_s: u64 },
    #[error("the lottery draw is running")]
    DrawPending,
    #[error("a backend is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// One invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// An unexpected failure: logged here with its cause, answered as a bare 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::BadToken(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SoldOut
            | Self::LimitReached { .. }
            | Self::IdempotencyConflict
            | Self::AlreadyLaunched
            | Self::Expired
            | Self::NotPayable { .. } => StatusCode::CONFLICT,
            Self::Closed => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotOpen { .. } => StatusCode::TOO_EARLY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded { .. } | Self::Unavailable(_) | Self::DrawPending => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable reason (API.md, "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) | Self::BadToken(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) | Self::NoRoute => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SoldOut => "sold_out",
            Self::LimitReached { .. } => "limit_reached",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::AlreadyLaunched => "already_launched",
            Self::Closed => "closed",
            Self::Expired => "expired",
            Self::NotPayable { .. } => "not_payable",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Invalid(_) => "invalid",
            Self::NotOpen { .. } => "not_open",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded { .. } => "overloaded",
            Self::DrawPending => "draw_pending",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "Bad request",
            Self::Unauthorized(_) | Self::BadToken(_) => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound(_) | Self::NoRoute => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::SoldOut => "Sold out",
            Self::LimitReached { .. } => "Limit reached",
            Self::IdempotencyConflict => "Idempotency key reused",
            Self::AlreadyLaunched => "Already launched",
            Self::Closed => "Drop closed",
            Self::Expired => "Order expired",
            Self::NotPayable { .. } => "Order not payable",
            Self::PayloadTooLarge => "Payload too large",
            Self::Invalid(_) => "Invalid values",
            Self::NotOpen { .. } => "Not open yet",
            Self::RateLimited { .. } => "Too many requests",
            Self::Overloaded { .. } => "Overloaded",
            Self::DrawPending => "Draw in progress",
            Self::Unavailable(_) => "Service unavailable",
            Self::Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest(why) => why.clone(),
            Self::Unauthorized(why) => (*why).to_string(),
            Self::BadToken(why) => why.to_string(),
            Self::Forbidden => "these credentials may not do this".into(),
            Self::NotFound(what) => format!("no such {what}"),
            Self::NoRoute => "no such route".into(),
            Self::MethodNotAllowed => "this route does not take that method".into(),
            Self::SoldOut => "no stock left".into(),
            Self::LimitReached { max_per_user } => {
                format!("you already hold the most units allowed per shopper ({max_per_user})")
            }
            Self::IdempotencyConflict => {
                "this Idempotency-Key was used before with a different body".into()
            }
            Self::AlreadyLaunched => "this drop was launched before".into(),
            Self::Closed => "the host closed this drop".into(),
            Self::Expired => "the payment deadline passed; the units went back on sale".into(),
            Self::NotPayable { status } => {
                format!("only a reserved order can be paid; this one is {status}")
            }
            Self::PayloadTooLarge => "the request body is over the limit".into(),
            Self::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            Self::NotOpen { .. } => "the drop does not take orders yet".into(),
            Self::RateLimited { .. } => "slow down and retry after the given delay".into(),
            Self::Overloaded { .. } => "too busy right now; retry after the given delay".into(),
            Self::DrawPending => {
                "the lottery window has closed and the draw is running; retry shortly".into()
            }
            Self::Unavailable(_) => "a backend is unavailable; retry shortly".into(),
            Self::Internal(_) => "something went wrong on our side".into(),
        }
    }

    /// Members added to the problem object beyond the standard ones.
    fn extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        match self {
            Self::Invalid(errors) => {
                ext.insert("errors".into(), json!(errors));
            }
            Self::NotOpen { opens_at_ms } => {
                ext.insert("opens_at_ms".into(), json!(opens_at_ms));
            }
            Self::LimitReached { max_per_user } => {
                ext.insert("max_per_user".into(), json!(max_per_user));
            }
            Self::NotPayable { status } => {
                ext.insert("order_status".into(), json!(status));
            }
            Self::BadToken(why) => {
                ext.insert("reason".into(), json!(why.reason()));
            }
            _ => {}
        }
        ext
    }

    fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_s } | Self::Overloaded { retry_after_s } => {
                Some(*retry_after_s)
            }
            Self::Unavailable(_) | Self::DrawPending => Some(1),
            _ => None,
        }
    }

    /// The problem object, as sent in the body.
    pub fn body(&self) -> Value {
        let status = self.status();
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:linkdrop:problem:{}", self.code())),
        );
        body.insert("title".into(), json!(self.title()));
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("code".into(), json!(self.code()));
        body.insert("detail".into(), json!(self.detail()));
        body.extend(self.extensions());
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "backend unavailable"),
            _ => {}
        }
        metrics::counter!("linkdrop_http_errors_total", "code" => self.code()).increment(1);
        let mut response = (self.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after_s() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A stored value that is missing or does not parse: a 500, logged with the key and field.
impl From<BadStoredValue> for ApiError {
    fn from(e: BadStoredValue) -> Self {
        Self::internal(e)
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Invalid(errors) => Self::Invalid(errors),
            InputError::BadRequest(message) => Self::BadRequest(message),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::InvalidUserId => Self::invalid("user", "1 to 128 visible ASCII characters"),
            TokenError::Signing(cause) => Self::internal(cause),
            refused => Self::BadToken(refused),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        Self::from(&e)
    }
}

impl From<&redis::RedisError> for ApiError {
    fn from(e: &redis::RedisError) -> Self {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            Self::Unavailable(format!("redis: {e}"))
        } else {
            Self::Internal(format!("redis: {e}"))
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                Self::Unavailable(format!("postgres: {e}"))
            }
            _ => Self::Internal(format!("postgres: {e}")),
        }
    }
}

/// Fallback for unknown routes, so that they too answer problem+json.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// Fallback for a known route called with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_carries_status_code_and_type() {
        let body = ApiError::SoldOut.body();
        assert_eq!(body["status"], 409);
        assert_eq!(body["code"], "sold_out");
        assert_eq!(body["type"], "urn:linkdrop:problem:sold_out");
    }

    #[test]
    fn not_open_tells_when_the_drop_opens() {
        let body = ApiError::NotOpen {
            opens_at_ms: Some(1_700_000_000_000),
        }
        .body();
        assert_eq!(body["status"], 425);
        assert_eq!(body["opens_at_ms"], 1_700_000_000_000_i64);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err = ApiError::internal("ERROR: relation \"orders\" does not exist");
        let body = err.body().to_string();
        assert!(!body.contains("relation"), "{body}");
        assert_eq!(err.body()["code"], "internal");
    }

    #[test]
    fn a_bad_stored_value_is_a_500_logged_with_its_key_not_sent() {
        let err = ApiError::from(BadStoredValue::missing("ld:{d:drp_1}:meta", "stock_left"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            matches!(&err, ApiError::Internal(cause) if cause.contains("stock_left of ld:{d:drp_1}:meta")),
            "{err:?}"
        );
        assert!(!err.body().to_string().contains("drp_1"));
    }

    #[test]
    fn a_refused_token_is_a_401_that_says_why() {
        let err = ApiError::from(TokenError::UnknownKey);
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        let body = err.body();
        assert_eq!(body["code"], "unauthorized");
        assert_eq!(body["type"], "urn:linkdrop:problem:unauthorized");
        assert_eq!(body["reason"], "unknown_key");
        assert_eq!(
            ApiError::from(TokenError::Expired).body()["reason"],
            "expired"
        );
        // Other credentials' 401s carry no reason.
        assert!(
            ApiError::Unauthorized("unknown API key")
                .body()
                .get("reason")
                .is_none()
        );
    }

    /// The reasons of refused tokens are the ones openapi.yaml lists (`TokenRefusal`).
    #[test]
    fn the_reasons_of_refused_tokens_are_documented() {
        let openapi = include_str!("../../../schemas/openapi.yaml");
        let section = openapi
            .split("    TokenRefusal:\n")
            .nth(1)
            .and_then(|rest| rest.split("\n    ProblemCode:").next())
            .expect("openapi.yaml has a TokenRefusal schema");
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- "))
            .collect();
        let mut sent = TokenError::REFUSALS.to_vec();
        let mut listed = documented.clone();
        sent.sort_unstable();
        listed.sort_unstable();
        assert_eq!(sent, listed);
    }

    #[test]
    fn rate_limits_send_retry_after() {
        let response = ApiError::RateLimited { retry_after_s: 2 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
