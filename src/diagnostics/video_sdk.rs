//! A Video SDK JWT against Zoom's payload (`app_key`, `tpc`, `role_type`, `version`, `iat`,
//! `exp`, `user_key`, `session_key`, `geo_regions`, the 0/1 options) and the Video SDK
//! secrets ztv holds.

use super::jwt::{self, Claims, Jwt};
use super::secrets::{App, Secrets};
use super::{Findings, Question, Read, check_header, check_role, check_signer, summary, times};
use crate::signing::{self, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS};

/// The 0/1 claims of a Video SDK token.
const FLAGS: [&str; 4] = [
    "cloud_recording_option",
    "cloud_recording_election",
    "video_webrtc_mode",
    "audio_webrtc_mode",
];

pub(super) fn check(
    token: &Jwt<'_>,
    question: &Question<'_>,
    keys: &Secrets,
    out: &mut Findings,
) -> Read {
    out.ok(
        "kind",
        "a Video SDK JWT (it carries app_key, tpc or role_type)",
    );
    let hs256 = check_header(&token.header, out);
    let claims = &token.claims;
    let key = match claims.text("app_key") {
        Ok(Some(key)) => {
            out.ok("app_key", "app_key is set");
            Some(key)
        }
        Ok(None) => {
            out.bad(
                "app_key",
                "app_key is missing: Zoom wants the Video SDK key in it",
            );
            None
        }
        Err(why) => {
            out.bad("app_key", why);
            None
        }
    };
    let session = check_session_name(claims, out);
    let role = check_role(
        claims,
        "role_type",
        Some("role_type is missing: Zoom wants 0 (participant) or 1 (host)"),
        out,
    );
    match claims.integer("version") {
        Ok(None) => out.ok("version", "no version (Zoom's samples send 1)"),
        Ok(Some(1)) => out.ok("version", "version is 1"),
        Ok(Some(other)) => out.bad("version", format!("version is {other}: Zoom wants 1")),
        Err(why) => out.bad("version", why),
    }
    let expires_at = times(
        claims,
        question.now,
        Some((MIN_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS)),
        out,
    );
    for (name, max) in [
        ("user_key", signing::USER_KEY_MAX_CHARS),
        ("user_identity", signing::USER_IDENTITY_MAX_CHARS),
        ("session_key", signing::SESSION_KEY_MAX_CHARS),
    ] {
        match claims.text(name) {
            Ok(Some(text)) if text.chars().count() > max => out.bad(
                name,
                format!(
                    "{name} has {} characters: Zoom allows {max}",
                    text.chars().count()
                ),
            ),
            Ok(Some(_)) => out.ok(name, format!("{name} is within Zoom's {max} characters")),
            Ok(None) => {}
            Err(why) => out.bad(name, why),
        }
    }
    check_geo_regions(claims, out);
    for name in FLAGS {
        if let Err(why) = claims.flag(name) {
            out.bad(name, why);
        }
    }
    if let Err(why) = claims.text("telemetry_tracking_id") {
        out.bad("telemetry_tracking_id", why);
    }
    let account = if hs256 {
        check_signer(token, App::VideoSdk, key, keys, out)
    } else {
        None
    };
    let role = match role {
        Some(1) => "host",
        _ => "participant",
    };
    let session = session.map(|s| jwt::quote(&s)).unwrap_or_default();
    let target = format!("session {session} as {role}");
    Read {
        summary: summary(account.as_deref(), &target, expires_at, question.now),
        account,
        expires_at,
    }
}

/// `tpc`: the session name, 1–200 characters Zoom allows.
fn check_session_name(claims: &Claims, out: &mut Findings) -> Option<String> {
    let name = match claims.text("tpc") {
        Ok(Some(name)) => name,
        Ok(None) => {
            out.bad("tpc", "tpc is missing: Zoom wants the session name in it");
            return None;
        }
        Err(why) => {
            out.bad("tpc", why);
            return None;
        }
    };
    let chars = name.chars().count();
    if name.is_empty() {
        out.bad("tpc", "tpc is empty: Zoom wants the session name");
    } else if chars > signing::SESSION_NAME_MAX_CHARS {
        out.bad(
            "tpc",
            format!(
                "tpc has {chars} characters: Zoom allows {}",
                signing::SESSION_NAME_MAX_CHARS
            ),
        );
    } else if let Some(c) = signing::session_name_disallowed_char(name) {
        out.bad(
            "tpc",
            format!("tpc has the character {c:?}, which Zoom does not allow in session names"),
        );
    } else {
        out.ok(
            "tpc",
            format!("tpc (the session name) has {chars} characters, all allowed"),
        );
    }
    Some(name.to_string())
}

/// `geo_regions`: comma-separated region codes Zoom knows.
fn check_geo_regions(claims: &Claims, out: &mut Findings) {
    let regions = match claims.text("geo_regions") {
        Ok(Some(regions)) => regions,
        Ok(None) => return,
        Err(why) => {
            out.bad("geo_regions", why);
            return;
        }
    };
    let unknown: Vec<String> = regions
        .split(',')
        .map(str::trim)
        .filter(|r| !signing::GEO_REGIONS.contains(&r.to_ascii_uppercase().as_str()))
        .map(jwt::quote)
        .collect();
    if unknown.is_empty() {
        out.ok("geo_regions", "geo_regions names Zoom's regions only");
    } else {
        out.bad(
            "geo_regions",
            format!(
                "geo_regions names {}, not Zoom's (known: {})",
                unknown.join(", "),
                signing::GEO_REGIONS.join(", ")
            ),
        );
    }
}
