//! Settings from the environment: each names its variable when it is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::report::{Result, config};

/// The environment a command runs with (the caller's, or a test's own).
pub type Env = BTreeMap<String, String>;

/// The caller's environment.
pub fn from_process() -> Env {
    std::env::vars().collect()
}

/// A variable, unless unset or empty.
pub fn get<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// A number, or `default` when unset.
pub fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> Result<T> {
    match get(env, name) {
        None => Ok(default),
        Some(value) => value
            .parse()
            .map_err(|_| config(format!("{name} must be a number, got '{value}'"))),
    }
}

/// A port, or `default` when unset.
pub fn port(env: &Env, name: &str, default: u16) -> Result<u16> {
    number(env, name, default)
}

/// Seconds per wait: `name`, 90 by default, above 0.
pub fn timeout(env: &Env, name: &str) -> Result<Duration> {
    let seconds: u64 = number(env, name, 90)?;
    if seconds == 0 {
        return Err(config(format!("{name} must be above 0")));
    }
    Ok(Duration::from_secs(seconds))
}

/// A directory: `name`, or `default` under the repository; relative to the working dir.
pub fn dir(env: &Env, name: &str, default: &str) -> PathBuf {
    let dir = match get(env, name) {
        Some(dir) => PathBuf::from(dir),
        None => crate::install::root().join(default),
    };
    absolute(&dir)
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}

/// `export NAME=VALUE` for `eval`, the value quoted only when it needs to be.
pub fn export_line(name: &str, value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./:,@%+=-".contains(c));
    if plain {
        format!("export {name}={value}")
    } else {
        format!("export {name}='{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
