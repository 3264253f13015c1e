//! Shopper tokens of an identity provider, through the gateway (WebSocket join) and the
//! orders API: RS256, ES256 and EdDSA tokens checked with keys from a JWKS the test serves on
//! loopback (and rotates), or from PEM files; the reason of every refusal; the refetch floor.
//! The JWKS server counts its requests, so fetches are checked by count, never by waiting.

use linkdrop_testkit as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use support::{TestApp, spawn_app_with};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "linkdrop-shop";

/// A key pair of the identity provider: signs tokens, publishes its JWK and PEM.
struct Signer {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    pem: String,
}

/// One RSA key for the whole binary: generating one is slow in a debug build.
fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap())
}

fn pem_of(spki_der: &[u8]) -> String {
    let body = STANDARD.encode(spki_der);
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

impl Signer {
    fn rs256(kid: &str) -> Signer {
        let private = rsa_key();
        let public = private.to_public_key();
        Signer {
            alg: Algorithm::RS256,
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
            jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())}),
            pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    fn es256(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(&point);
        Signer {
            alg: Algorithm::ES256,
            kid: kid.into(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..])}),
            pem: pem_of(&spki),
        }
    }

    fn eddsa(kid: &str) -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let mut spki = hex::decode("302a300506032b6570032100").unwrap();
        spki.extend_from_slice(&public);
        Signer {
            alg: Algorithm::EdDSA,
            kid: kid.into(),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&public)}),
            pem: pem_of(&spki),
        }
    }

    /// Another key of the same algorithm under the same `kid`: what a forger signs with.
    fn forger(&self) -> Signer {
        match self.alg {
            Algorithm::ES256 => Signer::es256(&self.kid),
            Algorithm::EdDSA => Signer::eddsa(&self.kid),
            alg => panic!("no forger for {alg:?}"),
        }
    }

    /// The claims a good token of this provider carries, with `changes` applied (a null
    /// removes the claim).
    fn claims(sub: &str, changes: Value) -> Value {
        let mut claims = json!({
            "sub": sub,
            "exp": jsonwebtoken::get_current_timestamp() + 600,
            "iat": jsonwebtoken::get_current_timestamp(),
            "iss": ISSUER,
            "aud": AUDIENCE,
        });
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    }

    fn token(&self, sub: &str) -> String {
        self.token_with(sub, json!({}))
    }

    fn token_with(&self, sub: &str, changes: Value) -> String {
        self.sign(Some(&self.kid), &Self::claims(sub, changes))
    }

    fn token_as(&self, kid: Option<&str>, sub: &str) -> String {
        self.sign(kid, &Self::claims(sub, json!({})))
    }

    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The identity provider's JWKS endpoint on loopback: serves what it is told to, counts
/// its requests.
#[derive(Clone)]
struct Provider {
    document: Arc<Mutex<Value>>,
    requests: Arc<AtomicUsize>,
    url: String,
}

impl Provider {
    async fn start(signers: &[&Signer]) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = Provider {
            document: Arc::default(),
            requests: Arc::default(),
            url: format!(
                "http://{}/.well-known/jwks.json",
                listener.local_addr().unwrap()
            ),
        };
        provider.publish(signers);
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks_document))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        provider
    }

    /// From now on the JWKS holds these keys only (a rotation).
    fn publish(&self, signers: &[&Signer]) {
        let keys: Vec<&Value> = signers.iter().map(|s| &s.jwk).collect();
        *self.document.lock().unwrap() = json!({ "keys": keys });
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn jwks_document(State(provider): State<Provider>) -> axum::Json<Value> {
    provider.requests.fetch_add(1, Ordering::SeqCst);
    axum::Json(provider.document.lock().unwrap().clone())
}

/// linkdrop taking the provider's tokens, its JWKS fetched again at most every `floor_ms`.
async fn app_of(provider: &Provider, floor_ms: &str) -> TestApp {
    spawn_app_with(&[
        ("LINKDROP_JWT_JWKS_URL", provider.url.as_str()),
        ("LINKDROP_JWT_JWKS_REFETCH_FLOOR_MS", floor_ms),
        ("LINKDROP_JWT_ISSUER", ISSUER),
        ("LINKDROP_JWT_AUDIENCE", AUDIENCE),
    ])
    .await
}

/// How the gateway and the orders API took a token.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Taken,
    /// 401 with this `reason`.
    Refused(String),
}

