//! `GET /healthz` (the process is up) and `GET /readyz` (it can serve: the store, and Redis
//! when configured, answer), with a report per dependency and per account.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::telemetry::metrics;
use crate::tokens::s2s::TokenState;

/// Longest wait for the store to answer a readiness probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_health))
        .routes(routes!(report_readiness))
        .routes(routes!(render_metrics))
}

/// `GET /healthz`'s body.
#[derive(ToSchema)]
// Documentation only: the handler answers a literal.
#[allow(dead_code, reason = "documentation only")]
struct HealthReport {
    #[schema(inline)]
    status: HealthStatus,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum HealthStatus {
    Ok,
}

/// `GET /readyz`'s body, with either status.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
// Documentation only: the handler builds the JSON itself.
#[allow(dead_code, reason = "documentation only")]
struct ReadinessReport {
    /// `ready` exactly when the status is 200.
    #[schema(inline)]
    status: Readiness,
    #[schema(inline)]
    store: Reachability,
    /// `not configured` without `cache.redis_url`.
    #[schema(inline)]
    redis: RedisReachability,
    #[schema(inline)]
    rate_limits: RateLimitReport,
    /// One entry per account with S2S credentials, by name. Never makes a replica unready.
    #[schema(inline)]
    accounts: BTreeMap<String, AccountReport>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum Readiness {
    Ready,
    Unready,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum Reachability {
    Ok,
    Unreachable,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum RedisReachability {
    Ok,
    Unreachable,
    #[serde(rename = "not configured")]
    NotConfigured,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct RateLimitReport {
    /// `in-process` or `redis`.
    #[schema(example = "in-process")]
    backend: String,
    /// A Redis limiter limiting in-process because Redis does not answer.
    degraded: bool,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "documentation only")]
struct AccountReport {
    #[schema(inline)]
    s2s_token: CachedTokenState,
    /// Seconds the cached S2S token still lives; `null` unless `valid`.
    seconds_left: Option<i64>,
    /// `open` while ztv stops calling Zoom for this account after repeated failures.
    #[schema(inline)]
    zoom_breaker: BreakerState,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum CachedTokenState {
    None,
    Valid,
    Expired,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum BreakerState {
    Open,
    Closed,
}

/// The process is up
///
/// Always 200 while the process serves requests; for liveness probes. No credentials.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "reportHealth",
    security(()),
    responses((status = 200, description = "The process is up", body = inline(HealthReport))),
)]
async fn report_health() -> Response {
    // A literal: a liveness probe costs no serialisation.
    let mut response = Response::new(Body::from(r#"{"status":"ok"}"#));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The replica can serve
///
/// 200 when the store (and Redis, if set) answer, else 503; for readiness probes. Each
/// account's upstream token state is reported too, but never makes a replica unready:
/// signatures need no Zoom. No credentials.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "reportReadiness",
    security(()),
    responses(
        (
            status = 200,
            description = "Ready: the store (and Redis, if set) answer",
            body = ReadinessReport,
        ),
        (
            status = 503,
            description = "Unready: the store or Redis does not answer (the report, not an error)",
            body = ReadinessReport,
        ),
    ),
)]
async fn report_readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = matches!(
        tokio::time::timeout(STORE_PROBE_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let redis = state.s2s.redis_answers().await;
    let mut accounts = Map::new();
    for (name, account) in &state.settings().accounts {
        if account.s2s.is_none() {
            continue;
        }
        let (token, seconds_left) = match state.s2s.state(name) {
            TokenState::Empty => ("none", None),
            TokenState::Valid { seconds_left } => ("valid", Some(seconds_left)),
            TokenState::Expired => ("expired", None),
        };
        let breaker = if state.zoom.breaker_open(name) {
            "open"
        } else {
            "closed"
        };
        accounts.insert(
            name.clone(),
            json!({"s2sToken": token, "secondsLeft": seconds_left, "zoomBreaker": breaker}),
        );
    }
    let ready = store && redis != Some(false);
    let answer = |ok: bool| if ok { "ok" } else { "unreachable" };
    let body = json!({
        "status": if ready { "ready" } else { "unready" },
        "store": answer(store),
        "redis": redis.map(answer).unwrap_or("not configured"),
        "rateLimits": {
            "backend": state.rate_limiter.backend(),
            "degraded": state.rate_limiter.degraded(),
        },
        "accounts": accounts,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics
///
/// The Prometheus text format: `ztv_http_requests_total`, `ztv_http_request_duration_seconds`,
/// `ztv_tokens_issued_total`, upstream calls, the S2S cache, the circuit breaker and the audit
/// queue. No credentials: bind it privately. With `server.metrics_bind` set, the metrics are
/// served on that listener instead and this route answers 404.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "renderMetrics",
    security(()),
    responses(
        (
            status = 200,
            description = "Prometheus text format 0.0.4",
            content_type = "text/plain; version=0.0.4",
            body = String,
        ),
        (status = 404, response = crate::http::openapi::NotFound),
    ),
)]
async fn render_metrics(State(state): State<AppState>) -> Response {
    if state.settings().server.metrics_bind.is_some() {
        return ApiError::not_found("metrics are served on server.metrics_bind").into_response();
    }
    prometheus_text().await
}

/// The Prometheus text of every series.
pub(crate) async fn prometheus_text() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(),
    )
        .into_response()
}
