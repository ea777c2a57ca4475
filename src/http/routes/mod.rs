//! The HTTP routes, one file per resource, merged here.

mod diagnostics;
mod docs;
mod health;
mod join;
mod meeting_sdk;
mod oauth;
mod s2s;
mod users;
mod video_sdk;
mod webhooks;

use axum::Router;

pub(crate) use health::prometheus_text;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::http::error::ApiError;

/// Every route, without the middleware (see [`crate::http::middleware`]).
pub fn router(state: AppState) -> Router {
    let (router, _document) = documented().split_for_parts();
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

/// Every route together with its OpenAPI description. Each resource's `router()` registers
/// its handlers with `utoipa_axum::routes!`, which routes a handler and describes it (from its
/// `#[utoipa::path]`) in one step; [`router`] and [`crate::http::openapi::document`] are both split
/// from this value, so what is served and what is documented cannot drift apart.
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::http::openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(meeting_sdk::router())
        .merge(video_sdk::router())
        .merge(users::router())
        .merge(join::router())
        .merge(s2s::router())
        .merge(oauth::router())
        .merge(webhooks::router())
        .merge(diagnostics::router())
        .merge(docs::router())
}
