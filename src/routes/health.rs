//! `GET /healthz` (the process is up) and `GET /readyz` (it can serve: the store, and Redis
//! when configured, answer), with a report per dependency and per account.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::token_cache::TokenState;

/// Longest wait for the store to answer a readiness probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(report_health))
        .route("/readyz", get(report_readiness))
        .route("/metrics", get(crate::monitoring::render_metrics))
}

async fn report_health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the store (and Redis, if set) answer, else 503. Each account's upstream token
/// state is reported too, but never makes a replica unready: signatures need no Zoom.
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
