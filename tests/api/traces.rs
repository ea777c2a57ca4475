//! OpenTelemetry traces: the real binary exports its spans over OTLP/HTTP to a small receiver
//! started here, and propagates the trace to Zoom (the emulator keeps the `traceparent`s it
//! receives).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

use crate::helpers::{
    ALICE_EMAIL, ALICE_ID, ConfigFile, Process, S2S_SECRET, start_emulator, zoom_config,
};

/// The caller's trace, as its `traceparent` names it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver on 127.0.0.1: every span posted to `/v1/traces`, kept.
struct Receiver {
    base: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(Arc::clone(&spans));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { base, spans }
    }

    /// The spans received once one named `name` has arrived; fails after 30 s.
    async fn spans_once(&self, name: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if spans.iter().any(|span| span.name == name) {
                return spans;
            }
            let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
            assert!(
                Instant::now() < deadline,
                "no `{name}` span among {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Answers an export as a collector does: 200 with an empty (protobuf) response.
async fn receive(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut kept = spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            kept.extend(scope.spans);
        }
    }
    ""
}

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|value| value.value)
}

fn text(span: &Span, key: &str) -> String {
    match attribute(span, key) {
        Some(AnyValue::StringValue(text)) => text,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

/// The one span named `name` with `key` = `value` (any, when `key` is empty).
fn the<'a>(spans: &'a [Span], name: &str, key: &str, value: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|span| span.name == name && (key.is_empty() || text(span, key) == value))
        .collect();
    assert_eq!(found.len(), 1, "one `{name}` {key}={value}: {found:#?}");
    found[0]
}

/// `child`'s parent is `parent`, in the same trace.
fn assert_child(child: &Span, parent: &Span) {
    assert_eq!(
        child.trace_id, parent.trace_id,
        "{} in {}'s trace",
        child.name, parent.name
    );
    assert_eq!(
        hex::encode(&child.parent_span_id),
        hex::encode(&parent.span_id),
        "{}'s parent is {}",
        child.name,
        parent.name
    );
}

/// A key of `prod` that may fetch ZAKs.
fn tracer_key(config: &ConfigFile) -> String {
    config.create_key(&[
        "--name",
        "tracer",
        "--scope",
        "zak:read",
        "--account",
        "prod",
    ])
}

/// Alice's ZAK, asked for as part of the caller's trace (`TRACE_ID`, from span `PARENT_ID`).
async fn zak_in_callers_trace(child: &Process, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/v1/users/{ALICE_ID}/zak", child.base()))
        .bearer_auth(key)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap()
}

/// A `traceparent`'s trace id and parent id.
fn ids(traceparent: &str) -> (&str, &str) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1], parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_zak_request_is_traced_from_the_callers_trace_to_zoom_without_a_secret() {
    // Arrange
    let receiver = Receiver::start().await;
    let zoom = start_emulator().await;
    let config = ConfigFile::standard(&format!(
        "{}\n[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"ztv-test\"\n",
        zoom_config(&zoom, ""),
        receiver.base
    ));
    let key = tracer_key(&config);
    // Batches go out every 100 ms rather than every 5 s.
    let child = config.serve(&[("OTEL_BSP_SCHEDULE_DELAY", "100")]);

    // Act
    let response = zak_in_callers_trace(&child, &key).await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let zak = body["zak"].as_str().unwrap().to_string();
    let spans = receiver.spans_once("GET /v1/users/{userId}/zak").await;

    let request = the(&spans, "GET /v1/users/{userId}/zak", "", "");
    assert_eq!(hex::encode(&request.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&request.parent_span_id), PARENT_ID);
    assert_eq!(text(request, "http.route"), "/v1/users/{userId}/zak");
    assert_eq!(text(request, "http.request.method"), "GET");
    assert_eq!(
        attribute(request, "http.response.status_code"),
        Some(AnyValue::IntValue(200))
    );
    assert_eq!(text(request, "ztv.caller"), "tracer");

    let zak_cache = the(&spans, "token cache", "ztv.cache", "zak");
    assert_child(zak_cache, request);
    assert_eq!(
        attribute(zak_cache, "ztv.cache.hit"),
        Some(AnyValue::BoolValue(false))
    );
    let zak_flight = the(&spans, "single flight", "ztv.flight", "zak");
    assert_child(zak_flight, zak_cache);
    assert_eq!(
        attribute(zak_flight, "ztv.flight.led"),
        Some(AnyValue::BoolValue(true))
    );
    let s2s_cache = the(&spans, "token cache", "ztv.cache", "s2s");
    assert_child(s2s_cache, zak_flight);
    let s2s_flight = the(&spans, "single flight", "ztv.flight", "s2s");
    assert_child(s2s_flight, s2s_cache);

    let token_call = the(&spans, "POST /oauth/token", "", "");
    assert_child(token_call, s2s_flight);
    let zak_call = the(&spans, "GET /v2/users/{userId}/token", "", "");
    assert_child(zak_call, zak_flight);
    for call in [token_call, zak_call] {
        assert_eq!(
            attribute(call, "http.response.status_code"),
            Some(AnyValue::IntValue(200))
        );
        assert_eq!(attribute(call, "ztv.retries"), Some(AnyValue::IntValue(0)));
        assert_eq!(text(call, "url.template"), call.name);
    }
    assert!(
        token_call.start_time_unix_nano < zak_call.start_time_unix_nano,
        "the access token is fetched before the ZAK"
    );

    // No attribute names the user, or holds a secret or a token.
    let never = [
        ALICE_ID,
        ALICE_EMAIL,
        S2S_SECRET,
        key.as_str(),
        zak.as_str(),
    ];
    for span in &spans {
        for kv in &span.attributes {
            let shown = format!("{:?}", kv.value);
            for secret in never {
                assert!(
                    !shown.contains(secret),
                    "{}: {} = {shown}",
                    span.name,
                    kv.key
                );
            }
        }
        assert!(!never.iter().any(|secret| span.name.contains(secret)));
    }

    // The log lines are what they are without traces: spans for traces never appear in them.
    child.wait_for("\"served\"").await;
    for line in &child.stdout() {
        let line: Value = serde_json::from_str(line).expect("JSON log lines");
        if let Some(span) = line.get("span") {
            assert_eq!(span["name"], "request", "{line}");
        }
    }

    // Zoom was told the trace: each call named its own span as the parent.
    let sent: HashMap<String, String> = zoom
        .trace_parents()
        .iter()
        .map(|traceparent| {
            let (trace, parent) = ids(traceparent);
            (parent.to_string(), trace.to_string())
        })
        .collect();
    for call in [token_call, zak_call] {
        assert_eq!(
            sent.get(&hex::encode(&call.span_id)).map(String::as_str),
            Some(TRACE_ID),
            "{}: {sent:?}",
            call.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_traces_off_no_traceparent_reaches_zoom() {
    // Arrange
    let zoom = start_emulator().await;
    let config = ConfigFile::standard(&zoom_config(&zoom, ""));
    let key = tracer_key(&config);
    let child = config.serve(&[]);

    // Act
    let response = zak_in_callers_trace(&child, &key).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(
        (
            zoom.calls(ztv::emulator::Endpoint::Token),
            zoom.calls(ztv::emulator::Endpoint::Zak)
        ),
        (1, 1)
    );
    assert_eq!(zoom.trace_parents(), Vec::<String>::new());
}
