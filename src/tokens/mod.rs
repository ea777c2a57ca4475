//! Tokens fetched from Zoom: the account's S2S access token ([`s2s`], cached in process or
//! shared through Redis by [`shared`]) and users' ZAK and OBF tokens ([`user`]).
//!
//! May import: zoom, grants, store, config, auth::rate_limit (budgets), flight, sealing,
//! redis_link, zoom_user, clock. Never the HTTP layer.

pub mod s2s;
pub mod shared;
pub mod user;
