//! Configuration: the shipped defaults, an optional file and `ZTV_…` environment variables,
//! layered in that order, then validated once into [`Settings`].
//!
//! Every problem is reported as `key: problem`, so an operator knows what to fix.
//!
//! Reading the layers is `load`'s, the raw keys `raw`'s, validation `validate`'s.
//!
//! May import: signing (the SDK credentials it holds), scope. Nothing that serves requests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::scope::Scope;
/// The prefix of every key ztv writes in Redis unless `cache.key_prefix` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "ztv:";

pub use crate::signing::{MeetingSdkCredentials, VideoSdkCredentials};

mod load;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use load::read_raw;
use validate::{Problems, validate};

/// The shipped defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration problem, already phrased as `key: problem` (several joined by `; `).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where the configuration comes from.
#[derive(Default)]
pub struct Sources {
    /// The file named by `--config` or `ZTV_CONFIG`.
    pub file: Option<PathBuf>,
    /// Environment variables (all of them; only `ZTV_<SECTION>__…` are read).
    pub env: HashMap<String, String>,
}

impl Sources {
    /// The process environment, and the file it names unless `file` is given.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file = file.or_else(|| {
            env.get("ZTV_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        Self { file, env }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub log_format: LogFormat,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    /// How often API keys are re-read from the store (bounds revocation delay).
    pub key_refresh: Duration,
    /// Seconds by which `iat` is back-dated.
    pub iat_backdate_seconds: u32,
    pub zoom: ZoomSettings,
    pub accounts: BTreeMap<String, Account>,
    /// End-user sign-in (OIDC); `None` when no issuer is configured.
    pub end_users: Option<EndUserSettings>,
    pub cors: CorsSettings,
    /// The default per-caller limit.
    pub rate_limit: RateLimitSettings,
    pub cache: CacheSettings,
    /// Encrypts user OAuth grants at rest; required when any account has `user_oauth`.
    pub grants_key: Option<SecretString>,
    /// Keeping grants alive, and who hears of one Zoom refused.
    pub grant_health: GrantHealth,
    /// Zoom's webhook secret token; `None`: the webhook route is off.
    pub webhook_secret: Option<SecretString>,
    /// Audit events older than this are pruned.
    pub audit_retention: Duration,
    pub telemetry: TelemetrySettings,
    /// The files `*_file` secrets were read from (watched for changes).
    pub secret_files: Vec<PathBuf>,
}

/// Sign-in of web and mobile users with the organisation's identity provider.
#[derive(Clone, Debug)]
pub struct EndUserSettings {
    /// Must equal the tokens' `iss` exactly.
    pub issuer: String,
    /// Must be among the tokens' `aud`.
    pub audience: String,
    /// Where the signing keys are; `None`: discovered from the issuer.
    pub jwks_url: Option<Url>,
    /// The claim that names the Zoom user (`me`).
    pub user_claim: String,
    /// Refuse a token whose `email_verified` is absent (one that says `false` is always
    /// refused when `user_claim` is `email`).
    pub require_email_verified: bool,
    /// What any signed-in user may do.
    pub scopes: Vec<Scope>,
    /// The account end users act for; `None`: the only one configured.
    pub account: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// An unknown `kid` refetches the keys at most this often.
    pub jwks_min_refetch: Duration,
}

#[derive(Clone, Debug)]
pub struct CorsSettings {
    /// Exact origins; empty: no CORS headers at all.
    pub allowed_origins: Vec<String>,
    /// How long browsers may cache a preflight.
    pub max_age: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub requests_per_second: u32,
    pub burst: u32,
    /// Zoom calls one caller's requests may cause a minute (all at once, if it likes).
    pub upstream_per_minute: u32,
}

#[derive(Clone, Debug, Default)]
pub struct CacheSettings {
    /// Shared cache and rate limits for several replicas; `None`: in-process.
    pub redis_url: Option<SecretString>,
    /// Base64 of 32 bytes; encrypts tokens held in Redis.
    pub encryption_key: Option<SecretString>,
    /// Prefix of every Redis key ztv writes (several deployments may share one Redis).
    pub key_prefix: String,
}

/// Where traces go. Read at start only.
#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base URL (spans are posted to `{base}/v1/traces`); `None`:
    /// traces are off.
    pub otlp_endpoint: Option<Url>,
    /// `service.name` on every span.
    pub service_name: String,
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Whole-request budget.
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// A second listener for `/metrics` only; `None`: `/metrics` is on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    /// How often `*_file` secrets are checked for changes; `None`: only SIGHUP reloads.
    pub secret_watch: Option<Duration>,
    /// Most connections served at once per listener; more are answered 503 or closed.
    pub max_connections: usize,
    /// Largest request line and headers of an HTTP/1.1 request, and largest HTTP/2 header
    /// list, in bytes; more is answered 431.
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1.1 request; more is answered 431.
    pub max_headers: usize,
    /// Longest wait for a request's headers once a connection is open or idle; the
    /// connection is then closed. Also the longest a connection may sit idle.
    pub header_read_timeout: Duration,
    /// Most HTTP/2 streams (requests) open at once on one connection.
    pub http2_max_concurrent_streams: u32,
}