/// Joins `room_id` with `token`: the session's `hello`, or the 401 before the upgrade.
async fn join(app: &TestApp, room_id: &str, token: &str) -> Verdict {
    let url = format!("ws://{}/v1/rooms/{room_id}/ws?token={token}", app.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => {
            let mut viewer = support::Viewer { socket };
            viewer.next_of_type("hello").await;
            Verdict::Taken
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401, "{response:?}");
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "unauthorized", "{body}");
            Verdict::Refused(body["reason"].as_str().unwrap().to_string())
        }
        Err(e) => panic!("the gateway answers: {e}"),
    }
}

/// Reads an order nobody has with `token` (the cheapest authenticated orders route): 404
/// once the token is taken, 401 when it is not.
async fn read_order(app: &TestApp, token: &str) -> Verdict {
    let answer = app
        .request(
            reqwest::Method::GET,
            "/v1/orders/ord_nobodys",
            token,
            None,
            &[],
        )
        .await;
    match answer.status {
        404 => Verdict::Taken,
        401 => {
            assert_eq!(answer.body["code"], "unauthorized", "{answer:?}");
            Verdict::Refused(answer.body["reason"].as_str().unwrap().to_string())
        }
        _ => panic!("unexpected answer {answer:?}"),
    }
}

/// Both routes take `token` the same way; that way.
async fn verdict(app: &TestApp, room_id: &str, token: &str) -> Verdict {
    let joined = join(app, room_id, token).await;
    let read = read_order(app, token).await;
    assert_eq!(joined, read, "the gateway and the orders API agree");
    joined
}

