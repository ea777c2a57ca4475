//! The answer to an integrator's first question, "my signature is invalid (or expired): why?":
//! a token's every claim against Zoom's rules, which configured secret signed it, and the
//! classic mix-ups by name. Findings never quote the token or a secret.

mod accounts;
mod jwt;
mod meeting_sdk;
mod secrets;
mod video_sdk;
mod zoom_token;

use std::time::Duration;

use serde::Serialize;

pub use accounts::{AccountCheck, Level, check_accounts};
pub use jwt::MAX_TOKEN_BYTES;
pub use secrets::Secrets;

use jwt::Claims;
use secrets::App;

/// How far in the future `iat` may be before ztv calls the signer's clock ahead, in seconds.
const CLOCK_LENIENCY_SECONDS: i64 = 5;
/// Unix seconds past this are milliseconds (the year 5138 in seconds).
const MILLISECONDS_FROM: i64 = 100_000_000_000;

/// What a token is, as far as its claims tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    MeetingSdk,
    VideoSdk,
    Zak,
    Obf,
    Unknown,
}

impl TokenKind {
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::MeetingSdk => "Meeting SDK JWT",
            TokenKind::VideoSdk => "Video SDK JWT",
            TokenKind::Zak => "ZAK",
            TokenKind::Obf => "OBF token",
            TokenKind::Unknown => "token",
        }
    }
}

/// One check and its outcome, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub message: String,
}

/// What to diagnose.
pub struct Question<'a> {
    pub token: &'a str,
    /// The meeting the token should be for, as digits.
    pub meeting_number: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
}

/// The diagnosis: the findings, and a one-line verdict. Serialises as the API answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub kind: TokenKind,
    /// Whether every finding is ok.
    pub ok: bool,
    pub verdict: String,
    /// The account whose secret signed it (or whose Zoom account issued a ZAK or OBF token),
    /// when the viewer may see its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When it stops working (Unix seconds; RFC 3339 when serialised), when that can be read.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_rfc3339")]
    pub expires_at: Option<i64>,
    pub findings: Vec<Finding>,
}

fn as_rfc3339<S: serde::Serializer>(at: &Option<i64>, to: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => to.serialize_str(&crate::clock::rfc3339(*at)),
        None => to.serialize_none(),
    }
}

/// Diagnoses a token against the configured secrets and Zoom's rules.
pub fn diagnose(question: &Question<'_>, secrets: &Secrets) -> Diagnosis {
    let token = question.token.trim();
    let token = match jwt::parse(token) {
        Ok(token) => token,
        Err(why) => {
            let finding = Finding {
                check: "format",
                ok: false,
                message: why,
            };
            return Diagnosis {
                kind: TokenKind::Unknown,
                ok: false,
                verdict: format!("not a token ztv can read: {}", finding.message),
                account: None,
                expires_at: None,
                findings: vec![finding],
            };
        }
    };
    let mut out = Findings::default();
    out.ok(
        "format",
        "a JWT: three base64url parts, header and payload JSON objects",
    );
    let kind = kind_of(&token.claims);
    let read = match kind {
        TokenKind::MeetingSdk => meeting_sdk::check(&token, question, secrets, &mut out),
        TokenKind::VideoSdk => video_sdk::check(&token, question, secrets, &mut out),
        TokenKind::Zak | TokenKind::Obf => {
            zoom_token::check(&token, kind, question, secrets, &mut out)
        }
        TokenKind::Unknown => unknown(&token, question, secrets, &mut out),
    };
    let ok = out.0.iter().all(|f| f.ok);
    let verdict = if ok {
        format!("{}: {}", kind.label(), read.summary)
    } else {
        let problems: Vec<&str> = out
            .0
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.message.as_str())
            .collect();
        format!("{} is not valid: {}", kind.label(), problems.join("; "))
    };
    Diagnosis {
        kind,
        ok,
        verdict,
        account: read.account,
        expires_at: read.expires_at,
        findings: out.0,
    }
}

/// What a kind's checks read from the token, for the verdict.
#[derive(Default)]
struct Read {
    account: Option<String>,
    expires_at: Option<i64>,
    /// The verdict when every finding is ok.
    summary: String,
}

/// Zoom's payloads tell the kinds apart by their claim names.
fn kind_of(claims: &Claims) -> TokenKind {
    let any = |names: &[&str]| names.iter().any(|name| claims.has(name));
    if any(&["tpc", "app_key", "role_type", "user_identity", "user_key"]) {
        TokenKind::VideoSdk
    } else if any(&["appKey", "sdkKey", "mn", "tokenExp"]) {
        TokenKind::MeetingSdk
    } else if any(&["uid", "aid"]) {
        zoom_token::kind(claims)
    } else {
        TokenKind::Unknown
    }
}

