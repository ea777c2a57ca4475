//! Integration tests: the real application on a random port, spoken to over HTTP.

// Tests may unwrap: a panic is the failure report. (clippy.toml allows it only inside #[test].)
#![allow(clippy::unwrap_used)]

mod audit;
mod auth;
mod browser;
mod cli;
mod diagnostics;
mod disconnect;
mod docs;
mod end_users;
mod errors;
mod grant_health;
mod grants;
mod helpers;
mod hostile;
mod installs;
mod limits;
mod meeting_sdk;
mod openapi;
mod processes;
mod props;
mod regions;
mod reload;
mod replicas;
mod shared_cache;
mod shutdown;
mod traces;
mod trust_boundary;
mod upstream;
mod video_sdk;
