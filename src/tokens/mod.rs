//! Tokens fetched from Zoom: the account's S2S access token ([`s2s`], cached in process or
//! shared through Redis by [`shared`]) and users' ZAK and OBF tokens ([`user`]).
//!
//! May import: zoom, grants, store, config, auth::rate_limit (budgets), flight, sealing,
//! redis_link, zoom_user, clock, telemetry. Never the HTTP layer.

pub mod s2s;
pub mod shared;
pub mod user;

/// A span for traces of one look in the `name` cache (`zak`, `s2s`); it records whether the
/// token was there (`ztv.cache.hit`) and, on a miss, holds the fetch.
fn cache_span(name: &'static str) -> tracing::Span {
    tracing::debug_span!(
        target: crate::telemetry::traces::TARGET,
        "token cache",
        otel.name = "token cache",
        ztv.cache = name,
        ztv.cache.hit = tracing::field::Empty,
    )
}
