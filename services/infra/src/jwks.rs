//! An identity provider's JWKS, fetched over HTTP and kept in memory: fetched when a token
//! first needs it, and again when a token names a `kid` it lacks (the provider rotated its
//! keys) — but never twice within the refetch floor, however many such tokens arrive, so
//! that a burst of forged `kid`s cannot turn linkdrop against the provider. Keys older than
//! the maximum age are fetched again in the background, so that a key the provider
//! withdrew stops verifying tokens without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use linkdrop_domain::tokens::PublicKeys;

/// How long one fetch of the JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS document taken.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The time as the floor sees it; tests pass one they move by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The JWKS at one URL, as last fetched.
pub struct Jwks {
    url: reqwest::Url,
    client: reqwest::Client,
    floor: Duration,
    max_age: Duration,
    clock: Clock,
    keys: RwLock<Arc<PublicKeys>>,
    /// When the keys were last fetched successfully.
    fetched_at: Mutex<Option<Instant>>,
    /// A background refresh of stale keys is under way.
    refreshing: AtomicBool,
    /// When the last fetch was tried; held while fetching, so that one fetch serves every
    /// caller that waited for it.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Nothing is fetched until [`Jwks::refetch`] is called. Keys are fetched again at most
    /// once per `floor`, and in the background once older than `max_age`.
    pub fn new(url: reqwest::Url, floor: Duration, max_age: Duration) -> Self {
        Self {
            url,
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .expect("an HTTP client with a timeout builds"),
            floor,
            max_age,
            clock: Arc::new(Instant::now),
            keys: RwLock::new(Arc::new(PublicKeys::default())),
            fetched_at: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    /// The same, with the time read from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The keys as last fetched (none before the first fetch).
    pub fn keys(&self) -> Arc<PublicKeys> {
        self.keys.read().expect("jwks lock").clone()
    }

    /// Fresh keys for a caller that found `seen` lacking: those another caller fetched
    /// meanwhile, or those of a new fetch — unless the last fetch was tried less than the
    /// floor ago, when the keys stay as they are.
    pub async fn refetch(&self, seen: &Arc<PublicKeys>) -> Arc<PublicKeys> {
        let mut last_attempt = self.last_attempt.lock().await;
        let current = self.keys();
        if !Arc::ptr_eq(&current, seen) {
            return current;
        }
        let now = (self.clock)();
        if last_attempt.is_some_and(|at| now.saturating_duration_since(at) < self.floor) {
            return current;
        }
        *last_attempt = Some(now);
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
                let keys = Arc::new(keys);
                *self.keys.write().expect("jwks lock") = keys.clone();
                *self.fetched_at.lock().expect("jwks lock") = Some(now);
                keys
            }
            Err(problem) => {
                tracing::warn!(url = %self.url, %problem, "could not fetch the JWKS");
                current
            }
        }
    }

    /// When the keys are older than the maximum age, fetches them again in the background
    /// (within the floor; one refresh at a time); its task, to await in tests.
    pub fn refresh_if_stale(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let fetched_at = (*self.fetched_at.lock().expect("jwks lock"))?;
        if (self.clock)().saturating_duration_since(fetched_at) < self.max_age
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        let jwks = self.clone();
        Some(tokio::spawn(async move {
            jwks.refetch(&jwks.keys()).await;
            jwks.refreshing.store(false, Ordering::Release);
        }))
    }

