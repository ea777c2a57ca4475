//! A ZAK or OBF token: Zoom signs it with a key ztv never holds, so only its claims are read
//! (user, account, meeting, expiry); the signature is Zoom's to check.

use super::jwt::{self, Claims, Jwt};
use super::secrets::Secrets;
use super::{Findings, Question, Read, TokenKind, span, times};

/// ZAK or OBF, by the token's `type` claim, or an OBF's meeting claim.
pub(super) fn kind(claims: &Claims) -> TokenKind {
    match claims.text("type") {
        Ok(Some("onbehalf" | "obf")) => TokenKind::Obf,
        Ok(Some("zak")) => TokenKind::Zak,
        _ if claims.has("mid") => TokenKind::Obf,
        _ => TokenKind::Zak,
    }
}

pub(super) fn check(
    token: &Jwt<'_>,
    kind: TokenKind,
    question: &Question<'_>,
    keys: &Secrets,
    out: &mut Findings,
) -> Read {
    let what = match kind {
        TokenKind::Obf => "an OBF (on-behalf-of) token: it lets an app join a meeting for a user",
        _ => "a ZAK (Zoom Access Key): it lets the SDK start or join meetings as the user",
    };
    out.ok("kind", format!("{what}; Zoom issued it"));
    let claims = &token.claims;
    let user = match claims.text("uid") {
        Ok(Some(uid)) => {
            out.ok("user", format!("for Zoom user {}", jwt::quote(uid)));
            Some(jwt::quote(uid))
        }
        Ok(None) => {
            out.bad("user", "uid is missing: Zoom's user tokens name their user");
            None
        }
        Err(why) => {
            out.bad("user", why);
            None
        }
    };
    let account = match claims.text("aid") {
        Ok(Some(aid)) => match keys.account_of_zoom_id(aid) {
            Some(name) => {
                out.ok(
                    "account",
                    format!("issued in the Zoom account of {}", keys.name(name)),
                );
                keys.visible(name)
            }
            None => {
                out.ok(
                    "account",
                    "issued in a Zoom account none of the configured S2S apps belongs to",
                );
                None
            }
        },
        Ok(None) => None,
        Err(why) => {
            out.bad("account", why);
            None
        }
    };
    if kind == TokenKind::Obf {
        check_obf_meeting(claims, question.meeting_number, out);
        out.ok(
            "single-use",
            "an OBF token joins once: ask ztv for a fresh one for every join",
        );
    }
    let expires_at = times(claims, question.now, None, out);
    let alg = token.header.text("alg").ok().flatten().unwrap_or("none");
    out.ok(
        "signature",
        format!(
            "{} by Zoom with a key only Zoom holds: ztv reads its claims but cannot verify it",
            jwt::quote(alg)
        ),
    );
    let user = user.map(|u| format!("for user {u}, ")).unwrap_or_default();
    let expiry = expires_at
        .map(|exp| format!("expires in {}", span(exp - question.now)))
        .unwrap_or_default();
    Read {
        summary: format!("{user}{expiry} (Zoom verifies its signature)"),
        account,
        expires_at,
    }
}

/// The meeting an OBF token was issued for, against the one asked about.
fn check_obf_meeting(claims: &Claims, expected: Option<&str>, out: &mut Findings) {
    let mid = match claims.0.get("mid") {
        Some(serde_json::Value::String(mid)) => mid.clone(),
        Some(serde_json::Value::Number(mid)) => mid.to_string(),
        _ => return,
    };
    match expected {
        Some(expected) if expected != mid => out.bad(
            "meetingNumber",
            format!("issued for meeting {}, not {expected}", jwt::quote(&mid)),
        ),
        _ => out.ok("meetingNumber", format!("for meeting {}", jwt::quote(&mid))),
    }
}
