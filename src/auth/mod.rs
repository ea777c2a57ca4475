//! Who is calling and what they may do: the [`caller::Caller`] (API keys from an in-memory
//! key ring, end users' JWTs from the identity provider) and its scopes, per-caller rate
//! limits and upstream budgets, and the management of API clients (CLI, `ztv dev`).
//!
//! May import: config, store, zoom_user, redis_link, clock, and the HTTP error type (the
//! extractor answers at the edge).

pub mod api_clients;
pub mod caller;
pub mod end_users;
pub mod keys;
pub mod rate_limit;
