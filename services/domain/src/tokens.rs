//! Shopper tokens: HS256 JWTs with the shopper's user id (`sub`) and an expiry (`exp`),
//! minted by `linkdrop token`, tests and load generators, and checked by the gateway and
//! the orders API.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Longest accepted shopper id (`sub`).
pub const MAX_USER_ID_LEN: usize = 128;

/// Claims of a shopper token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShopperClaims {
    /// The shopper's user id: 1 to 128 visible ASCII characters.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token cannot be made or is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a user id is 1 to 128 visible ASCII characters")]
    InvalidUserId,
    #[error("the token has expired")]
    Expired,
    #[error("the token is malformed or not signed by us")]
    Malformed,
    #[error("the token's sub is not a valid user id")]
    BadSubject,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs and checks shopper tokens with the configured HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// A token for `user_id` valid for `ttl_s` seconds (`linkdrop token`, tests, load).
    pub fn mint(&self, user_id: &str, ttl_s: u64) -> Result<String, TokenError> {
        if !is_valid_user_id(user_id) {
            return Err(TokenError::InvalidUserId);
        }
        let claims = ShopperClaims {
            sub: user_id.to_string(),
            exp: jsonwebtoken::get_current_timestamp() + ttl_s,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The user id of a valid, unexpired token signed with our secret.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        let data = jsonwebtoken::decode::<ShopperClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Malformed,
        })?;
        if !is_valid_user_id(&data.claims.sub) {
            return Err(TokenError::BadSubject);
        }
        Ok(data.claims.sub)
    }
}

/// User ids are used inside Redis fields, so they are kept to visible ASCII.
pub fn is_valid_user_id(user_id: &str) -> bool {
    (1..=MAX_USER_ID_LEN).contains(&user_id.len()) && user_id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new("0123456789abcdef0123456789abcdef"))
    }

    #[test]
    fn a_minted_token_verifies_to_its_user() {
        let token = keys().mint("u-1", 60).unwrap();
        assert_eq!(keys().verify(&token).unwrap(), "u-1");
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = TokenKeys::new(&Secret::new("another-secret-another-secret-xx"));
        let token = other.mint("u-1", 60).unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Malformed));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let claims = ShopperClaims {
            sub: "u-1".into(),
            exp: jsonwebtoken::get_current_timestamp() - 10,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn user_ids_with_spaces_cannot_get_a_token() {
        assert_eq!(keys().mint("a b", 60), Err(TokenError::InvalidUserId));
        assert_eq!(keys().mint("", 60), Err(TokenError::InvalidUserId));
    }
}