#[derive(Clone)]
pub struct DatabaseSettings {
    /// May carry a password (PostgreSQL), hence secret.
    pub url: SecretString,
}

impl DatabaseSettings {
    /// The file of a `sqlite:` URL (`None` for in-memory or other databases).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let url = self.url.expose_secret();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.expose_secret();
        let scheme = url.split(':').next().unwrap_or("");
        write!(f, "DatabaseSettings {{ url: \"{scheme}:…\" }}")
    }
}

#[derive(Clone, Debug)]
pub struct ZoomSettings {
    pub oauth_url: Url,
    pub api_url: Url,
    /// Longest wait for a TCP/TLS connection to Zoom.
    pub connect_timeout: Duration,
    /// Longest wait for one answer from Zoom.
    pub request_timeout: Duration,
    /// Budget for one call including its retries; a caller never waits longer on Zoom.
    pub call_deadline: Duration,
    /// Retries after a connect error or a 5xx (not after a timeout or a 4xx).
    pub retries: u32,
    /// Refresh an S2S token when less than this remains (capped at half its life).
    pub refresh_margin: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker answers at once before letting one call through.
    pub breaker_cooldown: Duration,
    /// How long a ZAK or OBF token is reused for the same user (and meeting); 0 = never.
    pub user_token_cache: Duration,
    /// ZAKs kept at most; past it the one nearest the end of its reuse goes first.
    pub user_token_cache_entries: usize,
}

/// One named set of Zoom credentials.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    /// Zoom's OAuth host and API base for this account (a regional cluster); `None`:
    /// `zoom.oauth_url` / `zoom.api_url`.
    pub oauth_url: Option<Url>,
    pub api_url: Option<Url>,
    pub s2s: Option<S2sCredentials>,
    pub meeting_sdk: Option<MeetingSdkCredentials>,
    pub video_sdk: Option<VideoSdkCredentials>,
    pub user_oauth: Option<UserOAuthApp>,
}

/// The background refresh of grants and the announcement of broken ones.
#[derive(Clone, Debug)]
pub struct GrantHealth {
    /// Grants used within this long are refreshed before they expire; zero: never.
    pub keep_warm: Duration,
    /// How often the background refresh looks for grants about to expire.
    pub check_every: Duration,
    /// Where a grant Zoom refused is announced (a signed POST); `None`: nowhere.
    pub notify_url: Option<Url>,
    /// Signs the announcements, as Zoom signs its webhooks.
    pub notify_secret: Option<SecretString>,
}

/// A Zoom OAuth app that users authorise themselves (authorization-code flow).
#[derive(Clone, Debug)]
pub struct UserOAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Zoom sends the browser back here: ztv's `/v1/oauth/callback`.
    pub redirect_uri: Url,
    /// Where the browser goes after the callback; `None`: a small page.
    pub done_url: Option<Url>,
    /// This app's own webhook secret token; `None`: `webhooks.secret_token`.
    pub webhook_secret: Option<SecretString>,
}

