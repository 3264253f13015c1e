//! What the launcher needs installed (Redis, PostgreSQL, Java and Kafka's jars, which
//! `scripts/setup` installs), and where: the repository, the cache of downloads.

use std::path::PathBuf;
use std::process::Command;

use crate::report::{Result, config};

/// The repository the launcher was built from.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("LINKDROP_CACHE_DIR") {
        Some(dir) => dir.into(),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/linkdrop"),
    }
}

fn kafka_pom() -> PathBuf {
    root().join("scripts/kafka/pom.xml")
}

/// The Kafka version: the pom's `<kafka.version>` (its one home).
fn kafka_version() -> Result<String> {
    let pom = std::fs::read_to_string(kafka_pom())?;
    pom.split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split("</kafka.version>").next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| config(format!("no <kafka.version> in {}", kafka_pom().display())))
}

fn kafka_home() -> Result<PathBuf> {
    Ok(cache_dir().join(format!("kafka-{}", kafka_version()?)))
}

/// The directory of Kafka's jars.
pub fn kafka_lib() -> Result<PathBuf> {
    Ok(kafka_home()?.join("lib"))
}

/// Whether Kafka's jars are downloaded for the pom as it is (its marker holds the pom's
/// checksum).
fn kafka_ready() -> bool {
    let Ok(home) = kafka_home() else { return false };
    let Ok(marker) = std::fs::read_to_string(home.join(".complete")) else {
        return false;
    };
    let sum = Command::new("sha256sum").arg(kafka_pom()).output();
    home.join("lib").is_dir()
        && sum.is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                == Some(marker.trim())
        })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs `scripts/setup` when something the launcher starts is missing.
pub fn ensure_installed() -> Result<()> {
    let present = on_path("redis-server")
        && on_path("redis-cli")
        && crate::postgres::bindir().is_some()
        && on_path("java")
        && kafka_ready();
    if present {
        return Ok(());
    }
    let ok = Command::new(root().join("scripts/setup"))
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(config("scripts/setup failed"))
    }
}
