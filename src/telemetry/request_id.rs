//! Request ids: taken from `x-request-id` when sane, generated otherwise; echoed on every
//! response and readable anywhere inside the request (error bodies, log lines, audit events).
//! The main router's observing middleware assigns them itself; [`AssignLayer`] does it for
//! the small routers without one.

use std::sync::Arc;

use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use futures_util::future::BoxFuture;

use crate::telemetry::{logs, metrics};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request this task is serving, if any.
pub fn current() -> Option<Arc<str>> {
    logs::current_request_id()
}

/// A request's id: the caller's `x-request-id` when sane, a new one otherwise.
pub fn of(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(Arc::from)
        .unwrap_or_else(new_id)
}

/// Echoes the request's id on its response.
pub fn echo(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(HEADER, value);
    }
}

/// A caller's id is kept when it is 1–128 characters of `[A-Za-z0-9._:-]`; anything else
/// (empty, long, control characters, spaces) could poison logs, so it is replaced.
fn is_sane(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A random (version 4) UUID from the thread's generator: `Uuid::new_v4` asks the kernel
/// for its 16 bytes, a system call on every request.
fn new_id() -> Arc<str> {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    Arc::from(
        &*uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut text),
    )
}

/// Gives each request its id, on every line logged while it is served and echoed on its
/// response, for routers without the observing middleware (which does this itself).
#[derive(Clone, Copy, Default)]
pub struct AssignLayer;

impl<S> tower::Layer<S> for AssignLayer {
    type Service = Assign<S>;

    fn layer(&self, inner: S) -> Assign<S> {
        Assign { inner }
    }
}

/// [`AssignLayer`]'s service.
#[derive(Clone)]
pub struct Assign<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Assign<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let id = of(request.headers());
        let fields = logs::RequestFields {
            method: metrics::method_label(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
            request_id: Some(Arc::clone(&id)),
        };
        let served = logs::within(fields, self.inner.call(request));
        Box::pin(async move {
            let mut response = served.await?;
            echo(&mut response, &id);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn generated_ids_are_distinct_version_4_uuids() {
        let (a, b) = (super::new_id(), super::new_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert!(is_sane(&id));
        }
    }

    #[test]
    fn keeps_ordinary_ids_and_refuses_hostile_ones() {
        assert!(is_sane("abc-123"));
        assert!(is_sane("0b8e7c1e-6b0a-4c36-9b0b-0b7a5f3c2e11"));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("line\nbreak"));
        assert!(!is_sane(&"x".repeat(129)));
    }
}
