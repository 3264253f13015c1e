//! Traces: OpenTelemetry spans sent over OTLP (HTTP, JSON bodies) to the receiver named by
//! `LINKDROP_OTLP_ENDPOINT`, in batches from a thread of their own. Off unless that is set:
//! then [`enabled`] is false, no span is made, and no trace context travels.
//!
//! One order is one trace: the HTTP request, its admission, the relay's hand-over (Kafka,
//! or settlement in process), the settlement transaction and each webhook delivery
//! attempt. Between processes the context travels as a W3C `traceparent`: in the order's
//! outbox entry (field `tp`), in a Kafka message header, in the merchant event's row. A
//! launch is one trace too: the request, its room-bus publication and each gateway's
//! fan-out (the context rides ahead of the frame on the bus, never in the frame viewers get).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::request::Parts;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};

pub use opentelemetry::trace::SpanKind;

use crate::config::TelemetryConfig;

/// How long finished spans wait before they are sent (a batch leaves sooner when full).
const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// Finished spans held for sending; beyond this (a rush with every order traced) new
/// spans are dropped rather than slowing the requests.
const QUEUE_SPANS: usize = 65_536;
/// The header and field name of the W3C trace context.
const TRACEPARENT: &str = "traceparent";

struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

/// Starts sending traces when `config` names a receiver; once per process (later calls,
/// as tests start many applications, keep the first). `roles` names this process's roles.
pub fn init(config: &TelemetryConfig, roles: &str) -> Result<(), String> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(());
    };
    if TRACING.get().is_some() {
        return Ok(());
    }
    let url = traces_url(endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url.as_str())
        .build()
        .map_err(|e| format!("LINKDROP_OTLP_ENDPOINT: {e}"))?;
    let batches = BatchConfigBuilder::default()
        .with_scheduled_delay(EXPORT_DELAY)
        .with_max_queue_size(QUEUE_SPANS)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batches)
                .build(),
        )
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.trace_sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name("linkdrop")
                .with_attribute(KeyValue::new("linkdrop.roles", roles.to_string()))
                .build(),
        )
        .build();
    let tracer = provider.tracer("linkdrop");
    let _ = TRACING.set(Tracing { provider, tracer });
    tracing::info!(%url, ratio = config.trace_sample_ratio, "sending traces");
    Ok(())
}

/// Where spans go: the receiver's base URL with `/v1/traces` appended, as OTLP/HTTP asks
/// (a base path such as `http://collector/otel` is kept).
fn traces_url(endpoint: &reqwest::Url) -> String {
    format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'))
}

/// Whether this process records traces.
pub fn enabled() -> bool {
    TRACING.get().is_some()
}

/// Sends what is finished now (at shutdown, so the last spans are not lost).
pub fn flush() {
    if let Some(installed) = TRACING.get()
        && let Err(e) = installed.provider.force_flush()
    {
        tracing::warn!(error = %e, "could not send the last traces");
    }
}

/// A span being recorded, and the context it gives its children and the next hop.
/// Dropping it ends it; [`Trace::end`] says so where the moment matters.
#[derive(Clone)]
pub struct Trace {
    cx: Context,
}

impl Trace {
    /// Starts `name` as a child of the caller's `traceparent`, or as a new trace without
    /// one (or with one that does not parse). None when tracing is off.
    pub fn continue_from(
        name: impl Into<std::borrow::Cow<'static, str>>,
        kind: SpanKind,
        traceparent: Option<&str>,
    ) -> Option<Trace> {
        let installed = TRACING.get()?;
        let parent = traceparent.map(parse).unwrap_or_default();
        Some(start(installed, name, kind, &parent))
    }

    /// Starts `name` as a child of this span.
    pub fn child(&self, name: &'static str, kind: SpanKind) -> Trace {
        match TRACING.get() {
            Some(installed) => start(installed, name, kind, &self.cx),
            None => self.clone(),
        }
    }

    /// The W3C `traceparent` of this span, for the next hop.
    pub fn traceparent(&self) -> String {
        let span = self.cx.span();
        let context = span.span_context();
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    }

