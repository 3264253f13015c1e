//! `telemetry`: what is logged and how.

use super::ConfigError;
use super::layers::Layers;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The logs of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info` or `linkdrop_orders=debug,info` (`log`).
    pub log_filter: String,
    /// `text` or `json` (`log_format`).
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            log_filter: layers.value("log", "info".to_string(), parse_filter)?,
            log_format: layers.value("log_format", LogFormat::Text, parse_log_format)?,
        })
    }
}

fn parse_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log filter such as info or linkdrop_orders=debug,info: {e}"))
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected text or json, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load_env;

    #[test]
    fn logs_are_info_text_unless_told() {
        let telemetry = load_env(&[]).unwrap().telemetry;
        assert_eq!(
            (telemetry.log_filter.as_str(), telemetry.log_format),
            ("info", LogFormat::Text)
        );
        let telemetry = load_env(&[("LINKDROP_LOG", "debug"), ("LINKDROP_LOG_FORMAT", "json")])
            .unwrap()
            .telemetry;
        assert_eq!(
            (telemetry.log_filter.as_str(), telemetry.log_format),
            ("debug", LogFormat::Json)
        );
        let err = load_env(&[("LINKDROP_LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_LOG_FORMAT");
        let err = load_env(&[("LINKDROP_LOG", "linkdrop=loud")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_LOG");
    }
}
