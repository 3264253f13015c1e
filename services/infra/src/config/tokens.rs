//! `tokens`: where shopper tokens of an identity provider are checked against — its JWKS
//! URL, or PEM public key files — and the `iss` and `aud` they must carry. HS256 tokens with
//! the shared secret are configured in [`secrets`](super::SecretsConfig) (`jwt_secret`).

use std::path::PathBuf;

use linkdrop_domain::tokens::{ClaimChecks, PublicKeys};

use super::layers::{Layers, parse_in_range};
use super::{ConfigError, SecretsConfig};

/// The identity provider's keys and claims.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// The identity provider's JWKS, fetched when first needed and again when a token names
    /// a `kid` it lacks (`jwt_jwks_url`).
    pub jwks_url: Option<reqwest::Url>,
    /// The least time between two fetches of the JWKS (`jwt_jwks_refetch_floor_ms`).
    pub jwks_refetch_floor_ms: u64,
    /// Keys older than this are fetched again in the background, so that withdrawn keys
    /// stop verifying (`jwt_jwks_max_age_ms`).
    pub jwks_max_age_ms: u64,
    /// PEM public key files (`jwt_public_key_files`, comma-separated), as read at start.
    pub public_key_files: Vec<PathBuf>,
    /// Their keys.
    pub public_keys: PublicKeys,
    /// `jwt_issuer` and `jwt_audience` (comma-separated: a token names one of them).
    pub checks: ClaimChecks,
}

impl TokensConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        let files: Vec<PathBuf> = layers
            .optional("jwt_public_key_files", |s| Ok(paths(s)))?
            .unwrap_or_default();
        let mut public_keys = PublicKeys::default();
        for path in &files {
            let keys = std::fs::read(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|pem| PublicKeys::from_pem(&pem))
                .map_err(|problem| ConfigError {
                    key: layers.source_of("jwt_public_key_files"),
                    problem: format!("{}: {problem}", path.display()),
                })?;
            public_keys.extend(keys);
        }
        Ok(Self {
            jwks_url: layers.optional("jwt_jwks_url", parse_jwks_url)?,
            jwks_refetch_floor_ms: layers.value("jwt_jwks_refetch_floor_ms", 30_000, |s| {
                parse_in_range(s, 0, 86_400_000)
            })?,
            jwks_max_age_ms: layers.value("jwt_jwks_max_age_ms", 600_000, |s| {
                parse_in_range(s, 1_000, 604_800_000)
            })?,
            public_key_files: files,
            public_keys,
            checks: ClaimChecks {
                issuer: layers
                    .optional("jwt_issuer", |s| Ok(s.to_string()))?
                    .filter(|s| !s.is_empty()),
                audience: layers
                    .optional("jwt_audience", |s| Ok(list(s)))?
                    .unwrap_or_default(),
            },
        })
    }

    /// Whether tokens of an identity provider are taken (a JWKS URL or PEM files).
    pub fn identity_provider(&self) -> bool {
        self.jwks_url.is_some() || !self.public_keys.is_empty()
    }

    /// Fails, naming `jwt_secret`, when no kind of shopper token can be checked: neither the
    /// shared secret nor an identity provider's keys are configured.
    pub fn require_some_keys(&self, secrets: &SecretsConfig) -> Result<(), ConfigError> {
        if self.identity_provider() {
            return Ok(());
        }
        secrets.require_jwt_secret().map(|_| ()).map_err(|e| ConfigError {
            problem: format!(
                "{} (or LINKDROP_JWT_JWKS_URL or LINKDROP_JWT_PUBLIC_KEY_FILES for an identity provider's tokens)",
                e.problem
            ),
            ..e
        })
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn paths(s: &str) -> Vec<PathBuf> {
    list(s).into_iter().map(PathBuf::from).collect()
}

fn parse_jwks_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("expected an http(s) URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("expected an http(s) URL, got {s:?}"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::config::tests::{env, load_env};

    #[test]
    fn nothing_is_checked_and_nothing_fetched_by_default() {
        let tokens = load_env(&[]).unwrap().tokens;
        assert!(tokens.jwks_url.is_none());
        assert!(!tokens.identity_provider());
        assert_eq!(tokens.jwks_refetch_floor_ms, 30_000);
        assert_eq!(tokens.jwks_max_age_ms, 600_000);
        assert_eq!(tokens.checks.issuer, None);
        assert!(tokens.checks.audience.is_empty());
    }

    #[test]
    fn issuer_audience_and_jwks_are_read() {
        let tokens = load_env(&[
            (
                "LINKDROP_JWT_JWKS_URL",
                "https://idp.example/.well-known/jwks.json",
            ),
            ("LINKDROP_JWT_ISSUER", "https://idp.example/"),
            ("LINKDROP_JWT_AUDIENCE", "shop, shop-beta"),
            ("LINKDROP_JWT_JWKS_REFETCH_FLOOR_MS", "0"),
        ])
        .unwrap()
        .tokens;
        assert!(tokens.identity_provider());
        assert_eq!(
            tokens.checks.issuer.as_deref(),
            Some("https://idp.example/")
        );
        assert_eq!(tokens.checks.audience, vec!["shop", "shop-beta"]);
        assert_eq!(tokens.jwks_refetch_floor_ms, 0);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load_env(&[("LINKDROP_JWT_JWKS_URL", "ftp://idp.example/keys")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_JWKS_URL");
        let err = load_env(&[("LINKDROP_JWT_JWKS_URL", "not a url")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_JWKS_URL");
        let err = load_env(&[("LINKDROP_JWT_JWKS_REFETCH_FLOOR_MS", "-1")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_JWKS_REFETCH_FLOOR_MS");
        let err = load_env(&[("LINKDROP_JWT_JWKS_MAX_AGE_MS", "0")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_JWKS_MAX_AGE_MS");
        let err =
            load_env(&[("LINKDROP_JWT_PUBLIC_KEY_FILES", "/nonexistent/idp.pem")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_PUBLIC_KEY_FILES");
        assert!(err.problem.contains("/nonexistent/idp.pem"), "{err}");
        let file = Path::new("linkdrop.toml");
        let text = "jwt_public_key_files = [\"Cargo.toml\"]\n";
        let err = Config::from_sources(Some((file, text)), &env(&[])).unwrap_err();
        assert_eq!(err.key, "jwt_public_key_files in linkdrop.toml");
        assert!(err.problem.contains("not a PEM file"), "{err}");
    }

    #[test]
    fn some_keys_are_required_and_the_error_names_the_secret() {
        let config = load_env(&[]).unwrap();
        let err = config
            .tokens
            .require_some_keys(&config.secrets)
            .unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_SECRET");
        assert!(err.problem.contains("LINKDROP_JWT_JWKS_URL"), "{err}");
        let config = load_env(&[("LINKDROP_JWT_JWKS_URL", "http://127.0.0.1:1/jwks")]).unwrap();
        assert!(config.tokens.require_some_keys(&config.secrets).is_ok());
    }
}
