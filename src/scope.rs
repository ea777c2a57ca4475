//! Scopes: what a caller may ask for.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    MeetingSdkSignature,
    MeetingSdkHost,
    VideoSdkToken,
    VideoSdkHost,
    ZakRead,
    ObfRead,
    S2sToken,
    GrantsAdmin,
    DiagnosticsRead,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::MeetingSdkSignature,
        Scope::MeetingSdkHost,
        Scope::VideoSdkToken,
        Scope::VideoSdkHost,
        Scope::ZakRead,
        Scope::ObfRead,
        Scope::S2sToken,
        Scope::GrantsAdmin,
        Scope::DiagnosticsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MeetingSdkSignature => "meeting-sdk:signature",
            Scope::MeetingSdkHost => "meeting-sdk:host",
            Scope::VideoSdkToken => "video-sdk:token",
            Scope::VideoSdkHost => "video-sdk:host",
            Scope::ZakRead => "zak:read",
            Scope::ObfRead => "obf:read",
            Scope::S2sToken => "s2s:token",
            Scope::GrantsAdmin => "grants:admin",
            Scope::DiagnosticsRead => "diagnostics:read",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown scope `{0}` (known: {known})", known = known_scopes())]
pub struct UnknownScope(pub String);

fn known_scopes() -> String {
    Scope::ALL.map(Scope::as_str).join(", ")
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_string()))
    }
}

/// Parses a space-separated list, as stored.
pub fn parse_list(text: &str) -> Result<Vec<Scope>, UnknownScope> {
    let mut scopes = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<Scope>, _>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// Formats a list space-separated, as stored.
pub fn format_list(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_form() {
        let scopes = parse_list("zak:read meeting-sdk:signature zak:read").unwrap();
        assert_eq!(scopes, vec![Scope::MeetingSdkSignature, Scope::ZakRead]);
        assert_eq!(format_list(&scopes), "meeting-sdk:signature zak:read");
        assert!(parse_list("zak:write").is_err());
    }
}
