//! The host panel, its printable room report and the shopper page: static assets compiled into the binary (no build
//! step, no CDN, no third-party script — plain HTML, CSS and JavaScript in
//! `services/control/assets/`), plus the two small routes they need beyond API.md: the
//! server's clock, and minting a shopper token for development with the admin key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use linkdrop_domain::clock::now_ms;
use linkdrop_infra::ApiError;
use linkdrop_infra::auth::{Principal, is_valid_user_id};
use linkdrop_infra::json::ApiJson;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ControlState;

/// Lifetime of a token minted by the dev helper.
const DEV_TOKEN_TTL_S: u64 = 12 * 3600;

/// Every asset: its name under `/assets/` and its content type.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "panel.html",
        "text/html; charset=utf-8",
        include_str!("../assets/panel.html"),
    ),
    (
        "report.html",
        "text/html; charset=utf-8",
        include_str!("../assets/report.html"),
    ),
    (
        "shop.html",
        "text/html; charset=utf-8",
        include_str!("../assets/shop.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/common.js"),
    ),
    (
        "panel.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/panel.js"),
    ),
    (
        "report.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/report.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/charts.js"),
    ),
    (
        "analytics.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/analytics.js"),
    ),
    (
        "shop.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/shop.js"),
    ),
    (
        "linkdrop-client.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/linkdrop-client.js"),
    ),
];

/// Only our own scripts, styles and connections; images from anywhere (drops link theirs).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src * data:; \
     connect-src 'self' ws: wss: http: https:; style-src 'self'; script-src 'self'; \
     frame-ancestors 'none'";

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::NotFound("asset").into_response(),
    }
}

/// `GET /panel`: the host panel.
pub async fn panel() -> Response {
    asset("panel.html")
}

/// `GET /report`: a room's printable report (`?room=<id>`; signs in with the panel's key).
pub async fn report() -> Response {
    asset("report.html")
}

/// `GET /shop`: the shopper page (`?room=<id>&token=<JWT>` joins at once).
pub async fn shop() -> Response {
    asset("shop.html")
}

/// `GET /`: the panel.
pub async fn home() -> Redirect {
    Redirect::to("/panel")
}

/// `GET /assets/{name}`.
pub async fn assets(Path(name): Path<String>) -> Response {
    asset(&name)
}

/// `GET /v1/time`: the server's clock, for clients that keep an offset to it over HTTP.
pub async fn time() -> Json<Value> {
    Json(json!({ "server_time_ms": now_ms() }))
}

#[derive(Debug, Deserialize)]
pub struct DevToken {
    user_id: String,
}

/// `POST /v1/dev/tokens` `{"user_id"}` with the admin key: a shopper token, as
/// `linkdrop token --user` prints, for trying the shopper page and the panel's fan-out
/// probe. A real deployment's shoppers get tokens from the merchant's login.
pub async fn mint_token(
    State(state): State<ControlState>,
    principal: Principal,
    ApiJson(body): ApiJson<DevToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require_admin()?;
    if !is_valid_user_id(&body.user_id) {
        return Err(ApiError::invalid(
            "user_id",
            "1 to 128 visible ASCII characters",
        ));
    }
    let tokens = state.auth.tokens().ok_or_else(|| {
        ApiError::BadRequest("this process has no LINKDROP_JWT_SECRET to sign with".into())
    })?;
    let token = tokens.mint(&body.user_id, DEV_TOKEN_TTL_S)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "user_id": body.user_id,
            "expires_at_ms": now_ms() + DEV_TOKEN_TTL_S as i64 * 1000,
        })),
    ))
}
