//! The HTTP routes, one file per resource, merged here.

mod health;
mod join;
mod meeting_sdk;
mod oauth;
mod s2s;
mod users;
mod video_sdk;
mod webhooks;

use axum::Router;

use crate::app::AppState;
use crate::error::ApiError;

/// Every route, without the middleware (see [`crate::middleware`]).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(meeting_sdk::router())
        .merge(video_sdk::router())
        .merge(users::router())
        .merge(join::router())
        .merge(s2s::router())
        .merge(oauth::router())
        .merge(webhooks::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}
