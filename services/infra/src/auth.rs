//! Credentials: shopper tokens (JWT: HS256 with the shared secret, or RS256, ES256 and EdDSA
//! of an identity provider) and API keys of hosts, merchants and the admin.
//!
//! Shoppers send `Authorization: Bearer <JWT>` with claims `sub` (user id) and `exp`. Hosts,
//! merchants and the admin send `Authorization: Bearer <API key>`; keys start with `ldk_`
//! (the admin key is whatever configuration says) and only their SHA-256 is stored.
//! Nothing here logs a credential.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use linkdrop_records::api_keys;
use linkdrop_records::db::Db;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::{SecretsConfig, TokensConfig};
use crate::jwks::Jwks;
use crate::problem::ApiError;
use linkdrop_domain::secret::Secret;
use linkdrop_domain::tokens::{PublicKeys, TokenError, TokenVerifier};
pub use linkdrop_domain::tokens::{ShopperClaims, TokenKeys, is_valid_user_id};

/// Prefix of every API key linkdrop issues, so a key and a JWT are told apart at a glance.
pub const API_KEY_PREFIX: &str = "ldk_";
/// Who a host/merchant/admin request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// Controls the rooms and drops of its merchant.
    Host {
        merchant_id: String,
    },
    /// Reads its merchant's orders and manages its webhooks.
    Merchant {
        merchant_id: String,
    },
}

impl Principal {
    /// Allowed to run the rooms and drops of `merchant_id`.
    pub fn require_host_of(&self, merchant_id: &str) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Host { merchant_id: m } if m == merchant_id => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// Allowed to read the orders and manage the webhooks of `merchant_id`.
    pub fn require_merchant_of(&self, merchant_id: &str) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Merchant { merchant_id: m } if m == merchant_id => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// The merchant this key acts for; `None` for the admin.
    pub fn merchant_id(&self) -> Option<&str> {
        match self {
            Self::Admin => None,
            Self::Host { merchant_id } | Self::Merchant { merchant_id } => Some(merchant_id),
        }
    }
}

/// A freshly generated API key: the key itself (shown once) and what is stored.
pub struct NewApiKey {
    pub key: Secret,
    pub key_hash: String,
}

/// Generates an API key with 32 random bytes.
pub fn generate_api_key() -> NewApiKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewApiKey {
        key_hash: hash_api_key(&key),
        key: Secret::new(key),
    }
}

/// The stored form of an API key. Keys carry 256 random bits, so a plain SHA-256 is enough.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Checks shopper tokens: HS256 with the shared secret, and an identity provider's tokens
/// with its PEM keys or its JWKS (fetched again, within its floor, for an unknown `kid`).
/// Cheap to clone.
#[derive(Clone)]
pub struct ShopperTokens {
    verifier: TokenVerifier,
    jwks: Option<Arc<Jwks>>,
}

impl ShopperTokens {
    pub fn new(verifier: TokenVerifier, jwks: Option<Jwks>) -> Self {
        Self {
            verifier,
            jwks: jwks.map(Arc::new),
        }
    }

    /// HS256 tokens only, with the shared secret (as before identity providers).
    pub fn shared_secret(keys: TokenKeys) -> Self {
        Self::new(
            TokenVerifier::new(Some(keys), PublicKeys::default(), &Default::default()),
            None,
        )
    }

    /// What the configuration says; `None` when it names no key at all.
    pub fn from_config(secrets: &SecretsConfig, tokens: &TokensConfig) -> Option<Self> {
        let secret = secrets.jwt_secret.as_ref().map(TokenKeys::new);
        if secret.is_none() && !tokens.identity_provider() {
            return None;
        }
        tracing::info!(
            hs256 = secret.is_some(),
            jwks_url = tokens.jwks_url.as_ref().map(|u| u.as_str()),
            pem_keys = tokens.public_keys.len(),
            issuer = tokens.checks.issuer.as_deref(),
            audience = ?tokens.checks.audience,
            "shopper tokens"
        );
        let verifier = TokenVerifier::new(secret, tokens.public_keys.clone(), &tokens.checks);
        let jwks = tokens.jwks_url.clone().map(|url| {
            Jwks::new(
                url,
                Duration::from_millis(tokens.jwks_refetch_floor_ms),
                Duration::from_millis(tokens.jwks_max_age_ms),
            )
        });
        Some(Self::new(verifier, jwks))
    }

    /// The HS256 keys, which also mint tokens.
    pub fn minter(&self) -> Option<&TokenKeys> {
        self.verifier.secret()
    }

