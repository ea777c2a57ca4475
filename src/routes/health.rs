//! `GET /healthz`: the process is up and serving.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(report_health))
}

async fn report_health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
