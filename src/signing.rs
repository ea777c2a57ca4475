//! The JWTs ztv signs itself: Meeting SDK signatures and Video SDK tokens, with exactly the
//! payloads of Zoom's documentation and official auth-endpoint samples, HS256 under the app's
//! secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

/// Shortest token life Zoom accepts (`exp` − now), in seconds.
pub const MIN_EXPIRATION_SECONDS: i64 = 1800;
/// Longest token life Zoom accepts, in seconds (48 hours).
pub const MAX_EXPIRATION_SECONDS: i64 = 172_800;
/// Token life when the caller asks for none, in seconds (as Zoom's samples).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 7200;

/// Digits in a meeting number.
pub const MEETING_NUMBER_DIGITS: std::ops::RangeInclusive<usize> = 9..=12;
/// Longest Video SDK session name (`tpc`), in characters.
pub const SESSION_NAME_MAX_CHARS: usize = 200;
/// Longest `user_key`, `user_identity` and `session_key` of a Video SDK token.
pub const USER_KEY_MAX_CHARS: usize = 36;
pub const USER_IDENTITY_MAX_CHARS: usize = 35;
pub const SESSION_KEY_MAX_CHARS: usize = 36;
/// Zoom's data-centre regions for a Video SDK token's `geo_regions`.
pub const GEO_REGIONS: [&str; 12] = [
    "AU", "BR", "CA", "CN", "DE", "HK", "IN", "JP", "MX", "NL", "SG", "US",
];
/// Symbols Zoom allows in a session name besides letters, digits and spaces.
const SESSION_NAME_SYMBOLS: &str = "!#$%&()+-:;<=.>?@[]^_{}|~,\\";

/// The first character of a session name Zoom does not allow, if any.
pub fn session_name_disallowed_char(name: &str) -> Option<char> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == ' ' || SESSION_NAME_SYMBOLS.contains(*c)))
}

/// A signed token and when it stops working (Unix seconds).
#[derive(Debug)]
pub struct Signed {
    pub token: String,
    pub expires_at: i64,
}

/// A meeting number as the caller gave it; it goes into `mn` in the same JSON type, as the
/// official sample does.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MeetingNumber {
    Number(u64),
    Text(String),
}

impl MeetingNumber {
    /// The number as digits, whichever JSON type it came in.
    pub fn digits(&self) -> String {
        match self {
            MeetingNumber::Number(n) => n.to_string(),
            MeetingNumber::Text(t) => t.clone(),
        }
    }
}

/// What goes into a Meeting SDK signature besides the app and the clock.
#[derive(Debug, Clone)]
pub struct MeetingSdkClaimsInput {
    /// `None`: the native-SDK form, without `mn` and `role`.
    pub meeting: Option<(MeetingNumber, u8)>,
    pub expiration_seconds: i64,
    pub video_webrtc_mode: Option<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeetingSdkClaims<'a> {
    app_key: &'a str,
    sdk_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mn: Option<&'a MeetingNumber>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<u8>,
    iat: i64,
    exp: i64,
    token_exp: i64,
    #[serde(rename = "video_webrtc_mode", skip_serializing_if = "Option::is_none")]
    video_webrtc_mode: Option<u8>,
}

/// `iat` and `exp` for a token asked to live `expiration_seconds`: `iat` is back-dated by up
/// to `backdate` seconds, but never so far that less than Zoom's 1800 s remain after now.
fn issue_window(now: i64, backdate: u32, expiration_seconds: i64) -> (i64, i64) {
    let room = (expiration_seconds - MIN_EXPIRATION_SECONDS).max(0);
    let iat = now - i64::from(backdate).min(room);
    (iat, iat + expiration_seconds)
}

/// A Meeting SDK app: its client ID is the "SDK key".
#[derive(Clone, Debug)]
pub struct MeetingSdkCredentials {
    pub client_id: String,
    pub client_secret: SigningSecret,
}

/// A Video SDK app: its key and the secret that signs its session tokens.
#[derive(Clone, Debug)]
pub struct VideoSdkCredentials {
    pub key: String,
    pub secret: SigningSecret,
}

/// An app secret that signs HS256 JWTs. Beside the secret it keeps the HMAC-SHA256 key
/// schedule (the hash states after the padded key), computed once when the configuration is
/// read, where `jsonwebtoken::encode` derives it again for every token. Tokens are the same
/// bytes as `jsonwebtoken`'s (a unit test compares them; the route tests decode every
/// token with it). Debug shows neither the secret nor the schedule.
#[derive(Clone)]
pub struct SigningSecret {
    secret: SecretString,
    hmac: Hmac<Sha256>,
}

impl SigningSecret {
    pub fn new(secret: SecretString) -> Self {
        let hmac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        Self { secret, hmac }
    }

    /// `header.payload.signature`, all base64url without padding: `{"typ":"JWT","alg":"HS256"}`
    /// (as `jsonwebtoken::Header::new(Algorithm::HS256)` writes it) and the claims as JSON.
    fn sign(&self, claims: &impl Serialize) -> String {
        /// base64url of `{"typ":"JWT","alg":"HS256"}`.
        const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";
        // Serialising a plain struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(claims).expect("claims serialise to JSON");
        let mut token = String::with_capacity(
            HEADER.len() + 2 + (payload.len() * 4).div_ceil(3) + 43, // 43: 32 bytes, base64
        );
        token.push_str(HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let mut mac = self.hmac.clone();
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        token
    }
}

impl SigningSecret {
    /// Whether `signature` is this secret's HMAC-SHA256 of `signed`, compared in constant time.
    pub fn verifies(&self, signed: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.hmac.clone();
        mac.update(signed);
        mac.verify_slice(signature).is_ok()
    }
}

impl From<SecretString> for SigningSecret {
    fn from(secret: SecretString) -> Self {
        Self::new(secret)
    }
}

impl ExposeSecret<str> for SigningSecret {
    fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([REDACTED])")
    }
}

