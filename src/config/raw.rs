//! The configuration as read, before validation: every key optional, unknown keys refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub(super) log_format: Option<String>,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) database: RawDatabase,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) signing: RawSigning,
    #[serde(default)]
    pub(super) zoom: RawZoom,
    #[serde(default)]
    pub(super) accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    pub(super) end_users: RawEndUsers,
    #[serde(default)]
    pub(super) cors: RawCors,
    #[serde(default)]
    pub(super) rate_limit: RawRateLimit,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) grants: RawGrants,
    #[serde(default)]
    pub(super) webhooks: RawWebhooks,
    #[serde(default)]
    pub(super) audit: RawAudit,
    #[serde(default)]
    pub(super) telemetry: RawTelemetry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub(super) otlp_endpoint: Option<String>,
    pub(super) service_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) retention_days: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndUsers {
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) jwks_url: Option<String>,
    pub(super) user_claim: Option<String>,
    pub(super) require_email_verified: Option<bool>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) account: Option<String>,
    pub(super) leeway_seconds: Option<u64>,
    pub(super) jwks_min_refetch_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    pub(super) allowed_origins: Option<Vec<String>>,
    pub(super) max_age_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) requests_per_second: Option<u64>,
    pub(super) burst: Option<u64>,
    pub(super) upstream_per_minute: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) redis_url: Option<SecretString>,
    pub(super) encryption_key: Option<SecretString>,
    pub(super) key_prefix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) bind: Option<String>,
    pub(super) request_timeout_seconds: Option<u64>,
    pub(super) shutdown_grace_seconds: Option<u64>,
    pub(super) metrics_bind: Option<String>,
    pub(super) secret_watch_seconds: Option<u64>,
    pub(super) max_connections: Option<u64>,
    pub(super) max_header_bytes: Option<u64>,
    pub(super) max_headers: Option<u64>,
    pub(super) header_read_timeout_seconds: Option<u64>,
    pub(super) http2_max_concurrent_streams: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) url: Option<SecretString>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) key_refresh_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigning {
    pub(super) iat_backdate_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZoom {
    pub(super) oauth_url: Option<String>,
    pub(super) api_url: Option<String>,
    pub(super) connect_timeout_ms: Option<u64>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) call_deadline_ms: Option<u64>,
    pub(super) retries: Option<u64>,
    pub(super) refresh_margin_seconds: Option<u64>,
    pub(super) breaker_failures: Option<u64>,
    pub(super) breaker_cooldown_seconds: Option<u64>,
    pub(super) user_token_cache_seconds: Option<u64>,
    pub(super) user_token_cache_entries: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) oauth_url: Option<String>,
    pub(super) api_url: Option<String>,
    pub(super) s2s: Option<RawS2s>,
    pub(super) meeting_sdk: Option<RawMeetingSdk>,
    pub(super) video_sdk: Option<RawVideoSdk>,
    pub(super) user_oauth: Option<RawUserOAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUserOAuth {
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) redirect_uri: Option<String>,
    pub(super) done_url: Option<String>,
    pub(super) webhook_secret_token: Option<SecretString>,
    pub(super) webhook_secret_token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrants {
    pub(super) encryption_key: Option<SecretString>,
    pub(super) keep_warm_days: Option<u64>,
    pub(super) keep_warm_check_seconds: Option<u64>,
    pub(super) notify_url: Option<String>,
    pub(super) notify_secret_token: Option<SecretString>,
    pub(super) notify_secret_token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhooks {
    pub(super) secret_token: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawS2s {
    pub(super) account_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) client_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeetingSdk {
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) client_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVideoSdk {
    pub(super) key: Option<String>,
    pub(super) secret: Option<SecretString>,
    pub(super) secret_file: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Validation
