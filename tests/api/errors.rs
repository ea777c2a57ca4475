//! Errors produced outside the handlers keep the error shape of docs/api.md; request ids are echoed.

use serde_json::{Value, json};
use ztv::scope::Scope;

use crate::helpers::*;

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = TestApp::builder().build().await;

    let response = app.http.get(app.url("/v1/nothing")).send().await.unwrap();

    assert_error(response, 404, "not_found", "no such route").await;
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let app = TestApp::builder().build().await;

    let response = app
        .http
        .get(app.url("/v1/meeting-sdk/signature"))
        .send()
        .await
        .unwrap();

    assert!(response.headers().contains_key("allow"));
    assert_error(response, 405, "method_not_allowed", "method not allowed").await;
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_non_objects_are_refused() {
    let app = TestApp::builder().build().await;
    let key = app
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;
    let send = |body: &'static str, content_type: &'static str| {
        app.post("/v1/meeting-sdk/signature", &key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    assert_error(
        send("{\"role\": ", "application/json").await.unwrap(),
        400,
        "invalid_request",
        "not valid JSON",
    )
    .await;
    assert_error(
        send("[1,2]", "application/json").await.unwrap(),
        400,
        "invalid_request",
        "must be a JSON object",
    )
    .await;
    assert_error(
        send("role=0", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
        "application/json",
    )
    .await;
    assert_error(
        send("\u{0}\u{1}garbage", "application/json").await.unwrap(),
        400,
        "invalid_request",
        "not valid JSON",
    )
    .await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_json_413_with_or_without_content_length() {
    let app = TestApp::builder().build().await;
    let key = app
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;
    let padding = "x".repeat(70 * 1024);

    let sized = app
        .signature(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "pad": padding}),
        )
        .await;
    assert_error(sized, 413, "payload_too_large", "64 KiB").await;

    let chunks: Vec<Result<String, std::io::Error>> =
        (0..80).map(|_| Ok("x".repeat(1024))).collect();
    let streamed = app
        .post("/v1/meeting-sdk/signature", &key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_error(streamed, 413, "payload_too_large", "64 KiB").await;
}

fn futures_stream(
    items: Vec<Result<String, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> {
    tokio_stream::iter(items)
}

/// A handler that panics is answered 500 in the error shape, with the request's id and without
/// the panic's message; the server goes on serving, and the request is audited as failed. The
/// handlers are the test's own, served under the real middleware stack and the app's state.
#[tokio::test]
async fn a_panicking_handler_is_a_json_500_and_the_server_goes_on() {
    let app = TestApp::builder().build().await;
    let router = axum::Router::new()
        .route("/v1/panics", axum::routing::get(panics))
        .route("/v1/answers", axum::routing::get(|| async { "fine" }));
    let router = ztv::http::middleware::apply(router, &app.state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).await
    });

    for _ in 0..3 {
        let response = app
            .http
            .get(format!("{base}/v1/panics"))
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 500, "internal", "internal error").await;
        assert!(!body.to_string().contains("secret"), "{body}");
        let fine = app
            .http
            .get(format!("{base}/v1/answers"))
            .send()
            .await
            .unwrap();
        assert_eq!(fine.status(), 200);
        assert_eq!(fine.text().await.unwrap(), "fine");
    }

    let events = app
        .audit_until(|events| {
            events
                .iter()
                .filter(|e| e.route == "GET /v1/panics")
                .count()
                == 3
        })
        .await;
    for event in events.iter().filter(|e| e.route == "GET /v1/panics") {
        assert_eq!(
            (event.outcome.as_ref(), event.status),
            ("failed", 500),
            "{event:?}"
        );
    }
}

async fn panics() -> &'static str {
    panic!("a secret the handler had in hand")
}