/// A Server-to-Server OAuth app. `Debug` never shows the secret (`SecretString`).
#[derive(Clone, Debug)]
pub struct S2sCredentials {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl S2sCredentials {
    /// Whether `other` is the same app with the same secret.
    pub fn same_as(&self, other: &S2sCredentials) -> bool {
        self.account_id == other.account_id
            && self.client_id == other.client_id
            && self.client_secret.expose_secret() == other.client_secret.expose_secret()
    }
}

impl Account {
    /// Whether `other` has the same credentials and apps (secrets compared too).
    pub fn same_as(&self, other: &Account) -> bool {
        fn secret(a: &impl ExposeSecret<str>, b: &impl ExposeSecret<str>) -> bool {
            a.expose_secret() == b.expose_secret()
        }
        let s2s = match (&self.s2s, &other.s2s) {
            (Some(a), Some(b)) => a.same_as(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let meeting = match (&self.meeting_sdk, &other.meeting_sdk) {
            (Some(a), Some(b)) => {
                a.client_id == b.client_id && secret(&a.client_secret, &b.client_secret)
            }
            (a, b) => a.is_none() && b.is_none(),
        };
        let video = match (&self.video_sdk, &other.video_sdk) {
            (Some(a), Some(b)) => a.key == b.key && secret(&a.secret, &b.secret),
            (a, b) => a.is_none() && b.is_none(),
        };
        let oauth = match (&self.user_oauth, &other.user_oauth) {
            (Some(a), Some(b)) => {
                a.client_id == b.client_id
                    && secret(&a.client_secret, &b.client_secret)
                    && a.redirect_uri == b.redirect_uri
                    && a.done_url == b.done_url
                    && match (&a.webhook_secret, &b.webhook_secret) {
                        (Some(x), Some(y)) => secret(x, y),
                        (x, y) => x.is_none() && y.is_none(),
                    }
            }
            (a, b) => a.is_none() && b.is_none(),
        };
        self.name == other.name
            && self.oauth_url == other.oauth_url
            && self.api_url == other.api_url
            && s2s
            && meeting
            && video
            && oauth
    }

    /// This account's Zoom OAuth host: its own, or `zoom.oauth_url`.
    pub fn oauth_url<'a>(&'a self, zoom: &'a ZoomSettings) -> &'a Url {
        self.oauth_url.as_ref().unwrap_or(&zoom.oauth_url)
    }

    /// This account's Zoom API base: its own, or `zoom.api_url`.
    pub fn api_url<'a>(&'a self, zoom: &'a ZoomSettings) -> &'a Url {
        self.api_url.as_ref().unwrap_or(&zoom.api_url)
    }
}

impl Settings {
    /// Loads and validates. Every failure names the key at fault.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let raw = read_raw(sources)?;
        let mut problems = Problems::default();
        let mut settings = validate(raw, &mut problems);
        settings.secret_files = std::mem::take(&mut problems.1);
        match problems.0.is_empty() {
            true => Ok(settings),
            false => Err(ConfigError(problems.0.join("; "))),
        }
    }

    /// Parses a TOML text on top of the defaults, without the process environment (tests).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let dir = std::env::temp_dir().join(format!("ztv-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError(format!("temp dir: {e}")))?;
        let path = dir.join("ztv.toml");
        std::fs::write(&path, text).map_err(|e| ConfigError(format!("temp file: {e}")))?;
        let result = Self::load(&Sources {
            file: Some(path),
            env: HashMap::new(),
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// The account a caller gets when it names none: the only one configured.
    pub fn sole_account(&self) -> Option<&Account> {
        match self.accounts.len() {
            1 => self.accounts.values().next(),
            _ => None,
        }
    }
}

/// A base64 32-byte key.
pub fn decode_key(key: &SecretString) -> Option<[u8; 32]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.expose_secret().trim())
        .ok()?;
    bytes.try_into().ok()
}

/// Whether ztv may send requests (and trust answers) to `url`: https, or http to this
/// machine's loopback (the built-in emulator, a local identity provider in tests).
pub fn https_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}
