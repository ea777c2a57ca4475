//! A Meeting SDK JWT against Zoom's payload (`appKey`, `sdkKey`, `mn`, `role`, `iat`, `exp`,
//! `tokenExp`, `video_webrtc_mode`) and the Meeting SDK secrets ztv holds.

use serde_json::Value;

use super::jwt::{self, Jwt};
use super::secrets::{App, Secrets};
use super::{
    Findings, Question, Read, check_header, check_role, check_signer, seconds, summary, times,
};
use crate::signing::{self, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS};

pub(super) fn check(
    token: &Jwt<'_>,
    question: &Question<'_>,
    keys: &Secrets,
    out: &mut Findings,
) -> Read {
    out.ok(
        "kind",
        "a Meeting SDK JWT (it carries appKey, sdkKey, mn or tokenExp)",
    );
    let hs256 = check_header(&token.header, out);
    let claims = &token.claims;
    let key = check_key(claims, out);
    let meeting = check_meeting(claims, question.meeting_number, out);
    let missing = meeting
        .is_some()
        .then_some("role is missing: with mn, Zoom wants role 0 or 1");
    let role = check_role(claims, "role", missing, out);
    let expires_at = times(
        claims,
        question.now,
        Some((MIN_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS)),
        out,
    );
    if let Some(token_exp) = seconds(claims, "tokenExp", "when the SDK session ends", out) {
        match claims.integer("iat") {
            Ok(Some(iat)) if token_exp - iat < MIN_EXPIRATION_SECONDS => out.bad(
                "tokenExp",
                format!(
                    "tokenExp is {} s after iat: Zoom wants at least {MIN_EXPIRATION_SECONDS} s",
                    token_exp - iat
                ),
            ),
            _ => out.ok(
                "tokenExp",
                format!("tokenExp is {}", crate::clock::rfc3339(token_exp)),
            ),
        }
    }
    if let Err(why) = claims.flag("video_webrtc_mode") {
        out.bad("video_webrtc_mode", why);
    }
    let account = if hs256 {
        check_signer(token, App::MeetingSdk, key.as_deref(), keys, out)
    } else {
        None
    };
    let target = match (&meeting, role) {
        (Some(mn), Some(1)) => format!("meeting {mn} as host"),
        (Some(mn), _) => format!("meeting {mn} as participant"),
        (None, _) => "any meeting (the native-SDK form, without mn)".into(),
    };
    Read {
        summary: summary(account.as_deref(), &target, expires_at, question.now),
        account,
        expires_at,
    }
}

/// `appKey` (and `sdkKey`, which must be the same): the Meeting SDK key (client ID).
fn check_key(claims: &jwt::Claims, out: &mut Findings) -> Option<String> {
    let app_key = claims.text("appKey");
    let sdk_key = claims.text("sdkKey");
    let (app_key, sdk_key) = match (app_key, sdk_key) {
        (Ok(a), Ok(s)) => (a, s),
        (Err(why), _) => {
            out.bad("appKey", why);
            return None;
        }
        (_, Err(why)) => {
            out.bad("sdkKey", why);
            return None;
        }
    };
    match (app_key, sdk_key) {
        (None, None) => out.bad(
            "appKey",
            "appKey is missing: Zoom wants the Meeting SDK key (client ID) in it",
        ),
        (None, Some(_)) => out.bad(
            "appKey",
            "appKey is missing (only sdkKey is set): Zoom's payload carries the key as appKey",
        ),
        (Some(a), Some(s)) if a != s => out.bad(
            "sdkKey",
            "appKey and sdkKey differ: both carry the same Meeting SDK key",
        ),
        (Some(_), Some(_)) => out.ok("appKey", "appKey and sdkKey are set and equal"),
        (Some(_), None) => out.ok("appKey", "appKey is set"),
    }
    app_key.or(sdk_key).map(str::to_string)
}

/// `mn`: the meeting's digits, as a number or a string; returns them when readable.
fn check_meeting(
    claims: &jwt::Claims,
    expected: Option<&str>,
    out: &mut Findings,
) -> Option<String> {
    let digits = match claims.0.get("mn") {
        None => {
            out.ok(
                "mn",
                "no mn: the native-SDK form, not tied to a meeting (the Meeting SDK for web \
                 wants mn and role)",
            );
            return None;
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => n.to_string(),
            None => {
                out.bad("mn", format!("mn is {n}: Zoom wants the meeting's digits"));
                return None;
            }
        },
        Some(Value::String(text)) => {
            if text.chars().any(|c| c.is_whitespace() || c == '-') && has_digits(text) {
                out.bad(
                    "mn",
                    format!(
                        "mn is {} with spaces or dashes: Zoom wants the digits only",
                        jwt::quote(text)
                    ),
                );
                return None;
            }
            if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
                out.bad(
                    "mn",
                    format!(
                        "mn is {}: Zoom wants the meeting's digits",
                        jwt::quote(text)
                    ),
                );
                return None;
            }
            text.clone()
        }
        Some(other) => {
            out.bad(
                "mn",
                format!(
                    "mn is {}: Zoom wants the meeting's digits",
                    jwt::describe(other)
                ),
            );
            return None;
        }
    };
    if signing::MEETING_NUMBER_DIGITS.contains(&digits.len()) {
        out.ok("mn", format!("mn is meeting {digits}"));
    } else {
        out.bad(
            "mn",
            format!(
                "mn has {} digits: a meeting number has {} to {}",
                digits.len(),
                signing::MEETING_NUMBER_DIGITS.start(),
                signing::MEETING_NUMBER_DIGITS.end()
            ),
        );
    }
    if let Some(expected) = expected {
        if expected == digits {
            out.ok("meetingNumber", format!("for meeting {expected}, as asked"));
        } else {
            out.bad(
                "meetingNumber",
                format!("signed for meeting {digits}, not {expected}"),
            );
        }
    }
    Some(digits)
}

fn has_digits(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
}