#[tokio::test]
async fn a_sane_request_id_is_kept_and_a_hostile_one_replaced() {
    let app = TestApp::builder().build().await;

    let kept = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-abc.123");

    let replaced = app
        .http
        .get(app.url("/nope"))
        .header("x-request-id", "evil id with spaces")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id, "evil id with spaces");
    let body: Value = replaced.json().await.unwrap();
    assert_eq!(body["error"]["requestId"], id.as_str());
}

#[tokio::test]
async fn healthz_answers_without_credentials() {
    let app = TestApp::builder().build().await;

    let response = app.http.get(app.url("/healthz")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_reports_the_store_and_each_accounts_token_without_credentials() {
    let app = TestApp::builder().zoom().build().await;

    let response = app.http.get(app.url("/readyz")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"], "ok");
    assert_eq!(body["redis"], "not configured");
    assert_eq!(body["rateLimits"]["backend"], "in-process");
    assert_eq!(body["accounts"]["prod"]["s2sToken"], "none");
    assert_eq!(body["accounts"]["prod"]["zoomBreaker"], "closed");
}

/// The value of one Prometheus series (0 when absent).
fn series(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_are_served_and_move_with_traffic() {
    let app = TestApp::builder().zoom().build().await;
    let key = app
        .key(
            "metered",
            &[
                ztv::scope::Scope::MeetingSdkSignature,
                ztv::scope::Scope::ZakRead,
            ],
            Some("prod"),
        )
        .await;
    let before = app.metrics().await;

    assert_eq!(app.signature(&key, json!({})).await.status(), 200);
    assert_eq!(app.zak(&key, ALICE_ID).await.status(), 200);

    let after = app.metrics().await;
    let signature = [r#"route="/v1/meeting-sdk/signature""#, r#"status="200""#];
    assert!(
        series(&after, "ztv_http_requests_total", &signature)
            >= series(&before, "ztv_http_requests_total", &signature) + 1.0
    );
    let issued = [r#"kind="zak""#, r#"account="prod""#];
    assert!(
        series(&after, "ztv_tokens_issued_total", &issued)
            >= series(&before, "ztv_tokens_issued_total", &issued) + 1.0
    );
    for name in [
        "ztv_http_request_duration_seconds_bucket",
        "ztv_upstream_requests_total",
        "ztv_upstream_request_duration_seconds_bucket",
        "ztv_s2s_cache_misses_total",
        "ztv_audit_queue_depth",
    ] {
        assert!(after.contains(name), "{name} missing");
    }
    assert!(!after.contains(&key), "no key in the metrics");
}

#[tokio::test]
async fn invented_methods_share_one_metrics_label() {
    let app = TestApp::builder().zoom().build().await;
    for method in ["BREW", "WHEN", "PROPFIND"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .http
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let text = app.metrics().await;
    let other = [
        r#"route="/healthz""#,
        r#"method="OTHER""#,
        r#"status="405""#,
    ];
    assert!(series(&text, "ztv_http_requests_total", &other) >= 3.0);
    for invented in ["BREW", "WHEN", "PROPFIND"] {
        assert!(!text.contains(invented), "{invented} became a label");
    }
}

#[tokio::test]
async fn metrics_bind_moves_the_metrics_off_the_main_port() {
    let app = TestApp::builder()
        .adjust(|settings| {
            settings.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        })
        .build()
        .await;
    let key = app
        .key(
            "metered",
            &[ztv::scope::Scope::MeetingSdkSignature],
            Some("prod"),
        )
        .await;
    assert_eq!(app.signature(&key, json!({})).await.status(), 200);

    let main = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_error(main, 404, "not_found", "server.metrics_bind").await;

    let metrics_base = app.metrics_base.clone().expect("a metrics listener");
    let response = app
        .http
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        series(
            &text,
            "ztv_http_requests_total",
            &[r#"route="/v1/meeting-sdk/signature""#]
        ) >= 1.0
    );
    // Nothing but the metrics there.
    let other = app
        .http
        .post(format!("{metrics_base}/v1/meeting-sdk/signature"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(other, 404, "not_found", "only /metrics").await;
}
