//! Wall-clock time as Zoom's tokens count it: Unix seconds, and RFC 3339 for callers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-11-25T12:00:00Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(unix_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
