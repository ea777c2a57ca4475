//! Configuration: the shipped defaults, an optional file and `ZTV_…` environment variables,
//! layered in that order, then validated once into [`Settings`].
//!
//! Every problem is reported as `key: problem`, so an operator knows what to fix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::scope::Scope;
/// The prefix of every key ztv writes in Redis unless `cache.key_prefix` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "ztv:";

pub use crate::signing::{MeetingSdkCredentials, VideoSdkCredentials};

/// The shipped defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Top-level keys that environment variables may set; any other `ZTV_…` variable
/// (`ZTV_CONFIG`, `ZTV_TEST_…`) is not configuration and is ignored.
const ENV_SECTIONS: &[&str] = &[
    "log_format",
    "server",
    "database",
    "auth",
    "signing",
    "zoom",
    "accounts",
    "end_users",
    "cors",
    "rate_limit",
    "cache",
    "grants",
    "webhooks",
    "audit",
];

/// Keys whose environment form is a comma-separated list.
const ENV_LIST_KEYS: &[&str] = &["cors.allowed_origins", "end_users.scopes"];

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
    /// Zoom's webhook secret token; `None`: the webhook route is off.
    pub webhook_secret: Option<SecretString>,
    /// Audit events older than this are pruned.
    pub audit_retention: Duration,
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
    pub s2s: Option<S2sCredentials>,
    pub meeting_sdk: Option<MeetingSdkCredentials>,
    pub video_sdk: Option<VideoSdkCredentials>,
    pub user_oauth: Option<UserOAuthApp>,
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
            }
            (a, b) => a.is_none() && b.is_none(),
        };
        self.name == other.name && s2s && meeting && video && oauth
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

fn read_raw(sources: &Sources) -> Result<RawSettings, ConfigError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    if let Some(path) = &sources.file {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "config file {}: not found",
                path.display()
            )));
        }
        builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
    }
    let env: config::Map<String, String> = sources
        .env
        .iter()
        .filter(|(name, _)| is_config_env(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("ZTV")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key(ENV_LIST_KEYS[0])
            .with_list_parse_key(ENV_LIST_KEYS[1])
            .source(Some(env)),
    );
    let config = builder.build().map_err(describe)?;
    config.try_deserialize::<RawSettings>().map_err(describe)
}

fn is_config_env(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("ZTV_") else {
        return false;
    };
    let section = rest.split("__").next().unwrap_or("").to_ascii_lowercase();
    ENV_SECTIONS.contains(&section.as_str())
}

/// Phrases a `config` crate error as `key: problem`, never echoing a value (it may be a secret).
fn describe(err: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    let text = match err {
        E::Type {
            key,
            unexpected,
            expected,
            ..
        } => {
            // The value itself is never shown: it may be a secret put under the wrong key.
            // (`Unexpected` cannot be named outside the crate, hence its Debug variant name.)
            let variant = format!("{unexpected:?}");
            let found = match variant.split('(').next().unwrap_or("") {
                "Str" => "a string",
                "Bool" => "a boolean",
                "I64" | "I128" | "U64" | "U128" => "an integer",
                "Float" => "a number",
                "Seq" => "a list",
                "Map" => "a table",
                _ => "nothing",
            };
            format!(
                "{}: expected {expected}, found {found}",
                key.unwrap_or_else(|| "(root)".into())
            )
        }
        E::At { error, key, .. } => match key {
            Some(key) => format!("{key}: {}", strip_for_key(&error.to_string())),
            None => error.to_string(),
        },
        E::FileParse { uri, cause } => format!(
            "config file {}: {}",
            uri.unwrap_or_default(),
            cause.to_string().lines().next().unwrap_or("cannot parse")
        ),
        other => other.to_string(),
    };
    ConfigError(text)
}

fn strip_for_key(message: &str) -> String {
    message.replace("unknown field", "unknown key")
}