    async fn fetch(&self) -> Result<PublicKeys, String> {
        let response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("document over {MAX_DOCUMENT_BYTES} bytes"));
        }
        PublicKeys::from_jwks(&body)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;

    /// A JWKS server on loopback: serves `kids` (Ed25519 keys), counts the requests.
    #[derive(Clone, Default)]
    struct Provider {
        kids: Arc<Mutex<Vec<&'static str>>>,
        requests: Arc<AtomicUsize>,
    }

    impl Provider {
        async fn start(kids: &[&'static str]) -> (Provider, reqwest::Url) {
            let provider = Provider::default();
            provider.serve(kids);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            let app = Router::new()
                .route("/jwks.json", get(jwks_document))
                .with_state(provider.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            (provider, url.parse().unwrap())
        }

        fn serve(&self, kids: &[&'static str]) {
            *self.kids.lock().unwrap() = kids.to_vec();
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// The document, or 503 while the provider serves no key.
    async fn jwks_document(
        State(provider): State<Provider>,
    ) -> Result<axum::Json<Value>, axum::http::StatusCode> {
        provider.requests.fetch_add(1, Ordering::SeqCst);
        let keys: Vec<Value> = provider
            .kids
            .lock()
            .unwrap()
            .iter()
            .map(|kid| json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}))
            .collect();
        if keys.is_empty() {
            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        }
        Ok(axum::Json(json!({ "keys": keys })))
    }

    /// A clock that moves only when told.
    fn manual_clock() -> (Clock, Arc<Mutex<Duration>>) {
        let start = Instant::now();
        let offset = Arc::new(Mutex::new(Duration::ZERO));
        let read = offset.clone();
        (Arc::new(move || start + *read.lock().unwrap()), offset)
    }

    #[tokio::test]
    async fn a_burst_of_refetches_fetches_at_most_once_per_floor() {
        let (provider, url) = Provider::start(&["k1"]).await;
        let (clock, offset) = manual_clock();
        let jwks = Arc::new(
            Jwks::new(url, Duration::from_secs(30), Duration::from_secs(3600)).with_clock(clock),
        );
        assert!(jwks.keys().is_empty());
        assert_eq!(
            provider.requests(),
            0,
            "nothing is fetched before it is needed"
        );

        let first = jwks.refetch(&jwks.keys()).await;
        assert!(first.knows("k1"));
        assert_eq!(provider.requests(), 1);

        // The provider rotates; within the floor, no burst reaches it.
        provider.serve(&["k2"]);
        let burst: Vec<_> = (0..20)
            .map(|_| {
                let (jwks, seen) = (jwks.clone(), first.clone());
                tokio::spawn(async move { jwks.refetch(&seen).await })
            })
            .collect();
        for refetch in burst {
            assert!(!refetch.await.unwrap().knows("k2"));
        }
        assert_eq!(provider.requests(), 1);

        // Past the floor, one fetch serves a whole burst.
        *offset.lock().unwrap() += Duration::from_secs(30);
        let burst: Vec<_> = (0..20)
            .map(|_| {
                let (jwks, seen) = (jwks.clone(), first.clone());
                tokio::spawn(async move { jwks.refetch(&seen).await })
            })
            .collect();
        for refetch in burst {
            let keys = refetch.await.unwrap();
            assert!(keys.knows("k2") && !keys.knows("k1"));
        }
        assert_eq!(provider.requests(), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_keys_and_counts_against_the_floor() {
        let (clock, offset) = manual_clock();
        let (provider, url) = Provider::start(&[]).await;
        let jwks =
            Jwks::new(url, Duration::from_secs(1), Duration::from_secs(3600)).with_clock(clock);
        let seen = jwks.keys();
        let after = jwks.refetch(&seen).await;
        assert!(Arc::ptr_eq(&after, &seen), "a 503 changes nothing");
        assert_eq!(provider.requests(), 1);
        provider.serve(&["k1"]);
        *offset.lock().unwrap() += Duration::from_millis(999);
        assert!(jwks.refetch(&seen).await.is_empty());
        assert_eq!(
            provider.requests(),
            1,
            "a failed fetch counts against the floor"
        );
        *offset.lock().unwrap() += Duration::from_millis(1);
        let fetched = jwks.refetch(&seen).await;
        assert!(fetched.knows("k1"));
        assert_eq!(provider.requests(), 2);
        // The provider fails again: the keys fetched before stay.
        provider.serve(&[]);
        *offset.lock().unwrap() += Duration::from_secs(1);
        assert!(jwks.refetch(&fetched).await.knows("k1"));
        assert_eq!(provider.requests(), 3);
    }

    #[tokio::test]
    async fn keys_past_their_maximum_age_are_fetched_again_in_the_background() {
        let (clock, offset) = manual_clock();
        let (provider, url) = Provider::start(&["k1"]).await;
        let jwks = Arc::new(
            Jwks::new(url, Duration::from_secs(1), Duration::from_secs(600)).with_clock(clock),
        );
        assert!(
            jwks.refresh_if_stale().is_none(),
            "never fetched: nothing to refresh"
        );
        jwks.refetch(&jwks.keys()).await;
        assert_eq!(provider.requests(), 1);
        *offset.lock().unwrap() += Duration::from_secs(599);
        assert!(jwks.refresh_if_stale().is_none());

        // The provider withdrew k1; once the keys are old, the refresh drops it.
        provider.serve(&["k2"]);
        *offset.lock().unwrap() += Duration::from_secs(1);
        let refresh = jwks.refresh_if_stale().expect("a refresh starts");
        refresh.await.unwrap();
        assert_eq!(provider.requests(), 2);
        assert!(jwks.keys().knows("k2") && !jwks.keys().knows("k1"));
        assert!(jwks.refresh_if_stale().is_none(), "fresh again");
    }
}
