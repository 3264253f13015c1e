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
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
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