// ---------------------------------------------------------------------------------------------
// Raw shape: everything optional, unknown keys refused. Secrets are `SecretString` from here on.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    log_format: Option<String>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    signing: RawSigning,
    #[serde(default)]
    zoom: RawZoom,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    end_users: RawEndUsers,
    #[serde(default)]
    cors: RawCors,
    #[serde(default)]
    rate_limit: RawRateLimit,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    grants: RawGrants,
    #[serde(default)]
    webhooks: RawWebhooks,
    #[serde(default)]
    audit: RawAudit,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retention_days: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEndUsers {
    issuer: Option<String>,
    audience: Option<String>,
    jwks_url: Option<String>,
    user_claim: Option<String>,
    require_email_verified: Option<bool>,
    scopes: Option<Vec<String>>,
    account: Option<String>,
    leeway_seconds: Option<u64>,
    jwks_min_refetch_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCors {
    allowed_origins: Option<Vec<String>>,
    max_age_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests_per_second: Option<u64>,
    burst: Option<u64>,
    upstream_per_minute: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    redis_url: Option<SecretString>,
    encryption_key: Option<SecretString>,
    key_prefix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: Option<String>,
    request_timeout_seconds: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
    metrics_bind: Option<String>,
    secret_watch_seconds: Option<u64>,
    max_connections: Option<u64>,
    max_header_bytes: Option<u64>,
    max_headers: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    http2_max_concurrent_streams: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<SecretString>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    key_refresh_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    iat_backdate_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawZoom {
    oauth_url: Option<String>,
    api_url: Option<String>,
    connect_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    call_deadline_ms: Option<u64>,
    retries: Option<u64>,
    refresh_margin_seconds: Option<u64>,
    breaker_failures: Option<u64>,
    breaker_cooldown_seconds: Option<u64>,
    user_token_cache_seconds: Option<u64>,
    user_token_cache_entries: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    s2s: Option<RawS2s>,
    meeting_sdk: Option<RawMeetingSdk>,
    video_sdk: Option<RawVideoSdk>,
    user_oauth: Option<RawUserOAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserOAuth {
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    client_secret_file: Option<PathBuf>,
    redirect_uri: Option<String>,
    done_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    encryption_key: Option<SecretString>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    secret_token: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS2s {
    account_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    client_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeetingSdk {
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    client_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVideoSdk {
    key: Option<String>,
    secret: Option<SecretString>,
    secret_file: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Validation

#[derive(Default)]
struct Problems(Vec<String>, Vec<PathBuf>);

impl Problems {
    fn add(&mut self, key: &str, problem: impl fmt::Display) {
        self.0.push(format!("{key}: {problem}"));
    }

    /// A required, non-empty plain value.
    fn required(&mut self, key: &str, value: Option<String>) -> String {
        match value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            Some(v) => v,
            None => {
                self.add(key, "missing");
                String::new()
            }
        }
    }

    /// A required secret, given inline or as `<key>_file`, not both.
    fn secret(
        &mut self,
        key: &str,
        inline: Option<SecretString>,
        file: Option<PathBuf>,
    ) -> SecretString {
        let inline = inline.filter(|s| !s.expose_secret().is_empty());
        let file = file.filter(|p| !p.as_os_str().is_empty());
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.add(key, format!("set {key} or {key}_file, not both"));
                SecretString::from(String::new())
            }
            (Some(secret), None) => secret,
            (None, Some(path)) => match read_secret_file(&path) {
                Ok(secret) => {
                    self.1.push(path);
                    secret
                }
                Err(problem) => {
                    self.add(&format!("{key}_file"), problem);
                    SecretString::from(String::new())
                }
            },
            (None, None) => {
                self.add(key, "missing");
                SecretString::from(String::new())
            }
        }
    }
}

fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

fn validate(raw: RawSettings, p: &mut Problems) -> Settings {
    let log_format = match raw.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => {
            p.add("log_format", "must be \"text\" or \"json\"");
            LogFormat::Text
        }
    };

    let bind_text = p.required("server.bind", raw.server.bind);
    let bind = bind_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        if !bind_text.is_empty() {
            p.add(
                "server.bind",
                "must be an address and port, e.g. 127.0.0.1:8080",
            );
        }
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let request_timeout = seconds_in(
        p,
        "server.request_timeout_seconds",
        raw.server.request_timeout_seconds,
        1..=600,
        30,
    );
    let shutdown_grace = seconds_in(
        p,
        "server.shutdown_grace_seconds",
        raw.server.shutdown_grace_seconds,
        0..=600,
        30,
    );
    let metrics_bind = match raw.server.metrics_bind.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(addr) if addr == bind && addr.port() != 0 => {
                p.add("server.metrics_bind", "must differ from server.bind");
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                p.add(
                    "server.metrics_bind",
                    "must be an address and port, e.g. 127.0.0.1:9090, or empty",
                );
                None
            }
        },
    };
    let secret_watch = match seconds_in(
        p,
        "server.secret_watch_seconds",
        raw.server.secret_watch_seconds,
        0..=3600,
        5,
    ) {
        Duration::ZERO => None,
        every => Some(every),
    };
    let max_connections = number_in(
        p,
        "server.max_connections",
        raw.server.max_connections,
        1..=1_000_000,
        512,
    ) as usize;
    // hyper's HTTP/1.1 read buffer, which bounds the head, cannot be smaller than 8 KiB.
    let max_header_bytes = number_in(
        p,
        "server.max_header_bytes",
        raw.server.max_header_bytes,
        8192..=1_048_576,
        16_384,
    ) as usize;
    let max_headers = number_in(
        p,
        "server.max_headers",
        raw.server.max_headers,
        16..=1000,
        100,
    ) as usize;
    let header_read_timeout = seconds_in(
        p,
        "server.header_read_timeout_seconds",
        raw.server.header_read_timeout_seconds,
        1..=300,
        10,
    );
    let http2_max_concurrent_streams = number_in(
        p,
        "server.http2_max_concurrent_streams",
        raw.server.http2_max_concurrent_streams,
        1..=1000,
        100,
    ) as u32;

    let url = raw
        .database
        .url
        .filter(|u| !u.expose_secret().trim().is_empty());
    let url = match url {
        Some(url)
            if ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.expose_secret().starts_with(scheme)) =>
        {
            url
        }
        Some(_) => {
            p.add(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
            SecretString::from(String::new())
        }
        None => {
            p.add("database.url", "missing");
            SecretString::from(String::new())
        }
    };

    let key_refresh = seconds_in(
        p,
        "auth.key_refresh_seconds",
        raw.auth.key_refresh_seconds,
        1..=5,
        2,
    );

    let backdate = raw.signing.iat_backdate_seconds.unwrap_or(0);
    let iat_backdate_seconds = match u32::try_from(backdate) {
        Ok(v) if v <= 300 => v,
        _ => {
            p.add("signing.iat_backdate_seconds", "must be between 0 and 300");
            0
        }
    };

    let z = raw.zoom;
    let zoom = ZoomSettings {
        oauth_url: fetched_url(p, "zoom.oauth_url", z.oauth_url),
        api_url: fetched_url(p, "zoom.api_url", z.api_url),
        connect_timeout: millis_in(
            p,
            "zoom.connect_timeout_ms",
            z.connect_timeout_ms,
            50..=30_000,
            2_000,
        ),
        request_timeout: millis_in(
            p,
            "zoom.request_timeout_ms",
            z.request_timeout_ms,
            50..=60_000,
            4_000,
        ),
        call_deadline: millis_in(
            p,
            "zoom.call_deadline_ms",
            z.call_deadline_ms,
            100..=120_000,
            8_000,
        ),
        retries: number_in(p, "zoom.retries", z.retries, 0..=5, 2) as u32,
        refresh_margin: seconds_in(
            p,
            "zoom.refresh_margin_seconds",
            z.refresh_margin_seconds,
            0..=1800,
            300,
        ),
        breaker_failures: number_in(p, "zoom.breaker_failures", z.breaker_failures, 1..=100, 5)
            as u32,
        breaker_cooldown: seconds_in(
            p,
            "zoom.breaker_cooldown_seconds",
            z.breaker_cooldown_seconds,
            1..=300,
            5,
        ),
        user_token_cache: seconds_in(
            p,
            "zoom.user_token_cache_seconds",
            z.user_token_cache_seconds,
            0..=1800,
            300,
        ),
        user_token_cache_entries: number_in(
            p,
            "zoom.user_token_cache_entries",
            z.user_token_cache_entries,
            1..=10_000_000,
            10_000,
        ) as usize,
    };

    let end_users = validate_end_users(p, raw.end_users, &raw.accounts);
    let cors = validate_cors(p, raw.cors);
    let rate_limit = RateLimitSettings {
        requests_per_second: number_in(
            p,
            "rate_limit.requests_per_second",
            raw.rate_limit.requests_per_second,
            1..=100_000,
            50,
        ) as u32,
        burst: number_in(
            p,
            "rate_limit.burst",
            raw.rate_limit.burst,
            1..=100_000,
            100,
        ) as u32,
        upstream_per_minute: number_in(
            p,
            "rate_limit.upstream_per_minute",
            raw.rate_limit.upstream_per_minute,
            1..=100_000,
            60,
        ) as u32,
    };
    let cache = validate_cache(p, raw.cache);
    let grants_key = raw
        .grants
        .encryption_key
        .filter(|k| !k.expose_secret().trim().is_empty());
    match &grants_key {
        Some(key) if decode_key(key).is_none() => p.add(
            "grants.encryption_key",
            "must be base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)",
        ),
        None if raw.accounts.values().any(|a| a.user_oauth.is_some()) => p.add(
            "grants.encryption_key",
            "required when any account has user_oauth (grants are encrypted at rest)",
        ),
        _ => {}
    }
    let webhook_secret = raw
        .webhooks
        .secret_token
        .filter(|k| !k.expose_secret().trim().is_empty());
    let accounts = raw
        .accounts
        .into_iter()
        .map(|(name, account)| {
            let account = validate_account(p, &name, account);
            (name, account)
        })
        .collect();

    Settings {
        log_format,
        server: ServerSettings {
            bind,
            request_timeout,
            shutdown_grace,
            metrics_bind,
            secret_watch,
            max_connections,
            max_header_bytes,
            max_headers,
            header_read_timeout,
            http2_max_concurrent_streams,
        },
        database: DatabaseSettings { url },
        key_refresh,
        iat_backdate_seconds,
        zoom,
        accounts,
        end_users,
        cors,
        rate_limit,
        cache,
        grants_key,
        webhook_secret,
        audit_retention: Duration::from_secs(
            86_400
                * number_in(
                    p,
                    "audit.retention_days",
                    raw.audit.retention_days,
                    1..=3650,
                    90,
                ),
        ),
        secret_files: Vec::new(),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn validate_end_users(
    p: &mut Problems,
    raw: RawEndUsers,
    accounts: &BTreeMap<String, RawAccount>,
) -> Option<EndUserSettings> {
    let issuer = non_empty(raw.issuer)?;
    let jwks_url = non_empty(raw.jwks_url).map(|u| fetched_url(p, "end_users.jwks_url", Some(u)));
    match Url::parse(&issuer) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            // Without jwks_url the keys are discovered from the issuer: it is fetched.
            if jwks_url.is_none() && !https_or_loopback(&u) {
                p.add("end_users.issuer", HTTPS_OR_LOOPBACK);
            }
        }
        _ => p.add("end_users.issuer", "must be an http(s) URL"),
    }
    let audience = p.required("end_users.audience", raw.audience);
    let user_claim = non_empty(raw.user_claim).unwrap_or_else(|| "email".into());
    let mut scopes = Vec::new();
    for text in raw.scopes.unwrap_or_default() {
        match text.trim().parse::<Scope>() {
            Ok(Scope::S2sToken | Scope::GrantsAdmin) => p.add(
                "end_users.scopes",
                format!("`{}` is for API keys only", text.trim()),
            ),
            Ok(scope) => scopes.push(scope),
            Err(e) => p.add("end_users.scopes", e),
        }
    }
    scopes.sort();
    scopes.dedup();
    let account = non_empty(raw.account);
    match &account {
        Some(name) if !accounts.contains_key(name) => {
            p.add(
                "end_users.account",
                format!("account `{name}` is not configured"),
            );
        }
        None if accounts.len() > 1 => p.add(
            "end_users.account",
            "required when several accounts are configured",
        ),
        _ => {}
    }
    Some(EndUserSettings {
        issuer,
        audience,
        jwks_url,
        require_email_verified: raw.require_email_verified.unwrap_or(user_claim == "email"),
        user_claim,
        scopes,
        account,
        leeway: seconds_in(
            p,
            "end_users.leeway_seconds",
            raw.leeway_seconds,
            0..=300,
            30,
        ),
        jwks_min_refetch: seconds_in(
            p,
            "end_users.jwks_min_refetch_seconds",
            raw.jwks_min_refetch_seconds,
            1..=3600,
            5,
        ),
    })
}

fn validate_cors(p: &mut Problems, raw: RawCors) -> CorsSettings {
    let mut allowed_origins = Vec::new();
    for origin in raw.allowed_origins.unwrap_or_default() {
        let origin = origin.trim().trim_end_matches('/').to_string();
        if origin.is_empty() {
            continue;
        }
        let valid = Url::parse(&origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
        }) && !origin.contains('*');
        if valid {
            allowed_origins.push(origin);
        } else {
            p.add(
                "cors.allowed_origins",
                "each origin must be exact, e.g. https://app.example.com (no path, no wildcard)",
            );
        }
    }
    CorsSettings {
        allowed_origins,
        max_age: seconds_in(
            p,
            "cors.max_age_seconds",
            raw.max_age_seconds,
            0..=86_400,
            600,
        ),
    }
}

