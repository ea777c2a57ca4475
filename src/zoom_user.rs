//! A Zoom user's identity, validated once at the door: the self-only rule, every cache key,
//! every store query and every audit field use this type and nothing else.
//!
//! It accepts what Zoom's `userId` path segment may safely hold: 1–128 ASCII letters, digits
//! and `. _ - + @`, but not `.` or `..`. Two identities are the same user when they are equal
//! after folding ASCII case, and only ASCII case: a Unicode fold (KELVIN SIGN → `k`) never
//! reaches a comparison, because no non-ASCII identity is ever built.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Longest identity accepted, in bytes (all ASCII).
pub const MAX_LEN: usize = 128;

/// Why a text is not a Zoom user identity; says nothing of the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidZoomUser {
    #[error("must be 1 to 128 characters")]
    Length,
    #[error("must be a Zoom user ID or an email address (ASCII letters, digits and . _ - + @)")]
    Characters,
}

/// A Zoom user ID, an email address, or `me`.
#[derive(Clone)]
pub struct ZoomUser {
    /// As given: what Zoom is asked about (Zoom's user IDs keep their case).
    given: Arc<str>,
    /// ASCII case folded: what identities are compared, cached and stored by.
    key: Arc<str>,
}

impl ZoomUser {
    /// Validates `text` as an identity.
    pub fn parse(text: &str) -> Result<Self, InvalidZoomUser> {
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(InvalidZoomUser::Length);
        }
        // `.` and `..` would be dropped from, or climb out of, the Zoom URL the user goes into.
        let allowed =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@');
        if matches!(text, "." | "..") || !text.bytes().all(allowed) {
            return Err(InvalidZoomUser::Characters);
        }
        let key: Arc<str> = if text.bytes().any(|b| b.is_ascii_uppercase()) {
            text.to_ascii_lowercase().into()
        } else {
            text.into()
        };
        let given = if *key == *text {
            Arc::clone(&key)
        } else {
            text.into()
        };
        Ok(Self { given, key })
    }

    /// `me`: whoever calls.
    pub fn me() -> Self {
        let me: Arc<str> = "me".into();
        Self {
            given: Arc::clone(&me),
            key: me,
        }
    }

    /// The identity as given, for Zoom's URLs.
    pub fn as_str(&self) -> &str {
        &self.given
    }

    /// The identity with ASCII case folded: the one form compared, cached, stored and audited.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The folded identity, shared.
    pub fn shared_key(&self) -> Arc<str> {
        Arc::clone(&self.key)
    }

    /// `me`: the caller themself (in any case, as Zoom reads it).
    pub fn is_me(&self) -> bool {
        &*self.key == "me"
    }
}

impl PartialEq for ZoomUser {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for ZoomUser {}

impl Hash for ZoomUser {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Debug for ZoomUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoomUser({:?})", &*self.key)
    }
}

impl fmt::Display for ZoomUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_case_is_folded_and_nothing_else() {
        let kate = ZoomUser::parse("Kate@Example.com").unwrap();
        assert_eq!(kate.key(), "kate@example.com");
        assert_eq!(kate.as_str(), "Kate@Example.com");
        assert_eq!(kate, ZoomUser::parse("kate@example.com").unwrap());
        // KELVIN SIGN lower-cases to `k` under Unicode rules: refused, never folded.
        assert_eq!(
            ZoomUser::parse("\u{212A}ate@example.com").unwrap_err(),
            InvalidZoomUser::Characters
        );
        assert!(ZoomUser::parse("kate@example.com\n").is_err());
        assert!(ZoomUser::parse("ka te@example.com").is_err());
    }

    #[test]
    fn lengths_and_dot_segments_are_refused() {
        assert_eq!(ZoomUser::parse("").unwrap_err(), InvalidZoomUser::Length);
        assert!(ZoomUser::parse(&"a".repeat(MAX_LEN)).is_ok());
        assert_eq!(
            ZoomUser::parse(&"a".repeat(MAX_LEN + 1)).unwrap_err(),
            InvalidZoomUser::Length
        );
        for dots in [".", ".."] {
            assert_eq!(
                ZoomUser::parse(dots).unwrap_err(),
                InvalidZoomUser::Characters
            );
        }
        assert!(ZoomUser::parse("...").is_ok());
    }

    #[test]
    fn me_is_recognised_in_any_case() {
        assert!(ZoomUser::parse("me").unwrap().is_me());
        assert!(ZoomUser::parse("ME").unwrap().is_me());
        assert!(!ZoomUser::parse("me@example.com").unwrap().is_me());
    }

    #[test]
    fn debug_shows_the_folded_identity() {
        let user = ZoomUser::parse("Kate@Example.com").unwrap();
        assert_eq!(format!("{user:?}"), "ZoomUser(\"kate@example.com\")");
    }
}

/// A Zoom account ID, validated once where it enters (a request's `zoomAccount`, Zoom's
/// `GET /users/me`): 1–64 ASCII letters, digits, `-` and `_`, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoomAccountId(Arc<str>);

impl ZoomAccountId {
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        ok.then(|| Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod account_id_tests {
    use super::ZoomAccountId;

    #[test]
    fn account_ids_are_letters_digits_dash_and_underscore() {
        assert!(ZoomAccountId::parse("lAAAAAAAAAAAAA_b-9").is_some());
        for bad in ["", "a.b", "a/b", "a b", "é", &"a".repeat(65), "a:b"] {
            assert!(ZoomAccountId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
