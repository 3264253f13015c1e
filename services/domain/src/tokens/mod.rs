//! Shopper tokens: JWTs with the shopper's user id (`sub`) and an expiry (`exp`), checked
//! by the gateway and the orders API.
//!
//! Two kinds are taken. HS256 tokens signed with the secret shared with linkdrop
//! ([`TokenKeys`]), minted by `linkdrop token`, tests and load generators. And tokens of an
//! identity provider, RS256, ES256 or EdDSA, checked with its public keys ([`PublicKeys`]:
//! from its JWKS, named by `kid`, or from PEM files) and, when configured, its `iss` and
//! `aud` ([`TokenVerifier`]). Fetching a JWKS is not done here (no web in this crate): the
//! caller passes the keys it last fetched and fetches again on [`TokenError::UnknownKey`].

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
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
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's sub is not a valid user id")]
    BadSubject,
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("the token names a key that is not known here")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's algorithm is not accepted (HS256, RS256, ES256 or EdDSA)")]
    BadAlgorithm,
    #[error("the token's issuer (iss) is not the expected one")]
    BadIssuer,
    #[error("the token's audience (aud) is not the expected one")]
    BadAudience,
}

impl TokenError {
    /// Why a token is refused, as the stable word sent with the 401 (`reason`; one of
    /// [`TokenError::REFUSALS`]). `InvalidUserId` and `Signing` are errors of minting, never
    /// sent as a reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Malformed => "malformed",
            Self::BadSubject => "bad_subject",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::BadAlgorithm => "bad_algorithm",
            Self::BadIssuer => "bad_issuer",
            Self::BadAudience => "bad_audience",
            Self::InvalidUserId => "invalid_user_id",
            Self::Signing(_) => "signing",
        }
    }

    /// Every reason a token can be refused for (the 401's `reason`).
    pub const REFUSALS: [&'static str; 8] = [
        "expired",
        "malformed",
        "bad_subject",
        "unknown_key",
        "bad_signature",
        "bad_algorithm",
        "bad_issuer",
        "bad_audience",
    ];
}

/// The refusal a failed `jsonwebtoken::decode` stands for.
fn refusal(e: &jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::BadAlgorithm,
        ErrorKind::InvalidIssuer => TokenError::BadIssuer,
        ErrorKind::InvalidAudience => TokenError::BadAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::BadIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::BadAudience,
        _ => TokenError::Malformed,
    }
}

/// The user id of decoded claims, when it is a valid one.
fn subject(claims: ShopperClaims) -> Result<String, TokenError> {
    if !is_valid_user_id(&claims.sub) {
        return Err(TokenError::BadSubject);
    }
    Ok(claims.sub)
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
            .map_err(|e| refusal(&e))?;
        subject(data.claims)
    }
}

/// The algorithms of identity providers' tokens, besides HS256 with the shared secret.
pub const PUBLIC_KEY_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// One public key: the algorithm it verifies and, from a JWKS, its `kid`.
#[derive(Clone)]
struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Public keys of an identity provider: from its JWKS (each named by its `kid`) or from PEM
/// files (named by none). Only keys for RS256, ES256 and EdDSA signatures are kept.
#[derive(Clone, Default)]
pub struct PublicKeys {
    keys: Vec<PublicKey>,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (k.kid.as_deref(), k.alg)))
            .finish()
    }
}

impl PublicKeys {
    /// The signing keys of a JWKS document (`{"keys": [...]}`). Keys linkdrop cannot use —
    /// symmetric, for encryption, of another algorithm or curve — are left out; a document
    /// that is not a JWKS is an error.
    pub fn from_jwks(json: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| {
                let alg = jwk_algorithm(&jwk)?;
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                Some(PublicKey {
                    kid: jwk.common.key_id,
                    alg,
                    key,
                })
            })
            .collect();
        Ok(Self { keys })
    }

    /// The public key of a PEM file (`-----BEGIN PUBLIC KEY-----`, SPKI; or `RSA PUBLIC
    /// KEY`): RSA for RS256, P-256 for ES256, Ed25519 for EdDSA.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("PRIVATE KEY") {
            return Err("holds a private key; give the public key only".into());
        }
        if !text.contains("-----BEGIN ") {
            return Err("not a PEM file (no -----BEGIN line)".into());
        }
        let key = DecodingKey::from_rsa_pem(pem)
            .map(|key| (Algorithm::RS256, key))
            .or_else(|_| DecodingKey::from_ec_pem(pem).map(|key| (Algorithm::ES256, key)))
            .or_else(|_| DecodingKey::from_ed_pem(pem).map(|key| (Algorithm::EdDSA, key)))
            .map_err(|_| "not an RSA, P-256 or Ed25519 public key".to_string())?;
        Ok(Self {
            keys: vec![PublicKey {
                kid: None,
                alg: key.0,
                key: key.1,
            }],
        })
    }

    /// These keys and `other`'s.
    pub fn extend(&mut self, other: PublicKeys) {
        self.keys.extend(other.keys);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key is named `kid`.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The algorithms of these keys, in order (for logs and tests).
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.keys.iter().map(|k| k.alg).collect()
    }
}

