//! OpenTelemetry traces over OTLP/HTTP, on only when `telemetry.otlp_endpoint` is set.
//!
//! Spans are `tracing` spans under the target [`TARGET`] at DEBUG. The log output never
//! enables that target, so with traces off their callsites are disabled once and cost a
//! branch; with traces on, only the OpenTelemetry layer sees them (a filter of its own), and
//! log lines are what they would be without it. W3C `traceparent` is read from a request
//! ([`request_span`]) and written on a call to Zoom ([`propagate`]).
//!
//! A span's attributes are names, templates, statuses and counts: never a token, a secret, a
//! user ID, an email or a meeting number.

use std::sync::OnceLock;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetrySettings;

/// The `tracing` target of every span meant for traces.
pub const TARGET: &str = "ztv::trace";

/// The process's tracer provider, kept to flush it at exit.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The layer that exports `ztv::trace` spans to the configured collector, with its own
/// filter; `None` when traces are off. Its batches go out from a thread of their own.
pub fn layer<S>(settings: &TelemetrySettings) -> anyhow::Result<Option<impl Layer<S>>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(endpoint) = &settings.otlp_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint).as_str())
        .build()?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("ztv");
    let _ = PROVIDER.set(provider);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(TARGET, Level::DEBUG));
    Ok(Some(layer))
}

/// `{base}/v1/traces`, keeping any path `base` has (a collector behind a path prefix).
fn traces_url(base: &url::Url) -> url::Url {
    let mut url = base.clone();
    let path = format!("{}/v1/traces", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// Sends the spans still queued and stops the exporter; a no-op when traces are off.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "cannot flush the last traces");
    }
}

/// Whether spans for traces are recorded at all (the OpenTelemetry layer is installed).
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, Level::DEBUG)
}

/// A request's span, named after its route template (`GET /v1/users/{userId}/zak`), a child
/// of the caller's `traceparent` when it sent one; disabled when traces are off, before any
/// work. Its status and caller are recorded by [`finish_request_span`].
pub fn request_span(method: &str, route: &str, headers: &HeaderMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::debug_span!(
        target: TARGET,
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        ztv.caller = tracing::field::Empty,
        ztv.caller_kind = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderText(headers));
    // A request without a valid `traceparent` starts a trace of its own.
    let _ = span.set_parent(parent);
    span
}

/// Who asked, as a trace may say it: an API client by its configured name; an end user only
/// as `end_user` (their name is their identity provider's subject).
pub enum CallerLabel<'a> {
    ApiClient(&'a str),
    EndUser,
}

/// Records what is known once the request is answered.
pub fn finish_request_span(span: &Span, status: u16, caller: Option<CallerLabel<'_>>) {
    if span.is_disabled() {
        return;
    }
    // As i64: the OpenTelemetry layer would write a u64 as text.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    match caller {
        Some(CallerLabel::ApiClient(name)) => {
            span.record("ztv.caller", name);
            span.record("ztv.caller_kind", "api_client");
        }
        Some(CallerLabel::EndUser) => {
            span.record("ztv.caller_kind", "end_user");
        }
        None => {}
    }
}

/// `request` with a `traceparent` naming `span`, when traces are on and `span` is recorded.
pub fn propagate(request: reqwest::RequestBuilder, span: &Span) -> reqwest::RequestBuilder {
    if span.is_disabled() {
        return request;
    }
    let mut headers = Vec::with_capacity(2);
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderPairs(&mut headers));
    headers.into_iter().fold(request, |request, (name, value)| {
        request.header(name, value)
    })
}

/// Incoming headers as the propagator reads them.
struct HeaderText<'a>(&'a HeaderMap);

impl Extractor for HeaderText<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Outgoing headers as the propagator writes them.
struct HeaderPairs<'a>(&'a mut Vec<(&'static str, String)>);

impl Injector for HeaderPairs<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C propagator writes only these two.
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_posted_under_the_collectors_base_path() {
        let url = |text: &str| traces_url(&url::Url::parse(text).unwrap()).to_string();
        assert_eq!(
            url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            url("https://otel.example.com/collector/"),
            "https://otel.example.com/collector/v1/traces"
        );
    }

    #[test]
    fn without_traces_no_span_is_made_and_nothing_is_propagated() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let span = request_span("GET", "/healthz", &headers);
        assert!(span.is_disabled());
        let request = propagate(reqwest::Client::new().get("http://127.0.0.1/"), &span)
            .build()
            .unwrap();
        assert!(request.headers().get("traceparent").is_none());
    }
}
