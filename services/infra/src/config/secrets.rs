//! `secrets`: the admin key, the shopper-token secret and the key sealing webhook signing
//! secrets. Each is optional here; a command that needs one asks for it with `require_*`,
//! which names the variable to set. Their values are never printed, not even in errors.

use linkdrop_domain::secret::Secret;
use linkdrop_domain::webhook_secrets::SealingKey;

use super::ConfigError;
use super::layers::{Layers, missing};

/// The shortest accepted JWT secret: HS256 wants a key at least as long as its hash.
const MIN_JWT_SECRET_BYTES: usize = 32;
/// The shortest accepted admin key; anything shorter can be guessed.
const MIN_ADMIN_KEY_CHARS: usize = 16;

/// The secrets of an installation.
#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// The admin API key; may do everything. Required by roles that serve the control API.
    pub admin_key: Option<Secret>,
    /// HS256 secret of shopper tokens. Required to mint them; roles that check them need it
    /// or an identity provider's keys ([`TokensConfig`](super::TokensConfig)).
    pub jwt_secret: Option<Secret>,
    /// Seals webhook signing secrets at rest (`webhook_secret_key`). Required by the
    /// control and webhooks roles.
    pub webhook_secret_key: Option<SealingKey>,
}

impl SecretsConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            admin_key: layers.optional("admin_key", parse_admin_key)?,
            jwt_secret: layers.optional("jwt_secret", parse_jwt_secret)?,
            webhook_secret_key: layers.optional("webhook_secret_key", SealingKey::parse)?,
        })
    }

    /// The shopper-token secret, or an error naming the key.
    pub fn require_jwt_secret(&self) -> Result<&Secret, ConfigError> {
        self.jwt_secret
            .as_ref()
            .ok_or_else(|| missing("jwt_secret"))
    }

    /// The admin key, or an error naming the key.
    pub fn require_admin_key(&self) -> Result<&Secret, ConfigError> {
        self.admin_key.as_ref().ok_or_else(|| missing("admin_key"))
    }

    /// The key sealing webhook secrets, or an error naming it.
    pub fn require_webhook_secret_key(&self) -> Result<&SealingKey, ConfigError> {
        self.webhook_secret_key
            .as_ref()
            .ok_or_else(|| missing("webhook_secret_key"))
    }
}

fn parse_admin_key(s: &str) -> Result<Secret, String> {
    if s.chars().count() < MIN_ADMIN_KEY_CHARS {
        return Err(format!(
            "must be at least {MIN_ADMIN_KEY_CHARS} characters (the value is not shown)"
        ));
    }
    Ok(Secret::new(s))
}

fn parse_jwt_secret(s: &str) -> Result<Secret, String> {
    if s.len() < MIN_JWT_SECRET_BYTES {
        return Err(format!(
            "must be at least {MIN_JWT_SECRET_BYTES} bytes (the value is not shown)"
        ));
    }
    Ok(Secret::new(s))
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn a_short_secret_is_refused_without_printing_it() {
        let err = load_env(&[("LINKDROP_JWT_SECRET", "tooshort-secret")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_SECRET");
        assert!(!err.to_string().contains("tooshort-secret"), "{err}");
        let err = load_env(&[("LINKDROP_ADMIN_KEY", "short-admin")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_ADMIN_KEY");
        assert!(!err.to_string().contains("short-admin"), "{err}");
    }

    #[test]
    fn a_missing_secret_names_the_variable_to_set() {
        let secrets = load_env(&[]).unwrap().secrets;
        assert_eq!(
            secrets.require_jwt_secret().unwrap_err().key,
            "LINKDROP_JWT_SECRET"
        );
        assert_eq!(
            secrets.require_admin_key().unwrap_err().key,
            "LINKDROP_ADMIN_KEY"
        );
        assert_eq!(
            secrets.require_webhook_secret_key().unwrap_err().key,
            "LINKDROP_WEBHOOK_SECRET_KEY"
        );
        let secrets = load_env(&[("LINKDROP_ADMIN_KEY", "an-admin-key-of-some-length")])
            .unwrap()
            .secrets;
        assert!(secrets.require_admin_key().is_ok());
    }
}
