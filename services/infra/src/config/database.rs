//! `database`: PostgreSQL, the system of record.

use linkdrop_domain::secret::Secret;

use super::ConfigError;
use super::layers::{Layers, missing, parse_in_range};

/// Where the records are.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL (`database_url`). A secret because URLs carry passwords.
    pub url: Option<Secret>,
    /// Upper bound of the PostgreSQL pool of one process (`database_max_connections`).
    pub max_connections: u32,
}

impl DatabaseConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            url: layers.optional("database_url", parse_database_url)?,
            max_connections: layers.value("database_max_connections", 20, |s| {
                parse_in_range(s, 1, 1000)
            })?,
        })
    }

    /// The PostgreSQL URL, or an error naming the key.
    pub fn require(&self) -> Result<&Secret, ConfigError> {
        self.url.as_ref().ok_or_else(|| missing("database_url"))
    }
}

fn parse_database_url(s: &str) -> Result<Secret, String> {
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        // The URL may hold a password: say what is expected, not what was given.
        return Err("expected a postgres:// URL (the value is not shown)".into());
    }
    Ok(Secret::new(s))
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn a_database_url_with_a_password_is_never_echoed() {
        let err = load_env(&[("LINKDROP_DATABASE_URL", "mysql://u:pw-123@h/db")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_DATABASE_URL");
        assert!(!err.to_string().contains("pw-123"), "{err}");
    }

    #[test]
    fn the_pool_defaults_to_twenty_connections() {
        let database = load_env(&[]).unwrap().database;
        assert_eq!(database.max_connections, 20);
        assert_eq!(database.require().unwrap_err().key, "LINKDROP_DATABASE_URL");
        let err = load_env(&[("LINKDROP_DATABASE_MAX_CONNECTIONS", "0")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_DATABASE_MAX_CONNECTIONS");
    }
}