fn refused(reason: &str) -> Verdict {
    Verdict::Refused(reason.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_tokens_join_and_order() {
    let (rs, es, ed) = (
        Signer::rs256("rs-1"),
        Signer::es256("es-1"),
        Signer::eddsa("ed-1"),
    );
    let provider = Provider::start(&[&rs, &es, &ed]).await;
    let app = app_of(&provider, "0").await;
    assert_eq!(provider.requests(), 0, "fetched when first needed");
    let room_id = app.create_room("m_idp").await;
    for signer in [&rs, &es, &ed] {
        let token = signer.token(&format!("idp|{}", signer.kid));
        assert_eq!(
            verdict(&app, &room_id, &token).await,
            Verdict::Taken,
            "{:?}",
            signer.alg
        );
    }
    assert_eq!(provider.requests(), 1, "one fetch brought every key");

    // An order, end to end, with an RS256 token; and the shared secret still works beside.
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    app.launch(&drop_id, 0).await;
    let order = app
        .order(&drop_id, &rs.token("idp|buyer"), "idp-1", 1)
        .await;
    assert_eq!(order.status, 201, "{order:?}");
    let hs256 = app.token("secret-shopper");
    assert_eq!(verdict(&app, &room_id, &hs256).await, Verdict::Taken);
    assert_eq!(provider.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_is_picked_up_and_an_unknown_kid_costs_one_refetch() {
    let (old, new) = (Signer::eddsa("2026-01"), Signer::es256("2026-02"));
    let provider = Provider::start(&[&old]).await;
    let app = app_of(&provider, "0").await;
    let room_id = app.create_room("m_rotate").await;
    assert_eq!(join(&app, &room_id, &old.token("u1")).await, Verdict::Taken);
    assert_eq!(provider.requests(), 1);

    // The provider rotates: the new kid is fetched once, without a restart.
    provider.publish(&[&new]);
    assert_eq!(read_order(&app, &new.token("u2")).await, Verdict::Taken);
    assert_eq!(provider.requests(), 2);
    assert_eq!(join(&app, &room_id, &new.token("u2")).await, Verdict::Taken);
    assert_eq!(provider.requests(), 2, "a known kid fetches nothing");

    // The retired kid: one refetch, then unknown_key, on either route.
    assert_eq!(
        join(&app, &room_id, &old.token("u1")).await,
        refused("unknown_key")
    );
    assert_eq!(provider.requests(), 3);
    assert_eq!(
        read_order(&app, &new.token_as(Some("never-published"), "u3")).await,
        refused("unknown_key")
    );
    assert_eq!(provider.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_unknown_kids_fetches_at_most_once_per_floor() {
    let signer = Signer::eddsa("k1");
    let provider = Provider::start(&[&signer]).await;
    let app = app_of(&provider, "3600000").await;
    let room_id = app.create_room("m_burst").await;
    // The first token fetches (no fetch was tried yet); the floor counts from there.
    assert_eq!(
        join(&app, &room_id, &signer.token("u")).await,
        Verdict::Taken
    );
    assert_eq!(provider.requests(), 1);

    let app = Arc::new(app);
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let app = app.clone();
            let token = signer.token_as(Some(&format!("ghost-{i}")), "u");
            tokio::spawn(async move { read_order(&app, &token).await })
        })
        .collect();
    for answer in burst {
        assert_eq!(answer.await.unwrap(), refused("unknown_key"));
    }
    assert_eq!(provider.requests(), 1, "no fetch within the floor");

    // Within the floor a rotation is not fetched either: the floor holds.
    let next = Signer::eddsa("k2");
    provider.publish(&[&signer, &next]);
    assert_eq!(
        join(&app, &room_id, &next.token("u")).await,
        refused("unknown_key")
    );
    assert_eq!(provider.requests(), 1);
    assert_eq!(
        join(&app, &room_id, &signer.token("u")).await,
        Verdict::Taken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_say_why() {
    let signer = Signer::es256("es-1");
    let provider = Provider::start(&[&signer]).await;
    let app = app_of(&provider, "0").await;
    let room_id = app.create_room("m_refused").await;
    let now = jsonwebtoken::get_current_timestamp();
    let cases = [
        (signer.token_with("u", json!({"exp": now - 5})), "expired"),
        (
            signer.token_with("u", json!({"iss": "https://evil.test/"})),
            "bad_issuer",
        ),
        (signer.token_with("u", json!({"iss": null})), "bad_issuer"),
        (
            signer.token_with("u", json!({"aud": "another-app"})),
            "bad_audience",
        ),
        (signer.token_with("u", json!({"aud": null})), "bad_audience"),
        (signer.forger().token("u"), "bad_signature"),
        // Another algorithm under the kid of an ES256 key.
        (Signer::eddsa("es-1").token("u"), "bad_signature"),
        (
            {
                let mut token = signer.token("u");
                token.replace_range(token.len() - 4.., "AAAA");
                token
            },
            "bad_signature",
        ),
        (signer.token_with("u", json!({"sub": null})), "malformed"),
        (signer.token_with("has space", json!({})), "bad_subject"),
        (format!("{}x", app.token("forger")), "bad_signature"),
        ("not.a.jwt".to_string(), "malformed"),
    ];
    for (token, reason) in cases {
        assert_eq!(
            verdict(&app, &room_id, &token).await,
            refused(reason),
            "{token}"
        );
    }
    // Good claims, for contrast.
    assert_eq!(
        verdict(&app, &room_id, &signer.token("u")).await,
        Verdict::Taken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_public_key_files_verify_tokens_without_a_jwks() {
    let (rs, es, ed) = (Signer::rs256("-"), Signer::es256("-"), Signer::eddsa("-"));
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(linkdrop_domain::ids::new_id("pem"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (name, signer) in [("rs.pem", &rs), ("es.pem", &es), ("ed.pem", &ed)] {
        let path = dir.join(name);
        std::fs::write(&path, &signer.pem).unwrap();
        paths.push(path.to_string_lossy().into_owned());
    }
    // The identity provider's keys alone: no shared secret (an empty variable is unset).
    let app = spawn_app_with(&[
        ("LINKDROP_JWT_PUBLIC_KEY_FILES", &paths.join(",")),
        ("LINKDROP_JWT_SECRET", ""),
    ])
    .await;
    let room_id = app.create_room("m_pem").await;
    for signer in [&rs, &es, &ed] {
        let token = signer.token_as(None, "pem-user");
        assert_eq!(
            verdict(&app, &room_id, &token).await,
            Verdict::Taken,
            "{:?}",
            signer.alg
        );
    }
    // No issuer or audience configured: not checked.
    let anything = ed.sign(
        None,
        &json!({"sub": "u", "exp": jsonwebtoken::get_current_timestamp() + 60,
            "iss": "whoever", "aud": "whatever"}),
    );
    assert_eq!(verdict(&app, &room_id, &anything).await, Verdict::Taken);
    let stranger = Signer::eddsa("-");
    assert_eq!(
        verdict(&app, &room_id, &stranger.token_as(None, "u")).await,
        refused("bad_signature")
    );
    // Without the secret, HS256 tokens have no key here.
    assert_eq!(
        verdict(&app, &room_id, &app.token("hs256")).await,
        refused("unknown_key")
    );
}
