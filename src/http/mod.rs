//! The HTTP edge: the middleware stack, the JSON body and query extractors, the error answer
//! every layer's errors become, the OpenAPI document and the routes (thin handlers: parse,
//! authorise, call the domain, answer; no route imports another).
//!
//! May import every layer below it; nothing below imports it.

pub mod answer;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;

/// The router of the `server.metrics_bind` listener: `GET /metrics` and nothing else, with
/// request ids and JSON errors as on the main port.
pub fn metrics_only_router() -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(routes::prometheus_text))
        .fallback(|| async { error::ApiError::not_found("only /metrics is served here") })
        .layer(axum::middleware::from_fn(middleware::errors_as_json))
        .layer(crate::telemetry::request_id::AssignLayer)
}
