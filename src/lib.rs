//! ztv, the Zoom Token Vendor: keeps an organisation's Zoom secrets on the server and vends
//! short-lived tokens to web front ends, mobile apps and internal services.

pub mod api_key;
pub mod app;
pub mod audit;
pub mod caller;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod dev;
pub mod emulator;
pub mod end_users;
pub mod error;
pub mod flight;
pub mod grants;
pub mod input;
pub mod middleware;
pub mod monitoring;
pub mod openapi;
pub mod rate_limit;
pub mod redis_link;
pub mod reload;
pub mod request_id;
pub mod routes;
pub mod scope;
pub mod sealing;
pub mod server;
pub mod settings;
pub mod shared_tokens;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod token_cache;
pub mod user_tokens;
pub mod zoom;
pub mod zoom_user;