fn validate_cache(p: &mut Problems, raw: RawCache) -> CacheSettings {
    let redis_url = raw
        .redis_url
        .filter(|u| !u.expose_secret().trim().is_empty());
    let encryption_key = raw
        .encryption_key
        .filter(|k| !k.expose_secret().trim().is_empty());
    if let Some(url) = &redis_url
        && !(url.expose_secret().starts_with("redis://")
            || url.expose_secret().starts_with("rediss://"))
    {
        p.add("cache.redis_url", "must start with redis:// or rediss://");
    }
    match (&redis_url, &encryption_key) {
        (Some(_), None) => p.add(
            "cache.encryption_key",
            "required with cache.redis_url (tokens are encrypted in Redis)",
        ),
        (_, Some(key)) if decode_key(key).is_none() => p.add(
            "cache.encryption_key",
            "must be base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)",
        ),
        _ => {}
    }
    let key_prefix = raw.key_prefix.unwrap_or_else(|| DEFAULT_KEY_PREFIX.into());
    if key_prefix.len() > 64
        || key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        p.add(
            "cache.key_prefix",
            "must be at most 64 characters without spaces",
        );
    }
    CacheSettings {
        redis_url,
        encryption_key,
        key_prefix,
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

/// A whole number within `range` (the default when absent).
fn number_in(
    p: &mut Problems,
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> u64 {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        p.add(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        );
        return default;
    }
    value
}

fn seconds_in(
    p: &mut Problems,
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Duration {
    Duration::from_secs(number_in(p, key, value, range, default))
}

fn millis_in(
    p: &mut Problems,
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Duration {
    Duration::from_millis(number_in(p, key, value, range, default))
}

/// Why a URL ztv fetches from was refused.
const HTTPS_OR_LOOPBACK: &str = "must be an https URL (http only for a loopback address)";

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

/// A URL ztv fetches from: [`http_url`], and https unless it is a loopback address.
fn fetched_url(p: &mut Problems, key: &str, value: Option<String>) -> Url {
    let url = http_url(p, key, value);
    if !https_or_loopback(&url) {
        p.add(key, HTTPS_OR_LOOPBACK);
    }
    url
}

fn http_url(p: &mut Problems, key: &str, value: Option<String>) -> Url {
    let fallback = || Url::parse("http://127.0.0.1/").expect("static URL parses");
    let text = p.required(key, value);
    if text.is_empty() {
        return fallback();
    }
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
        _ => {
            p.add(key, "must be an http(s) URL");
            fallback()
        }
    }
}

fn validate_account(p: &mut Problems, name: &str, raw: RawAccount) -> Account {
    let base = format!("accounts.{name}");
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        p.add(
            &base,
            "account names are 1–64 lowercase letters, digits, '-' or '_'",
        );
    }
    let s2s = raw.s2s.map(|s| {
        let key = format!("{base}.s2s");
        S2sCredentials {
            account_id: p.required(&format!("{key}.account_id"), s.account_id),
            client_id: p.required(&format!("{key}.client_id"), s.client_id),
            client_secret: p.secret(
                &format!("{key}.client_secret"),
                s.client_secret,
                s.client_secret_file,
            ),
        }
    });
    let meeting_sdk = raw.meeting_sdk.map(|s| {
        let key = format!("{base}.meeting_sdk");
        MeetingSdkCredentials {
            client_id: p.required(&format!("{key}.client_id"), s.client_id),
            client_secret: p
                .secret(
                    &format!("{key}.client_secret"),
                    s.client_secret,
                    s.client_secret_file,
                )
                .into(),
        }
    });
    let video_sdk = raw.video_sdk.map(|s| {
        let key = format!("{base}.video_sdk");
        VideoSdkCredentials {
            key: p.required(&format!("{key}.key"), s.key),
            secret: p
                .secret(&format!("{key}.secret"), s.secret, s.secret_file)
                .into(),
        }
    });
    let user_oauth = raw.user_oauth.map(|s| {
        let key = format!("{base}.user_oauth");
        UserOAuthApp {
            client_id: p.required(&format!("{key}.client_id"), s.client_id),
            client_secret: p.secret(
                &format!("{key}.client_secret"),
                s.client_secret,
                s.client_secret_file,
            ),
            redirect_uri: http_url(p, &format!("{key}.redirect_uri"), s.redirect_uri),
            done_url: non_empty(s.done_url)
                .map(|u| http_url(p, &format!("{key}.done_url"), Some(u))),
        }
    });
    if s2s.is_none() && meeting_sdk.is_none() && video_sdk.is_none() && user_oauth.is_none() {
        p.add(
            &base,
            "has no credentials (s2s, meeting_sdk, video_sdk or user_oauth)",
        );
    }
    Account {
        name: name.to_string(),
        s2s,
        meeting_sdk,
        video_sdk,
        user_oauth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_without_any_account() {
        let s = Settings::load(&Sources::default()).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert!(s.accounts.is_empty());
        assert_eq!(s.iat_backdate_seconds, 0);
    }

    #[test]
    fn env_overrides_file_and_names_nested_account_keys() {
        let s = Settings::load(&Sources {
            file: None,
            env: env(&[
                ("ZTV_SERVER__BIND", "127.0.0.1:9999"),
                ("ZTV_ACCOUNTS__PROD__MEETING_SDK__CLIENT_ID", "sdk-id"),
                (
                    "ZTV_ACCOUNTS__PROD__MEETING_SDK__CLIENT_SECRET",
                    "sdk-secret",
                ),
                ("ZTV_CONFIG", "/nonexistent"),
                ("ZTV_TEST_DATABASE_URL", "postgres://x"),
            ]),
        })
        .unwrap();
        assert_eq!(s.server.bind.port(), 9999);
        let prod = &s.accounts["prod"];
        assert_eq!(prod.meeting_sdk.as_ref().unwrap().client_id, "sdk-id");
    }

    #[test]
    fn missing_secret_is_named_by_its_key() {
        let err = Settings::from_toml("[accounts.prod.meeting_sdk]\nclient_id = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "accounts.prod.meeting_sdk.client_secret: missing");
    }

    #[test]
    fn wrong_type_names_the_key_without_echoing_the_value() {
        let err = Settings::from_toml("[server]\nrequest_timeout_seconds = \"soon-secret\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.request_timeout_seconds:"), "{err}");
        assert!(!err.contains("soon-secret"), "{err}");
    }

    #[test]
    fn metrics_bind_and_secret_watch_are_checked() {
        let ok = Settings::from_toml(
            "[server]\nmetrics_bind = \"127.0.0.1:9090\"\nsecret_watch_seconds = 0\n\
             [accounts.a.video_sdk]\nkey = \"k\"\nsecret = \"s\"\n",
        )
        .unwrap();
        assert_eq!(ok.server.metrics_bind.unwrap().port(), 9090);
        assert_eq!(ok.server.secret_watch, None);
        for (text, key) in [
            (
                "metrics_bind = \"127.0.0.1:8080\"",
                "server.metrics_bind: must differ",
            ),
            (
                "metrics_bind = \"nine\"",
                "server.metrics_bind: must be an address",
            ),
            (
                "secret_watch_seconds = 7200",
                "server.secret_watch_seconds:",
            ),
        ] {
            let err = Settings::from_toml(&format!(
                "[server]\nbind = \"127.0.0.1:8080\"\n{text}\n[accounts.a.video_sdk]\nkey = \"k\"\nsecret = \"s\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }

    #[test]
    fn hostile_caller_limits_have_defaults_and_bounds() {
        let s = Settings::load(&Sources::default()).unwrap();
        assert_eq!(s.server.max_connections, 512);
        assert_eq!(s.server.max_header_bytes, 16_384);
        assert_eq!(s.server.max_headers, 100);
        assert_eq!(s.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.server.http2_max_concurrent_streams, 100);

        let s = Settings::load(&Sources {
            file: None,
            env: env(&[
                ("ZTV_SERVER__MAX_CONNECTIONS", "8"),
                ("ZTV_SERVER__MAX_HEADER_BYTES", "8192"),
                ("ZTV_SERVER__MAX_HEADERS", "20"),
                ("ZTV_SERVER__HEADER_READ_TIMEOUT_SECONDS", "1"),
                ("ZTV_SERVER__HTTP2_MAX_CONCURRENT_STREAMS", "4"),
            ]),
        })
        .unwrap();
        assert_eq!(s.server.max_connections, 8);
        assert_eq!(s.server.max_header_bytes, 8192);
        assert_eq!(s.server.max_headers, 20);
        assert_eq!(s.server.header_read_timeout, Duration::from_secs(1));
        assert_eq!(s.server.http2_max_concurrent_streams, 4);

        for (text, problem) in [
            (
                "max_connections = 0",
                "server.max_connections: must be between 1 and 1000000",
            ),
            (
                "max_header_bytes = 4096",
                "server.max_header_bytes: must be between 8192 and 1048576",
            ),
            (
                "max_headers = 5000",
                "server.max_headers: must be between 16 and 1000",
            ),
            (
                "header_read_timeout_seconds = 0",
                "server.header_read_timeout_seconds: must be between 1 and 300",
            ),
            (
                "http2_max_concurrent_streams = 0",
                "server.http2_max_concurrent_streams: must be between 1 and 1000",
            ),
            ("max_connections = -3", "server.max_connections:"),
        ] {
            let err = Settings::from_toml(&format!("[server]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(problem), "{text}: {err}");
        }
    }

    #[test]
    fn secret_files_are_remembered_for_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let s = Settings::from_toml(&format!(
            "[accounts.a.video_sdk]\nkey = \"k\"\nsecret_file = \"{}\"\n",
            path.display()
        ))
        .unwrap();
        assert_eq!(s.secret_files, vec![path]);
        let mut other = s.accounts["a"].clone();
        assert!(other.same_as(&s.accounts["a"]));
        other.video_sdk.as_mut().unwrap().secret = SecretString::from("changed").into();
        assert!(!other.same_as(&s.accounts["a"]));
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = Settings::from_toml("[server]\nbnd = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bnd"), "{err}");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let text = format!(
            "[accounts.a.video_sdk]\nkey = \"k\"\nsecret_file = \"{}\"\n",
            path.display()
        );
        let s = Settings::from_toml(&text).unwrap();
        let secret = &s.accounts["a"].video_sdk.as_ref().unwrap().secret;
        assert_eq!(secret.expose_secret(), "from-file");
        assert!(!format!("{:?}", s).contains("from-file"));
    }
}
