//! The harness of the integration tests, one file per concern:
//!
//! * `app`: [`TestApp::builder`], the whole service in process on 127.0.0.1:0 (with the
//!   Zoom emulator, user OAuth, end-user sign-in, another database, replicas), and
//!   [`ZoomApp`]; `client`: a method per route, [`assert_error`], [`decode_jwt`];
//!   `audit`: polling the audit log;
//! * `binary`: the `ztv` binary, [`ConfigFile`] and the one way to start it and wait until it
//!   is ready ([`Process::start`], [`Process::serve`]);
//! * `config`: the config every test starts from; `zoom`: the emulator's accounts and users;
//! * [`idp`]: a local OIDC identity provider; [`oauth`]: the user-managed OAuth app and the
//!   browser's part of its flow; [`proxy`]: a TCP proxy to cut a real server off and back;
//!   `services`: the real PostgreSQL and Redis, or a skip.
//!
//! Tests `use crate::helpers::*` and name `idp::`, `oauth::` and `proxy::` items by module.

mod app;
mod audit;
mod binary;
pub mod chromium;
mod client;
mod config;
pub mod idp;
pub mod oauth;
pub mod proxy;
mod services;
mod zoom;

pub use app::*;
pub use binary::*;
pub use client::*;
pub use config::*;
pub use services::*;
pub use zoom::*;
