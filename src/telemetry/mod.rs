//! What ztv tells operators: log lines ([`logs`]), Prometheus metrics ([`metrics`]),
//! OpenTelemetry traces ([`traces`]) and the request ids that tie a request's answer, log
//! line and audit event together ([`request_id`]).
//!
//! May import: config. Nothing that serves requests.

pub mod logs;
pub mod metrics;
pub mod request_id;
pub mod traces;
