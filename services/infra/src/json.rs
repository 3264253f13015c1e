//! A JSON body extractor whose rejections are problem+json like every other error:
//! a body that is not JSON at all (or not declared as JSON) → 400 `bad_request`; JSON whose
//! fields are missing or of the wrong type → 422 `invalid` naming the field (`errors[].field`,
//! dotted for nested fields: `fairness.window_ms`); a body over the limit → 413. Fields a
//! route does not know are ignored, so that a client may send fields of a newer version.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// `axum::Json`, answering bad bodies with the errors of API.md.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::BadRequest(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        parse(&bytes).map(Self)
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// The body as `T` (every body linkdrop takes is an object): 400 when it is not JSON, 422
/// naming the field when the JSON does not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) => {
            return Err(ApiError::BadRequest(format!(
                "the body is not JSON: {}",
                without_position(&e.to_string())
            )));
        }
        Ok(value) if !value.is_object() => {
            return Err(ApiError::invalid("body", "a JSON object"));
        }
        Ok(_) => {}
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = without_position(&e.inner().to_string());
        ApiError::invalid(&field_of(&path, &message), message)
    })
}

/// The dotted name of the field at fault: the path serde reached, and for a missing field
/// the field it named (`missing field `x``), which the path does not include.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(field)) => field.to_string(),
        (".", None) => "body".to_string(),
        (path, Some(field)) => format!("{path}.{field}"),
        (path, None) => path.to_string(),
    }
}

/// serde_json's message without " at line L column C" (the client has the body).
fn without_position(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string()
}

/// `axum::extract::Query`, answering a bad query string with 400 problem+json.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::FieldError;

    #[derive(Debug, serde::Deserialize)]
    struct Drop {
        #[allow(dead_code)]
        image_url: String,
        #[allow(dead_code)]
        fairness: Option<Fairness>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Fairness {
        #[allow(dead_code)]
        policy: String,
        #[allow(dead_code)]
        window_ms: Option<i64>,
    }

    fn fields(body: &str) -> Vec<String> {
        match parse::<Drop>(body.as_bytes()) {
            Err(ApiError::Invalid(errors)) => {
                errors.into_iter().map(|e: FieldError| e.field).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_field_is_invalid_and_named() {
        assert_eq!(fields(r#"{"title": "x"}"#), ["image_url"]);
        assert_eq!(
            fields(r#"{"image_url": "u", "fairness": {"window_ms": 1}}"#),
            ["fairness.policy"]
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_invalid_and_named() {
        assert_eq!(fields(r#"{"image_url": 5}"#), ["image_url"]);
        assert_eq!(
            fields(r#"{"image_url": "u", "fairness": {"policy": "x", "window_ms": "1"}}"#),
            ["fairness.window_ms"]
        );
        assert_eq!(fields(r#"[1, 2]"#), ["body"]);
    }

    #[test]
    fn a_body_that_is_not_json_is_a_bad_request_without_positions() {
        match parse::<Drop>(b"{nope") {
            Err(ApiError::BadRequest(message)) => {
                assert!(message.starts_with("the body is not JSON"), "{message}");
                assert!(!message.contains("line"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(parse::<Drop>(br#"{"image_url": "u", "colour": "red"}"#).is_ok());
    }
}