/// The Meeting SDK JWT ("signature").
pub fn meeting_sdk_signature(
    app: &MeetingSdkCredentials,
    input: &MeetingSdkClaimsInput,
    now: i64,
    backdate: u32,
) -> Signed {
    let (iat, exp) = issue_window(now, backdate, input.expiration_seconds);
    let claims = MeetingSdkClaims {
        app_key: &app.client_id,
        sdk_key: &app.client_id,
        mn: input.meeting.as_ref().map(|(mn, _)| mn),
        role: input.meeting.as_ref().map(|(_, role)| *role),
        iat,
        exp,
        token_exp: exp,
        video_webrtc_mode: input.video_webrtc_mode,
    };
    Signed {
        token: app.client_secret.sign(&claims),
        expires_at: exp,
    }
}

/// Who the Video SDK user is, in the claim name the caller chose.
#[derive(Debug, Clone)]
pub enum VideoUser {
    /// `user_key` (current name).
    Key(String),
    /// `user_identity` (older name).
    Identity(String),
}

/// What goes into a Video SDK token besides the app and the clock.
#[derive(Debug, Clone, Default)]
pub struct VideoSdkClaimsInput {
    pub session_name: String,
    pub role: u8,
    pub expiration_seconds: i64,
    pub user: Option<VideoUser>,
    pub session_key: Option<String>,
    /// Already comma-joined.
    pub geo_regions: Option<String>,
    pub cloud_recording_option: Option<u8>,
    pub cloud_recording_election: Option<u8>,
    pub telemetry_tracking_id: Option<String>,
    pub video_webrtc_mode: Option<u8>,
    pub audio_webrtc_mode: Option<u8>,
}

#[derive(Serialize)]
struct VideoSdkClaims<'a> {
    app_key: &'a str,
    tpc: &'a str,
    role_type: u8,
    version: u8,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_identity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    geo_regions: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_recording_option: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_recording_election: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    telemetry_tracking_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video_webrtc_mode: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio_webrtc_mode: Option<u8>,
}

/// The Video SDK session JWT.
pub fn video_sdk_token(
    app: &VideoSdkCredentials,
    input: &VideoSdkClaimsInput,
    now: i64,
    backdate: u32,
) -> Signed {
    let (iat, exp) = issue_window(now, backdate, input.expiration_seconds);
    let (user_key, user_identity) = match &input.user {
        Some(VideoUser::Key(k)) => (Some(k.as_str()), None),
        Some(VideoUser::Identity(i)) => (None, Some(i.as_str())),
        None => (None, None),
    };
    let claims = VideoSdkClaims {
        app_key: &app.key,
        tpc: &input.session_name,
        role_type: input.role,
        version: 1,
        iat,
        exp,
        user_key,
        user_identity,
        session_key: input.session_key.as_deref(),
        geo_regions: input.geo_regions.as_deref(),
        cloud_recording_option: input.cloud_recording_option,
        cloud_recording_election: input.cloud_recording_election,
        telemetry_tracking_id: input.telemetry_tracking_id.as_deref(),
        video_webrtc_mode: input.video_webrtc_mode,
        audio_webrtc_mode: input.audio_webrtc_mode,
    };
    Signed {
        token: app.secret.sign(&claims),
        expires_at: exp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_the_bytes_jsonwebtoken_signs() {
        use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
        let secret = "bench-secret-0123456789abcdef";
        let app = MeetingSdkCredentials {
            client_id: "sdkKey".into(),
            client_secret: SecretString::from(secret).into(),
        };
        for meeting in [
            None,
            Some((MeetingNumber::Text("123456789".into()), 0)),
            Some((MeetingNumber::Number(98_765_432_101), 1)),
        ] {
            let input = MeetingSdkClaimsInput {
                meeting,
                expiration_seconds: 7200,
                video_webrtc_mode: Some(1),
            };
            let (iat, exp) = issue_window(1_700_000_000, 30, 7200);
            let claims = MeetingSdkClaims {
                app_key: "sdkKey",
                sdk_key: "sdkKey",
                mn: input.meeting.as_ref().map(|(mn, _)| mn),
                role: input.meeting.as_ref().map(|(_, role)| *role),
                iat,
                exp,
                token_exp: exp,
                video_webrtc_mode: Some(1),
            };
            let expected = encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            let signed = meeting_sdk_signature(&app, &input, 1_700_000_000, 30);
            assert_eq!(signed.token, expected);
            assert_eq!(signed.expires_at, exp);
        }
        // The same key schedule signs again and again (it is cloned, never consumed).
        let input = MeetingSdkClaimsInput {
            meeting: None,
            expiration_seconds: 1800,
            video_webrtc_mode: None,
        };
        assert_eq!(
            meeting_sdk_signature(&app, &input, 5, 0).token,
            meeting_sdk_signature(&app, &input, 5, 0).token
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let secret = SigningSecret::from(SecretString::from("top-secret-value"));
        let shown = format!("{secret:?}");
        assert!(!shown.contains("top-secret-value"), "{shown}");
        assert_eq!(secret.expose_secret(), "top-secret-value");
    }

    #[test]
    fn backdate_never_leaves_less_than_zoom_minimum() {
        assert_eq!(issue_window(10_000, 0, 7200), (10_000, 17_200));
        assert_eq!(issue_window(10_000, 30, 7200), (9_970, 17_170));
        // At the minimum life there is no room to back-date at all.
        assert_eq!(issue_window(10_000, 30, 1800), (10_000, 11_800));
        assert_eq!(issue_window(10_000, 30, 1810), (9_990, 11_800));
    }
}
