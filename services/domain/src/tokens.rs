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
        assert_eq!(keys().verify(&token), Err(TokenError::BadSignature));
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

    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    /// A key pair of an identity provider: signs tokens, publishes its JWK and PEM.
    struct Signer {
        alg: Algorithm,
        kid: String,
        encoding: EncodingKey,
        jwk: Value,
        spki_der: Vec<u8>,
    }

    impl Signer {
        fn ed25519(kid: &str) -> Signer {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let public = pair.public_key().as_ref().to_vec();
            let mut spki_der = hex::decode("302a300506032b6570032100").unwrap();
            spki_der.extend_from_slice(&public);
            Signer {
                alg: Algorithm::EdDSA,
                kid: kid.into(),
                encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
                jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                    "x": URL_SAFE_NO_PAD.encode(&public)}),
                spki_der,
            }
        }

        fn p256(kid: &str) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let public = pair.public_key().as_ref().to_vec();
            let mut spki_der =
                hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
            spki_der.extend_from_slice(&public);
            Signer {
                alg: Algorithm::ES256,
                kid: kid.into(),
                encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
                jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                    "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&public[33..])}),
                spki_der,
            }
        }

        fn sign(&self, claims: &Value) -> String {
            let mut header = Header::new(self.alg);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
        }

        fn sign_without_kid(&self, claims: &Value) -> String {
            jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding).unwrap()
        }

        fn pem(&self) -> String {
            let body = STANDARD.encode(&self.spki_der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                lines.join("\n")
            )
        }
    }

    fn jwks(signers: &[&Signer]) -> PublicKeys {
        let keys: Vec<&Value> = signers.iter().map(|s| &s.jwk).collect();
        PublicKeys::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn claims(sub: &str) -> Value {
        json!({"sub": sub, "exp": jsonwebtoken::get_current_timestamp() + 60})
    }

    fn verifier(checks: &ClaimChecks) -> TokenVerifier {
        TokenVerifier::new(Some(keys()), PublicKeys::default(), checks)
    }

    #[test]
    fn tokens_signed_with_jwks_keys_verify_by_kid() {
        let ed = Signer::ed25519("ed-1");
        let ec = Signer::p256("ec-1");
        let fetched = jwks(&[&ed, &ec]);
        assert_eq!(
            fetched.algorithms(),
            vec![Algorithm::EdDSA, Algorithm::ES256]
        );
        let v = verifier(&ClaimChecks::default());
        assert_eq!(
            v.verify(&ed.sign(&claims("u-ed")), &fetched).unwrap(),
            "u-ed"
        );
        assert_eq!(
            v.verify(&ec.sign(&claims("u-ec")), &fetched).unwrap(),
            "u-ec"
        );
        // A token without kid is tried against every key of its algorithm.
        assert_eq!(
            v.verify(&ed.sign_without_kid(&claims("u-2")), &fetched)
                .unwrap(),
            "u-2"
        );
        // HS256 with the shared secret still works beside them.
        let hs = keys().mint("u-hs", 60).unwrap();
        assert_eq!(v.verify(&hs, &fetched).unwrap(), "u-hs");
    }

    #[test]
    fn an_unknown_kid_a_forged_signature_and_an_expired_token_say_why() {
        let ed = Signer::ed25519("ed-1");
        let fetched = jwks(&[&ed]);
        let v = verifier(&ClaimChecks::default());
        let stranger = Signer::ed25519("ed-2");
        assert_eq!(
            v.verify(&stranger.sign(&claims("u")), &fetched),
            Err(TokenError::UnknownKey)
        );
        // Signed by another key under a kid we know.
        let forger = Signer::ed25519("ed-1");
        assert_eq!(
            v.verify(&forger.sign(&claims("u")), &fetched),
            Err(TokenError::BadSignature)
        );
        // Signed with another algorithm than the named key's.
        let confused = Signer::p256("ed-1");
        assert_eq!(
            v.verify(&confused.sign(&claims("u")), &fetched),
            Err(TokenError::BadSignature)
        );
        let expired = json!({"sub": "u", "exp": jsonwebtoken::get_current_timestamp() - 10});
        assert_eq!(
            v.verify(&ed.sign(&expired), &fetched),
            Err(TokenError::Expired)
        );
        let no_sub = json!({"exp": jsonwebtoken::get_current_timestamp() + 60});
        assert_eq!(
            v.verify(&ed.sign(&no_sub), &fetched),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            v.verify(&ed.sign(&claims("a b")), &fetched),
            Err(TokenError::BadSubject)
        );
        assert_eq!(v.verify("a.b.c", &fetched), Err(TokenError::Malformed));
    }

    #[test]
    fn other_algorithms_and_hs256_without_a_secret_are_refused() {
        let v = TokenVerifier::new(None, PublicKeys::default(), &ClaimChecks::default());
        let hs = keys().mint("u", 60).unwrap();
        assert_eq!(
            v.verify(&hs, &PublicKeys::default()),
            Err(TokenError::UnknownKey)
        );
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims("u"),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(
            verifier(&ClaimChecks::default()).verify(&hs384, &PublicKeys::default()),
            Err(TokenError::BadAlgorithm)
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let ed = Signer::ed25519("ed-1");
        let fetched = jwks(&[&ed]);
        let checks = ClaimChecks {
            issuer: Some("https://idp.example".into()),
            audience: vec!["shop".into(), "shop-beta".into()],
        };
        let v = verifier(&checks);
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        let good = json!({"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": "shop"});
        assert_eq!(v.verify(&ed.sign(&good), &fetched).unwrap(), "u");
        let many = json!({"sub": "u", "exp": exp, "iss": "https://idp.example",
            "aud": ["other", "shop-beta"]});
        assert_eq!(v.verify(&ed.sign(&many), &fetched).unwrap(), "u");
        for (claims, why) in [
            (
                json!({"sub": "u", "exp": exp, "iss": "https://evil.example", "aud": "shop"}),
                TokenError::BadIssuer,
            ),
            (
                json!({"sub": "u", "exp": exp, "aud": "shop"}),
                TokenError::BadIssuer,
            ),
            (
                json!({"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": "other"}),
                TokenError::BadAudience,
            ),
            (
                json!({"sub": "u", "exp": exp, "iss": "https://idp.example"}),
                TokenError::BadAudience,
            ),
        ] {
            assert_eq!(v.verify(&ed.sign(&claims), &fetched), Err(why), "{claims}");
        }
        // Not configured: neither is checked, whatever the token says.
        let open = verifier(&ClaimChecks::default());
        let any = json!({"sub": "u", "exp": exp, "iss": "anyone", "aud": "anything"});
        assert_eq!(open.verify(&ed.sign(&any), &fetched).unwrap(), "u");
    }

    #[test]
    fn pem_public_keys_verify_tokens_with_or_without_kid() {
        let ed = Signer::ed25519("whatever");
        let ec = Signer::p256("ec");
        let mut files = PublicKeys::from_pem(ed.pem().as_bytes()).unwrap();
        files.extend(PublicKeys::from_pem(ec.pem().as_bytes()).unwrap());
        assert_eq!(files.algorithms(), vec![Algorithm::EdDSA, Algorithm::ES256]);
        let v = TokenVerifier::new(None, files, &ClaimChecks::default());
        let none = PublicKeys::default();
        assert_eq!(v.verify(&ed.sign(&claims("u1")), &none).unwrap(), "u1");
        assert_eq!(
            v.verify(&ec.sign_without_kid(&claims("u2")), &none)
                .unwrap(),
            "u2"
        );
        // A kid the files do not verify may be a JWKS key not fetched yet.
        let other = Signer::ed25519("new");
        assert_eq!(
            v.verify(&other.sign(&claims("u")), &none),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            v.verify(&other.sign_without_kid(&claims("u")), &none),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn pem_files_that_are_not_public_keys_are_refused() {
        let private =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert!(
            PublicKeys::from_pem(private.as_bytes())
                .unwrap_err()
                .contains("private key")
        );
        assert!(PublicKeys::from_pem(b"hello").is_err());
        let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(PublicKeys::from_pem(garbage.as_bytes()).is_err());
    }

    #[test]
    fn jwks_keys_linkdrop_cannot_use_are_left_out() {
        let ed = Signer::ed25519("ed-1");
        let document = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB", "kid": "enc"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
            {"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB", "kid": "rs512"},
            {"kty": "EC", "crv": "P-256", "alg": "EdDSA", "x": "AA", "y": "AA", "kid": "mismatch"},
            ed.jwk,
        ]});
        let keys = PublicKeys::from_jwks(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.knows("ed-1") && !keys.knows("sym"));
        assert!(PublicKeys::from_jwks(b"{\"no\": []}").is_err());
        assert!(PublicKeys::from_jwks(b"<html>").is_err());
    }

    #[test]
    fn every_refusal_has_its_own_reason() {
        let refusals = [
            TokenError::Expired,
            TokenError::Malformed,
            TokenError::BadSubject,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::BadAlgorithm,
            TokenError::BadIssuer,
            TokenError::BadAudience,
        ];
        let reasons: Vec<_> = refusals.iter().map(TokenError::reason).collect();
        assert_eq!(reasons, TokenError::REFUSALS);
    }
}