/// A JWT with none of Zoom's claim names: still, whose secret signed it.
fn unknown(
    token: &jwt::Jwt<'_>,
    question: &Question<'_>,
    keys: &Secrets,
    out: &mut Findings,
) -> Read {
    out.bad(
        "kind",
        "not a Zoom token: no appKey or sdkKey (Meeting SDK), no app_key or tpc (Video SDK), \
         no uid (ZAK or OBF token)",
    );
    let expires_at = times(&token.claims, question.now, None, out);
    if let Some(signer) = keys.signer(token.signed.as_bytes(), &token.signature) {
        out.ok(
            "signature",
            format!(
                "signed with {}'s {}",
                keys.name(&signer.account),
                signer.app.secret()
            ),
        );
    }
    Read {
        expires_at,
        ..Read::default()
    }
}

/// The findings so far.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn ok(&mut self, check: &'static str, message: impl Into<String>) {
        self.push(check, true, message);
    }

    fn bad(&mut self, check: &'static str, message: impl Into<String>) {
        self.push(check, false, message);
    }

    fn push(&mut self, check: &'static str, ok: bool, message: impl Into<String>) {
        self.0.push(Finding {
            check,
            ok,
            message: message.into(),
        });
    }
}

/// The header Zoom's SDKs expect: `{"alg": "HS256", "typ": "JWT"}`. Returns whether the
/// signature can be checked (HS256).
fn check_header(header: &Claims, out: &mut Findings) -> bool {
    let hs256 = match header.text("alg") {
        Ok(Some("HS256")) => {
            out.ok("header.alg", "alg is HS256");
            true
        }
        Ok(Some(alg)) if alg.eq_ignore_ascii_case("none") => {
            out.bad(
                "header.alg",
                "alg is none: an unsigned token; Zoom wants HS256",
            );
            false
        }
        Ok(Some(alg)) => {
            out.bad(
                "header.alg",
                format!("alg is {}: Zoom wants HS256", jwt::quote(alg)),
            );
            false
        }
        Ok(None) => {
            out.bad("header.alg", "the header has no alg: Zoom wants HS256");
            false
        }
        Err(why) => {
            out.bad("header.alg", why);
            false
        }
    };
    match header.text("typ") {
        Ok(Some(typ)) if typ.eq_ignore_ascii_case("JWT") => out.ok("header.typ", "typ is JWT"),
        Ok(None) => out.ok("header.typ", "no typ (Zoom's samples send JWT)"),
        Ok(Some(typ)) => out.bad(
            "header.typ",
            format!("typ is {}: Zoom wants JWT", jwt::quote(typ)),
        ),
        Err(why) => out.bad("header.typ", why),
    }
    hs256
}

/// `iat` and `exp`: whole Unix seconds, `iat` not ahead of ztv's clock, `exp` not passed and,
/// for `life` = Some((min, max)), `exp − iat` within it. Returns `exp` when it can be read.
fn times(claims: &Claims, now: i64, life: Option<(i64, i64)>, out: &mut Findings) -> Option<i64> {
    let iat = seconds(claims, "iat", "the time it was issued", out);
    if let Some(iat) = iat {
        if iat > now + CLOCK_LENIENCY_SECONDS {
            out.bad(
                "iat",
                format!(
                    "issued {} in the future: the clock of the host that signed it is ahead \
                     of ztv's",
                    span(iat - now)
                ),
            );
        } else {
            out.ok("iat", format!("issued {} ago", span((now - iat).max(0))));
        }
    }
    let exp = seconds(claims, "exp", "when it expires", out);
    if let (Some(iat), Some(exp), Some((min, max))) = (iat, exp, life) {
        let lived = exp - iat;
        if lived < min {
            out.bad(
                "lifetime",
                format!(
                    "exp − iat is {lived} s: under Zoom's minimum of {min} s ({})",
                    span(min)
                ),
            );
        } else if lived > max {
            out.bad(
                "lifetime",
                format!(
                    "exp − iat is {lived} s: over Zoom's maximum of {max} s ({})",
                    span(max)
                ),
            );
        } else {
            out.ok(
                "lifetime",
                format!("exp − iat is {lived} s, within Zoom's {min}–{max} s"),
            );
        }
    }
    if let Some(exp) = exp {
        if exp <= now {
            out.bad("expiry", format!("expired {} ago", span(now - exp)));
        } else {
            out.ok(
                "expiry",
                format!(
                    "expires in {} (at {})",
                    span(exp - now),
                    crate::clock::rfc3339(exp)
                ),
            );
        }
    }
    exp
}