    /// Records an attribute of the span.
    pub fn set(&self, key: &'static str, value: impl Into<Value>) {
        self.cx.span().set_attribute(KeyValue::new(key, value));
    }

    /// Marks the span failed, with why.
    pub fn fail(&self, why: impl ToString) {
        self.cx.span().set_status(Status::error(why.to_string()));
    }

    /// Ends the span now.
    pub fn end(self) {
        self.cx.span().end();
    }
}

fn start(
    installed: &Tracing,
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
) -> Trace {
    let span = installed
        .tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(&installed.tracer, parent);
    Trace {
        cx: parent.with_span(span),
    }
}

/// The settlement spans of one batch: one per traced order, from before its transaction
/// to after it, and the context each order's merchant events carry on (by order id).
#[derive(Default)]
pub struct Settling {
    spans: Vec<Trace>,
    /// Order id to the `traceparent` its merchant events join: this process's settlement
    /// span, or (tracing off here) the context the order arrived with, passed on.
    pub traces: HashMap<String, String>,
}

impl Settling {
    /// Starts the spans of a batch of `batch` events, of which `traced` are the orders
    /// that arrived with a `traceparent`.
    pub fn start<'a>(traced: impl IntoIterator<Item = (&'a str, &'a str)>, batch: usize) -> Self {
        let mut settling = Settling::default();
        for (order_id, traceparent) in traced {
            let next = match Trace::continue_from("settle", SpanKind::Consumer, Some(traceparent)) {
                Some(span) => {
                    span.set("linkdrop.order_id", order_id.to_string());
                    span.set("linkdrop.batch_size", batch as i64);
                    let next = span.traceparent();
                    settling.spans.push(span);
                    next
                }
                None => traceparent.to_string(),
            };
            settling.traces.insert(order_id.to_string(), next);
        }
        settling
    }

    /// Ends the spans: the transaction committed, or `failed` says why not.
    pub fn end(self, failed: Option<&str>) {
        for span in self.spans {
            if let Some(why) = failed {
                span.fail(why);
            }
            span.end();
        }
    }
}

/// The remote context a `traceparent` names (an empty context when it does not parse).
fn parse(traceparent: &str) -> Context {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// Middleware: every HTTP request is a server span named by its method and route,
/// continuing the caller's `traceparent`; handlers reach it through [`RequestTrace`].
pub async fn http_span(mut request: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().to_string();
    let caller = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    let Some(trace) = Trace::continue_from(format!("{method} {route}"), SpanKind::Server, caller)
    else {
        return next.run(request).await;
    };
    trace.set("http.request.method", method);
    trace.set("http.route", route);
    request.extensions_mut().insert(trace.clone());
    let response = next.run(request).await;
    let status = response.status();
    trace.set("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        trace.fail(status);
    }
    trace.end();
    response
}

/// The span of the request being handled, when tracing is on.
pub struct RequestTrace(pub Option<Trace>);

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestTrace(parts.extensions.get::<Trace>().cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_names_its_trace_and_parent_span() {
        let cx = parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let span = cx.span();
        let context = span.span_context();
        assert!(context.is_valid() && context.is_remote() && context.is_sampled());
        assert_eq!(
            context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(context.span_id().to_string(), "b7ad6b7169203331");
        assert!(!parse("00-not-a-trace").span().span_context().is_valid());
    }

    #[test]
    fn spans_go_to_v1_traces_under_the_receivers_base_url() {
        let url = |s: &str| traces_url(&reqwest::Url::parse(s).unwrap());
        assert_eq!(
            url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            url("http://collector/otel/"),
            "http://collector/otel/v1/traces"
        );
        assert_eq!(
            url("http://collector/otel"),
            "http://collector/otel/v1/traces"
        );
    }

    #[test]
    fn nothing_is_traced_while_tracing_is_off() {
        assert!(!enabled());
        assert!(Trace::continue_from("x", SpanKind::Server, None).is_none());
    }
}