    /// The user id of a valid token, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<String, TokenError> {
        let Some(jwks) = &self.jwks else {
            return self.verifier.verify(token, &PublicKeys::default());
        };
        jwks.refresh_if_stale();
        let keys = jwks.keys();
        match self.verifier.verify(token, &keys) {
            Err(TokenError::UnknownKey) => {
                let fresh = jwks.refetch(&keys).await;
                self.verifier.verify(token, &fresh)
            }
            verdict => verdict,
        }
    }
}

/// What the credential extractors need. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    tokens: Option<ShopperTokens>,
    admin_key_hash: Option<String>,
    keys_db: Option<Db>,
}

impl Auth {
    /// `tokens` checks shopper JWTs; `admin_key` and `keys_db` check API keys. A role that
    /// lacks one of them answers the corresponding requests 401.
    pub fn new(
        tokens: Option<ShopperTokens>,
        admin_key: Option<&Secret>,
        keys_db: Option<Db>,
    ) -> Self {
        Self {
            inner: Arc::new(AuthInner {
                tokens,
                admin_key_hash: admin_key.map(|k| hash_api_key(k.expose())),
                keys_db,
            }),
        }
    }

    /// The HS256 keys, which mint tokens (the control panel's dev tokens).
    pub fn tokens(&self) -> Option<&TokenKeys> {
        self.inner.tokens.as_ref().and_then(ShopperTokens::minter)
    }

    /// The shopper of a bearer JWT.
    pub async fn shopper(&self, token: &str) -> Result<Shopper, ApiError> {
        let tokens = self.inner.tokens.as_ref().ok_or(ApiError::Unauthorized(
            "shopper tokens are not accepted here",
        ))?;
        Ok(Shopper {
            user_id: tokens.verify(token).await?,
        })
    }

    /// The principal of a bearer API key.
    pub async fn principal(&self, key: &str) -> Result<Principal, ApiError> {
        let hash = hash_api_key(key);
        // Comparing digests, not keys, keeps the comparison free of timing hints.
        if self.inner.admin_key_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Principal::Admin);
        }
        let Some(db) = &self.inner.keys_db else {
            return Err(ApiError::Unauthorized("unknown API key"));
        };
        match api_keys::find_active(db, &hash).await? {
            Some(r) if r.role == "host" => Ok(Principal::Host {
                merchant_id: r.merchant_id,
            }),
            Some(r) if r.role == "merchant" => Ok(Principal::Merchant {
                merchant_id: r.merchant_id,
            }),
            _ => Err(ApiError::Unauthorized("unknown API key")),
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer header",
        ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "expected Authorization: Bearer <credential>",
        ))
}

/// JWTs have three dot-separated parts; API keys have none.
fn looks_like_jwt(credential: &str) -> bool {
    credential.matches('.').count() == 2
}

/// An authenticated shopper (from a JWT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shopper {
    pub user_id: String,
}

impl<S> FromRequestParts<S> for Shopper
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Auth::from_ref(state).shopper(bearer(parts)?).await
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let credential = bearer(parts)?.to_string();
        // A valid shopper token is a known caller without the right: 403, not 401.
        if looks_like_jwt(&credential) && auth.shopper(&credential).await.is_ok() {
            return Err(ApiError::Forbidden);
        }
        auth.principal(&credential).await
    }
}

/// Either kind of caller, for routes open to both (an order is visible to its shopper and
/// to its merchant). A credential with the API key prefix, or equal to the admin key, is
/// taken as a key; anything else as a JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Shopper(Shopper),
    Principal(Principal),
}

impl<S> FromRequestParts<S> for Caller
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let credential = bearer(parts)?.to_string();
        if looks_like_jwt(&credential) {
            auth.shopper(&credential).await.map(Caller::Shopper)
        } else {
            auth.principal(&credential).await.map(Caller::Principal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_admin_key_is_recognised_and_others_are_not() {
        let admin = Secret::new("admin-key-for-tests-0001");
        let auth = Auth::new(None, Some(&admin), None);
        assert_eq!(
            auth.principal(admin.expose()).await.unwrap(),
            Principal::Admin
        );
        assert!(auth.principal("ldk_unknown").await.is_err());
    }

    #[test]
    fn hosts_control_only_their_merchant() {
        let host = Principal::Host {
            merchant_id: "m1".into(),
        };
        assert!(host.require_host_of("m1").is_ok());
        assert!(host.require_host_of("m2").is_err());
        assert!(host.require_merchant_of("m1").is_err());
        assert!(Principal::Admin.require_merchant_of("m2").is_ok());
    }

    #[test]
    fn generated_keys_hash_to_what_is_stored() {
        let key = generate_api_key();
        assert!(key.key.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(hash_api_key(key.key.expose()), key.key_hash);
    }
}
