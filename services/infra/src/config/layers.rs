//! The raw layers of the configuration — an optional `linkdrop.toml`, then `LINKDROP_*`
//! variables — and the reading of one key from them: the environment wins, an empty
//! variable counts as unset, and a value that does not parse becomes a [`ConfigError`]
//! naming where it came from (`LINKDROP_HTTP_ADDR`, or `http_addr in linkdrop.toml`).
//!
//! Every key read is remembered, so that a key in the file that no section read is refused
//! by name (a typo must not silently fall back to a default).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ConfigError;

/// Prefix of every environment variable that configures linkdrop.
pub const ENV_PREFIX: &str = "LINKDROP_";

/// The environment variable that sets a file key: `http_addr` → `LINKDROP_HTTP_ADDR`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The error of a command that needs `key` when it is not set.
pub(super) fn missing(key: &str) -> ConfigError {
    ConfigError {
        key: env_name(key),
        problem: format!("required by this command but not set (or set {key} in linkdrop.toml)"),
    }
}

/// Where a raw value came from, to name it in errors.
enum Origin<'a> {
    Env,
    File(&'a Path),
}

/// The raw layers, and the keys read so far (to spot unknown keys in the file).
pub(super) struct Layers<'a> {
    file: BTreeMap<String, String>,
    file_path: Option<&'a Path>,
    env: &'a BTreeMap<String, String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Layers<'a> {
    /// The layers of a file's text (when given) and a set of `LINKDROP_*` variables.
    pub(super) fn new(
        file: Option<(&'a Path, &str)>,
        env: &'a BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some((path, text)) = file {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
                key: path.display().to_string(),
                problem: format!("not valid TOML: {}", e.message()),
            })?;
            for (key, value) in table {
                let raw = toml_scalar(&value).ok_or_else(|| ConfigError {
                    key: format!("{key} in {}", path.display()),
                    problem: "expected a string, number, boolean or list of strings".into(),
                })?;
                values.insert(key, raw);
            }
        }
        Ok(Self {
            file: values,
            file_path: file.map(|(p, _)| p),
            env,
            read: RefCell::new(BTreeSet::new()),
        })
    }

    fn raw(&self, key: &'static str) -> Option<(String, Origin<'a>)> {
        self.read.borrow_mut().insert(key);
        if let Some(v) = self.env.get(&env_name(key)).filter(|v| !v.is_empty()) {
            return Some((v.clone(), Origin::Env));
        }
        let path = self.file_path?;
        self.file.get(key).map(|v| (v.clone(), Origin::File(path)))
    }

    /// `key` parsed, or `None` when no layer sets it.
    pub(super) fn optional<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((raw, origin)) = self.raw(key) else {
            return Ok(None);
        };
        parse(raw.trim()).map(Some).map_err(|problem| ConfigError {
            key: match origin {
                Origin::Env => env_name(key),
                Origin::File(path) => format!("{key} in {}", path.display()),
            },
            problem,
        })
    }

    /// `key` parsed, or `default` when no layer sets it.
    pub(super) fn value<T>(
        &self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        Ok(self.optional(key, parse)?.unwrap_or(default))
    }

    /// Where `key`'s value came from, for an error about it.
    pub(super) fn source_of(&self, key: &'static str) -> String {
        match self.raw(key) {
            Some((_, Origin::File(path))) => format!("{key} in {}", path.display()),
            _ => env_name(key),
        }
    }

    /// Refuses a key of the file that no section read.
    pub(super) fn reject_unknown_file_keys(&self) -> Result<(), ConfigError> {
        let read = self.read.borrow();
        match (
            self.file.keys().find(|k| !read.contains(k.as_str())),
            self.file_path,
        ) {
            (Some(key), Some(path)) => Err(ConfigError {
                key: format!("{key} in {}", path.display()),
                problem: "unknown setting (see the table in docs/configuration.md)".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// A TOML value as the text an environment variable would hold (a list joined by commas).
fn toml_scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// A whole number between `min` and `max`.
pub(super) fn parse_in_range<T>(s: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = s
        .parse()
        .map_err(|_| format!("expected a whole number, got {s:?}"))?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}, got {n}"));
    }
    Ok(n)
}

pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_environment_wins_and_an_empty_variable_counts_as_unset() {
        let path = Path::new("linkdrop.toml");
        let vars = env(&[("LINKDROP_A", "from-env"), ("LINKDROP_B", "")]);
        let layers = Layers::new(Some((path, "a = \"file\"\nb = \"file\"\n")), &vars).unwrap();
        let text = |s: &str| Ok::<_, String>(s.to_string());
        assert_eq!(layers.value("a", String::new(), text).unwrap(), "from-env");
        assert_eq!(layers.value("b", String::new(), text).unwrap(), "file");
        assert_eq!(
            layers.value("c", "default".into(), text).unwrap(),
            "default"
        );
    }

    #[test]
    fn a_list_in_the_file_reads_as_a_comma_separated_value() {
        let path = Path::new("linkdrop.toml");
        let vars = env(&[]);
        let layers = Layers::new(Some((path, "nets = [\"a\", \"b\"]\n")), &vars).unwrap();
        let text = |s: &str| Ok::<_, String>(s.to_string());
        assert_eq!(
            layers.optional("nets", text).unwrap().as_deref(),
            Some("a,b")
        );
    }

    #[test]
    fn a_table_in_the_file_is_refused_by_key() {
        let path = Path::new("linkdrop.toml");
        let vars = env(&[]);
        let err = Layers::new(Some((path, "[orders]\nbatch_max = 1\n")), &vars)
            .err()
            .unwrap();
        assert_eq!(err.key, "orders in linkdrop.toml");
    }

    #[test]
    fn numbers_out_of_range_say_the_range() {
        assert_eq!(parse_in_range("5", 1, 10), Ok(5));
        assert_eq!(
            parse_in_range("0", 1, 10),
            Err("must be between 1 and 10, got 0".to_string())
        );
        assert!(parse_in_range::<u32>("-1", 0, 10).is_err());
        assert_eq!(parse_bool("1"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }
}
