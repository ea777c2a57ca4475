//! Request ids: taken from `x-request-id` when sane, generated otherwise; echoed on every
//! response and readable anywhere inside the request (error bodies, log spans).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";

/// The id of the request being served, as a request extension. Shared, not copied: the
/// response header, the log line, an error body and the audit event all carry it.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request this task is serving, if any.
pub fn current() -> Option<Arc<str>> {
    CURRENT.try_with(Clone::clone).ok()
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

pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(Arc::from)
        .unwrap_or_else(new_id);
    request.extensions_mut().insert(RequestId(Arc::clone(&id)));
    let mut response = CURRENT.scope(Arc::clone(&id), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
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
