//! Validation: every key checked once, every problem reported as `key: problem`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::raw::*;
use super::*;
use crate::scope::Scope;

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<String>, pub(super) Vec<PathBuf>);

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
    /// A secret that may be left out: `None` when neither `key` nor `key_file` is set.
    fn optional_secret(
        &mut self,
        key: &str,
        inline: Option<SecretString>,
        file: Option<PathBuf>,
    ) -> Option<SecretString> {
        let inline = inline.filter(|s| !s.expose_secret().is_empty());
        let file = file.filter(|p| !p.as_os_str().is_empty());
        (inline.is_some() || file.is_some()).then(|| self.secret(key, inline, file))
    }

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

pub(super) fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

pub(super) fn validate(mut raw: RawSettings, p: &mut Problems) -> Settings {
    let log_format = match raw.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => {
            p.add("log_format", "must be \"text\" or \"json\"");
            LogFormat::Text
        }
    };

    let server = validate_server(p, raw.server);

    let database = validate_database(p, raw.database);

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

    let zoom = validate_zoom(p, raw.zoom);

    let end_users = validate_end_users(p, raw.end_users, &raw.accounts);
    let cors = validate_cors(p, raw.cors);
    let rate_limit = validate_rate_limit(p, raw.rate_limit);
    let cache = validate_cache(p, raw.cache);
    let grants_key = raw
        .grants
        .encryption_key
        .take()
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
    let grant_health = validate_grant_health(p, &mut raw.grants);
    let telemetry = validate_telemetry(p, raw.telemetry);
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
        server,
        database,
        key_refresh,
        iat_backdate_seconds,
        zoom,
        accounts,
        end_users,
        cors,
        rate_limit,
        cache,
        grants_key,
        grant_health,
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
        telemetry,
        secret_files: Vec::new(),
    }
}

/// Spans carry no secret, so plain http to a collector on the private network is allowed.
fn validate_telemetry(p: &mut Problems, raw: RawTelemetry) -> TelemetrySettings {
    let otlp_endpoint =
        non_empty(raw.otlp_endpoint).map(|url| http_url(p, "telemetry.otlp_endpoint", Some(url)));
    let service_name = non_empty(raw.service_name).unwrap_or_else(|| "ztv".into());
    if service_name.len() > 100 || service_name.chars().any(char::is_control) {
        p.add(
            "telemetry.service_name",
            "must be at most 100 characters, none of them control characters",
        );
    }
    TelemetrySettings {
        otlp_endpoint,
        service_name,
    }
}

fn validate_grant_health(p: &mut Problems, raw: &mut RawGrants) -> GrantHealth {
    let days = number_in(p, "grants.keep_warm_days", raw.keep_warm_days, 0..=365, 30);
    let notify_url =
        non_empty(raw.notify_url.take()).map(|url| fetched_url(p, "grants.notify_url", Some(url)));
    let notify_secret = p.optional_secret(
        "grants.notify_secret_token",
        raw.notify_secret_token.take(),
        raw.notify_secret_token_file.take(),
    );
    if notify_url.is_some() && notify_secret.is_none() {
        p.add(
            "grants.notify_secret_token",
            "required with grants.notify_url (it signs the announcements)",
        );
    }
    GrantHealth {
        keep_warm: Duration::from_secs(86_400 * days),
        check_every: seconds_in(
            p,
            "grants.keep_warm_check_seconds",
            raw.keep_warm_check_seconds,
            1..=3600,
            60,
        ),
        notify_url,
        notify_secret,
    }
}

