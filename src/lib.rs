//! ztv, the Zoom Token Vendor: keeps an organisation's Zoom secrets on the server and vends
//! short-lived tokens to web front ends, mobile apps and internal services.
//!
//! Layers, each importing only those below it (docs/architecture.md):
//! * the edge: [`server`] (connections), [`http`] (middleware, extractors, routes, the error
//!   answer), [`auth`] (who calls and what they may do);
//! * the domain: [`signing`], [`tokens`] (S2S, ZAK and OBF tokens), [`grants`] (users' OAuth
//!   grants), [`audit`], [`diagnostics`] (a token against Zoom's rules);
//! * clients and storage: [`zoom`], [`store`], [`redis_link`];
//! * shared leaves: [`config`], [`scope`], [`zoom_user`], [`clock`], [`flight`], [`sealing`],
//!   [`telemetry`];
//! * around them: [`app`] (wiring), [`cli`] (the binary's commands), [`emulator`] (a Zoom for
//!   development and tests, which the domain never imports).

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod diagnostics;
pub mod emulator;
pub mod flight;
pub mod grants;
pub mod http;
pub mod redis_link;
pub mod scope;
pub mod sealing;
pub mod server;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod zoom;
pub mod zoom_user;
