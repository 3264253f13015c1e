//! `telemetry`: what is logged and how, and where traces go.

use super::ConfigError;
use super::layers::Layers;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The logs and traces of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info` or `linkdrop_orders=debug,info` (`log`).
    pub log_filter: String,
    /// `text` or `json` (`log_format`).
    pub log_format: LogFormat,
    /// Where traces are sent: an OTLP/HTTP receiver's base URL, e.g.
    /// `http://127.0.0.1:4318` (spans go to `<url>/v1/traces`). None: no traces at all
    /// (`otlp_endpoint`).
    pub otlp_endpoint: Option<reqwest::Url>,
    /// Share of new traces recorded, 0 to 1; a trace begun by the caller (a `traceparent`
    /// header) follows the caller's choice (`trace_sample_ratio`).
    pub trace_sample_ratio: f64,
}

impl TelemetryConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            log_filter: layers.value("log", "info".to_string(), parse_filter)?,
            log_format: layers.value("log_format", LogFormat::Text, parse_log_format)?,
            otlp_endpoint: layers.optional("otlp_endpoint", parse_otlp_endpoint)?,
            trace_sample_ratio: layers.value("trace_sample_ratio", 1.0, parse_ratio)?,
        })
    }
}

fn parse_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log filter such as info or linkdrop_orders=debug,info: {e}"))
}

fn parse_otlp_endpoint(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s)
        .map_err(|e| format!("expected the http URL of an OTLP receiver: {e}"))?;
    if url.scheme() != "http" || url.host_str().is_none() {
        return Err("expected an http:// URL such as http://127.0.0.1:4318".into());
    }
    Ok(url)
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("expected a number from 0 to 1, got {s:?}")),
    }
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

    #[test]
    fn traces_are_off_unless_an_endpoint_is_given() {
        let telemetry = load_env(&[]).unwrap().telemetry;
        assert_eq!(telemetry.otlp_endpoint, None);
        assert_eq!(telemetry.trace_sample_ratio, 1.0);
        let telemetry = load_env(&[
            ("LINKDROP_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("LINKDROP_TRACE_SAMPLE_RATIO", "0.25"),
        ])
        .unwrap()
        .telemetry;
        assert_eq!(
            telemetry.otlp_endpoint.map(|u| u.to_string()),
            Some("http://127.0.0.1:4318/".to_string())
        );
        assert_eq!(telemetry.trace_sample_ratio, 0.25);
        for bad in ["collector:4318", "https://collector:4318", "ftp://x"] {
            let err = load_env(&[("LINKDROP_OTLP_ENDPOINT", bad)]).unwrap_err();
            assert_eq!(err.key, "LINKDROP_OTLP_ENDPOINT", "{bad}");
        }
        for bad in ["2", "-0.1", "half"] {
            let err = load_env(&[("LINKDROP_TRACE_SAMPLE_RATIO", bad)]).unwrap_err();
            assert_eq!(err.key, "LINKDROP_TRACE_SAMPLE_RATIO", "{bad}");
        }
    }
}