fn validate_server(p: &mut Problems, raw: RawServer) -> ServerSettings {
    let bind_text = p.required("server.bind", raw.bind);
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
        raw.request_timeout_seconds,
        1..=600,
        30,
    );
    let shutdown_grace = seconds_in(
        p,
        "server.shutdown_grace_seconds",
        raw.shutdown_grace_seconds,
        0..=600,
        30,
    );
    let metrics_bind = match raw.metrics_bind.as_deref().map(str::trim) {
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
        raw.secret_watch_seconds,
        0..=3600,
        5,
    ) {
        Duration::ZERO => None,
        every => Some(every),
    };
    let max_connections = number_in(
        p,
        "server.max_connections",
        raw.max_connections,
        1..=1_000_000,
        512,
    ) as usize;
    // hyper's HTTP/1.1 read buffer, which bounds the head, cannot be smaller than 8 KiB.
    let max_header_bytes = number_in(
        p,
        "server.max_header_bytes",
        raw.max_header_bytes,
        8192..=1_048_576,
        16_384,
    ) as usize;
    let max_headers = number_in(p, "server.max_headers", raw.max_headers, 16..=1000, 100) as usize;
    let header_read_timeout = seconds_in(
        p,
        "server.header_read_timeout_seconds",
        raw.header_read_timeout_seconds,
        1..=300,
        10,
    );
    let http2_max_concurrent_streams = number_in(
        p,
        "server.http2_max_concurrent_streams",
        raw.http2_max_concurrent_streams,
        1..=1000,
        100,
    ) as u32;
    ServerSettings {
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
    }
}

fn validate_database(p: &mut Problems, raw: RawDatabase) -> DatabaseSettings {
    let url = raw.url.filter(|u| !u.expose_secret().trim().is_empty());
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
    DatabaseSettings { url }
}

fn validate_zoom(p: &mut Problems, z: RawZoom) -> ZoomSettings {
    ZoomSettings {
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
    }
}

fn validate_rate_limit(p: &mut Problems, raw: RawRateLimit) -> RateLimitSettings {
    RateLimitSettings {
        requests_per_second: number_in(
            p,
            "rate_limit.requests_per_second",
            raw.requests_per_second,
            1..=100_000,
            50,
        ) as u32,
        burst: number_in(p, "rate_limit.burst", raw.burst, 1..=100_000, 100) as u32,
        upstream_per_minute: number_in(
            p,
            "rate_limit.upstream_per_minute",
            raw.upstream_per_minute,
            1..=100_000,
            60,
        ) as u32,
    }
}

pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub(super) fn validate_end_users(
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
            Ok(Scope::S2sToken | Scope::GrantsAdmin | Scope::DiagnosticsRead) => p.add(
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

pub(super) fn validate_cors(p: &mut Problems, raw: RawCors) -> CorsSettings {
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

pub(super) fn validate_cache(p: &mut Problems, raw: RawCache) -> CacheSettings {
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

/// A whole number within `range` (the default when absent).
pub(super) fn number_in(
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

pub(super) fn seconds_in(
    p: &mut Problems,
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Duration {
    Duration::from_secs(number_in(p, key, value, range, default))
}

pub(super) fn millis_in(
    p: &mut Problems,
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Duration {
    Duration::from_millis(number_in(p, key, value, range, default))
}

/// Why a URL ztv fetches from was refused.
pub(super) const HTTPS_OR_LOOPBACK: &str =
    "must be an https URL (http only for a loopback address)";

/// A URL ztv fetches from: [`http_url`], and https unless it is a loopback address.
pub(super) fn fetched_url(p: &mut Problems, key: &str, value: Option<String>) -> Url {
    let url = http_url(p, key, value);
    if !https_or_loopback(&url) {
        p.add(key, HTTPS_OR_LOOPBACK);
    }
    url
}

pub(super) fn http_url(p: &mut Problems, key: &str, value: Option<String>) -> Url {
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

pub(super) fn validate_account(p: &mut Problems, name: &str, raw: RawAccount) -> Account {
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
            webhook_secret: p.optional_secret(
                &format!("{key}.webhook_secret_token"),
                s.webhook_secret_token,
                s.webhook_secret_token_file,
            ),
        }
    });
    if s2s.is_none() && meeting_sdk.is_none() && video_sdk.is_none() && user_oauth.is_none() {
        p.add(
            &base,
            "has no credentials (s2s, meeting_sdk, video_sdk or user_oauth)",
        );
    }
    let url = |p: &mut Problems, key: &str, value: Option<String>| {
        non_empty(value).map(|u| fetched_url(p, &format!("{base}.{key}"), Some(u)))
    };
    Account {
        name: name.to_string(),
        oauth_url: url(p, "oauth_url", raw.oauth_url),
        api_url: url(p, "api_url", raw.api_url),
        s2s,
        meeting_sdk,
        video_sdk,
        user_oauth,
    }
}
