//! `embedded`: the backend used when none of Redis, Kafka and PostgreSQL is configured —
//! the engine (live state) and SQLite (records), both files in one directory.

use std::path::PathBuf;

use linkdrop_engine::{DataSync, JournalOptions};

use super::ConfigError;
use super::layers::{Layers, parse_in_range};

/// The embedded backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Where the embedded backend keeps its files (`data_dir`).
    pub data_dir: PathBuf,
    /// How durable the engine's journal commits are (`data_sync`: `normal` or `full`).
    pub data_sync: DataSync,
    /// Journal bytes written since the last compaction that start the next one, at least
    /// (`data_compact_after_bytes`; the bound grows to twice the state's snapshot).
    pub data_compact_after_bytes: u64,
}

impl EmbeddedConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            data_dir: layers.value("data_dir", PathBuf::from("linkdrop-data"), parse_path)?,
            data_sync: layers.value("data_sync", DataSync::Normal, parse_sync)?,
            data_compact_after_bytes: layers.value(
                "data_compact_after_bytes",
                JournalOptions::default().compact_after_bytes,
                |s| parse_in_range(s, 1 << 10, 1 << 40),
            )?,
        })
    }
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("must be a directory path".into());
    }
    Ok(PathBuf::from(s))
}

fn parse_sync(s: &str) -> Result<DataSync, String> {
    DataSync::parse(s).ok_or_else(|| "must be normal or full".into())
}