/// A claim in whole Unix seconds; a missing, mistyped or millisecond value is a finding.
fn seconds(claims: &Claims, name: &'static str, what: &str, out: &mut Findings) -> Option<i64> {
    match claims.integer(name) {
        Ok(Some(value)) if value >= MILLISECONDS_FROM => {
            out.bad(
                name,
                format!(
                    "{name} is in milliseconds (as JavaScript's Date.now() gives): Zoom wants \
                     Unix seconds"
                ),
            );
            None
        }
        Ok(Some(value)) => Some(value),
        Ok(None) => {
            out.bad(
                name,
                format!("{name} is missing: Zoom wants {what}, in Unix seconds"),
            );
            None
        }
        Err(why) => {
            out.bad(name, why);
            None
        }
    }
}

/// Whose secret signed the token, against whose key it carries: the mix-ups by name. `kind` is
/// the app that should have signed it; `key` the key (client ID) the token carries.
fn check_signer(
    token: &jwt::Jwt<'_>,
    kind: App,
    key: Option<&str>,
    keys: &Secrets,
    out: &mut Findings,
) -> Option<String> {
    let signer = keys.signer(token.signed.as_bytes(), &token.signature);
    let owner = key.and_then(|key| keys.owner_of_key(key, kind));
    let key_words = |owner: Option<&secrets::Known>| match owner {
        Some(owner) => format!("{}'s {}", keys.name(&owner.account), owner.app.key()),
        None => format!("a {} no configured account has", kind.key()),
    };
    match signer {
        Some(signer) if signer.app != kind => {
            out.bad(
                "signature",
                format!(
                    "signed with {}'s {}: a {} is signed with the {}",
                    keys.name(&signer.account),
                    signer.app.secret(),
                    kind_label(kind),
                    kind.secret()
                ),
            );
            None
        }
        Some(signer)
            if key.is_none()
                || owner.is_some_and(|o| o.account == signer.account && o.app == kind) =>
        {
            let carries = if key.is_some() {
                ", and carries its key"
            } else {
                ""
            };
            out.ok(
                "signature",
                format!(
                    "signed with {}'s {}{carries}",
                    keys.name(&signer.account),
                    kind.secret()
                ),
            );
            keys.visible(&signer.account)
        }
        Some(signer) => {
            out.bad(
                "signature",
                format!(
                    "signed with {}'s {} but carries {}",
                    keys.name(&signer.account),
                    kind.secret(),
                    key_words(owner)
                ),
            );
            None
        }
        None if !keys.has(kind) => {
            out.bad(
                "signature",
                format!(
                    "no configured account has a {}: nothing to check the signature against",
                    kind.secret()
                ),
            );
            None
        }
        None => {
            let carried = match (key, owner) {
                (None, _) => String::new(),
                (Some(_), owner) => format!("; it carries {}", key_words(owner)),
            };
            out.bad(
                "signature",
                format!(
                    "signed by none of the configured secrets (another app's secret, an old \
                     one, or a changed token){carried}"
                ),
            );
            None
        }
    }
}

fn kind_label(app: App) -> &'static str {
    match app {
        App::MeetingSdk => TokenKind::MeetingSdk.label(),
        App::VideoSdk => TokenKind::VideoSdk.label(),
        App::S2s | App::UserOAuth => TokenKind::Unknown.label(),
    }
}

/// A role claim (`role`, `role_type`): the number 0 (participant) or 1 (host). `missing`: the
/// finding when it is absent, if that is a problem.
fn check_role(
    claims: &Claims,
    name: &'static str,
    missing: Option<&str>,
    out: &mut Findings,
) -> Option<i64> {
    match claims.integer(name) {
        Ok(Some(role @ 0)) => {
            out.ok(name, format!("{name} is 0: joins as a participant"));
            Some(role)
        }
        Ok(Some(role @ 1)) => {
            out.ok(name, format!("{name} is 1: the host"));
            Some(role)
        }
        Ok(Some(role)) => {
            out.bad(
                name,
                format!("{name} is {role}: Zoom allows 0 (participant) or 1 (host)"),
            );
            None
        }
        Ok(None) => {
            if let Some(missing) = missing {
                out.bad(name, missing);
            }
            None
        }
        Err(why) => {
            out.bad(name, why);
            None
        }
    }
}

/// The verdict of a valid SDK JWT: who signed it, what for, and how long it has left.
fn summary(account: Option<&str>, target: &str, expires_at: Option<i64>, now: i64) -> String {
    let signed_by = account
        .map(|a| format!("signed by account `{a}`, "))
        .unwrap_or_default();
    let expiry = expires_at
        .map(|exp| format!(", expires in {}", span(exp - now)))
        .unwrap_or_default();
    format!("{signed_by}for {target}{expiry}")
}

/// A number of seconds as a person reads it: `4m 10s`, `1h 58m`.
fn span(seconds: i64) -> String {
    let seconds = seconds.unsigned_abs();
    // Above an hour the seconds are noise.
    let shown = if seconds >= 3600 {
        seconds - seconds % 60
    } else {
        seconds
    };
    humantime::format_duration(Duration::from_secs(shown)).to_string()
}

#[cfg(test)]
mod tests;