/// The algorithm a JWK verifies, when it is one linkdrop takes.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let declared = match jwk.common.key_algorithm {
        None => return Some(alg),
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    (declared == alg).then_some(alg)
}

/// What an identity provider's tokens must say besides a valid signature, `sub` and `exp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimChecks {
    /// The `iss` a token must carry; `None`: not checked.
    pub issuer: Option<String>,
    /// The `aud` a token must name (one of these); empty: not checked.
    pub audience: Vec<String>,
}

/// Checks shopper tokens of both kinds: HS256 with the shared secret (as [`TokenKeys`]),
/// and RS256, ES256 and EdDSA with an identity provider's public keys and claim checks.
#[derive(Clone)]
pub struct TokenVerifier {
    secret: Option<TokenKeys>,
    files: PublicKeys,
    /// One per algorithm of [`PUBLIC_KEY_ALGORITHMS`], in that order.
    validations: Vec<Validation>,
}

impl TokenVerifier {
    /// `secret` checks HS256 tokens; `files` are public keys that need no `kid` (PEM files);
    /// `checks` apply to the tokens verified with public keys.
    pub fn new(secret: Option<TokenKeys>, files: PublicKeys, checks: &ClaimChecks) -> Self {
        let validations = PUBLIC_KEY_ALGORITHMS
            .iter()
            .map(|alg| {
                let mut validation = Validation::new(*alg);
                validation.leeway = 0;
                let mut required = vec!["exp", "sub"];
                if let Some(issuer) = &checks.issuer {
                    validation.set_issuer(&[issuer]);
                    required.push("iss");
                }
                if checks.audience.is_empty() {
                    validation.validate_aud = false;
                } else {
                    validation.set_audience(&checks.audience);
                    required.push("aud");
                }
                validation.set_required_spec_claims(&required);
                validation
            })
            .collect();
        Self {
            secret,
            files,
            validations,
        }
    }

    /// The HS256 keys, which also mint tokens.
    pub fn secret(&self) -> Option<&TokenKeys> {
        self.secret.as_ref()
    }

    /// The user id of a valid token. `fetched` are the identity provider's keys as last
    /// fetched from its JWKS: a token naming a `kid` they lack, that no PEM key verifies,
    /// is refused with [`TokenError::UnknownKey`], upon which the caller may fetch again.
    pub fn verify(&self, token: &str, fetched: &PublicKeys) -> Result<String, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => TokenError::BadAlgorithm,
            _ => TokenError::Malformed,
        })?;
        if header.alg == Algorithm::HS256 {
            return self
                .secret
                .as_ref()
                .ok_or(TokenError::UnknownKey)?
                .verify(token);
        }
        let Some(index) = PUBLIC_KEY_ALGORITHMS.iter().position(|a| *a == header.alg) else {
            return Err(TokenError::BadAlgorithm);
        };
        let validation = &self.validations[index];
        let kid = header.kid.as_deref();
        let named = fetched
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid);
        let candidates = self
            .files
            .keys
            .iter()
            .chain(named)
            .filter(|k| k.alg == header.alg);
        let mut tried = false;
        for key in candidates {
            tried = true;
            match jsonwebtoken::decode::<ShopperClaims>(token, &key.key, validation) {
                Ok(data) => return subject(data.claims),
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => continue,
                Err(e) => return Err(refusal(&e)),
            }
        }
        // A kid the JWKS lacks may be a key it gained since it was fetched; a kid it has, or
        // a token naming none, is simply not signed by these keys.
        let unknown = match kid {
            Some(kid) => !fetched.knows(kid),
            None => !tried,
        };
        Err(if unknown {
            TokenError::UnknownKey
        } else {
            TokenError::BadSignature
        })
    }
}

/// User ids are used inside Redis fields, so they are kept to visible ASCII.
pub fn is_valid_user_id(user_id: &str) -> bool {
    (1..=MAX_USER_ID_LEN).contains(&user_id.len()) && user_id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
