//! The Zoom client: the S2S token endpoint and the user-token API, with bounded timeouts,
//! jittered retries on connect errors and 5xx, `Retry-After` honoured on 429, and a circuit
//! breaker per account and endpoint so that an outage costs milliseconds, not timeouts.
//!
//! Nothing here logs or returns a secret, a token or an `Authorization` header: errors carry
//! Zoom's own code and message only.
//!
//! May import: config, clock, telemetry (its spans for traces). Its errors are [`ZoomError`]; the HTTP layer decides how each is
//! answered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::clock;
use arc_swap::ArcSwap;
use url::Url;

use crate::config::{Account, S2sCredentials, ZoomSettings};
use crate::telemetry::traces;

mod error;

pub use error::ZoomError;

/// An S2S access token as Zoom issued it.
pub struct S2sToken {
    pub access_token: SecretString,
    pub token_type: String,
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The same moment on the monotonic clock, for cache decisions.
    pub expires: Instant,
    /// `expires_in` as Zoom gave it.
    pub lifetime: Duration,
    /// The API host Zoom named for the account (`api_url`, e.g. `https://api-eu.zoom.us` on
    /// a regional cluster), when it named a valid http(s) URL. Told to callers, never used to
    /// send a token.
    pub api_url: Option<Url>,
}

/// A user's own tokens from the authorization-code or refresh-token grant.
pub struct UserOAuthTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_in: u64,
    pub scope: String,
}

/// Whose token fetches a ZAK or OBF token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acting {
    /// The account's S2S token, for the named user.
    Account,
    /// The user's own token (`/users/me/…`).
    User,
    /// An admin's install of the app for the whole Zoom account, for the named user.
    AccountGrant,
}

/// Which per-user token to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserTokenKind {
    /// A ZAK; `ttl`: its life in seconds (Zoom's `ttl`), else Zoom's default.
    Zak { ttl: Option<u32> },
    /// On-Behalf-Of token for one meeting.
    OnBehalf {
        meeting_number: String,
        ttl: Option<u32>,
    },
}

impl UserTokenKind {
    /// The life asked of Zoom, in seconds, if any.
    pub fn ttl(&self) -> Option<u32> {
        match self {
            UserTokenKind::Zak { ttl } | UserTokenKind::OnBehalf { ttl, .. } => *ttl,
        }
    }
}

/// A ZAK or OBF token.
#[derive(Clone)]
pub struct UserToken {
    pub token: SecretString,
    /// Unix seconds.
    pub expires_at: i64,
    /// Whose token fetched it.
    pub source: Acting,
}

impl Acting {
    /// As responses say it: `"source": "user_grant" | "account"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Acting::Account => "account",
            Acting::User => "user_grant",
            Acting::AccountGrant => "account_grant",
        }
    }
}

/// What is traded at the token endpoint for a user's tokens.
pub enum UserGrantRequest<'a> {
    Code(&'a str),
    Refresh(&'a SecretString),
}

/// The two kinds of Zoom endpoint, each with its own breaker per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    OAuth,
    Api,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::OAuth => "oauth_token",
            Endpoint::Api => "api",
        }
    }
}

/// Sets the breaker gauge of one (account, endpoint): 1 while calls are answered at once.
fn breaker_gauge(account: &str, endpoint: Endpoint, open: bool) {
    metrics::gauge!("ztv_upstream_breaker_open", "account" => account.to_string(), "endpoint" => endpoint.label())
        .set(if open { 1.0 } else { 0.0 });
}

/// Circuit breaker and 429 back-off of one (account, endpoint).
#[derive(Default)]
struct Guard {
    consecutive_failures: u32,
    /// Calls are answered at once until then.
    open_until: Option<Instant>,
    /// Half-open: the one call let through after the cooldown is under way.
    probing: bool,
}

/// Most of an answer's body that is kept, in bytes.
const MAX_BODY: usize = 64 * 1024;

/// Where one account's calls go.
struct Urls {
    oauth: Url,
    api: Url,
}

pub struct ZoomClient {
    http: reqwest::Client,
    settings: ZoomSettings,
    /// Accounts with URLs of their own (a regional cluster); replaced by a reload.
    urls: ArcSwap<HashMap<String, Arc<Urls>>>,
    guards: Mutex<HashMap<(String, Endpoint), Guard>>,
}

fn urls_of(
    zoom: &ZoomSettings,
    accounts: &BTreeMap<String, Account>,
) -> HashMap<String, Arc<Urls>> {
    accounts
        .iter()
        .filter(|(_, a)| a.oauth_url.is_some() || a.api_url.is_some())
        .map(|(name, a)| {
            let urls = Urls {
                oauth: a.oauth_url(zoom).clone(),
                api: a.api_url(zoom).clone(),
            };
            (name.clone(), Arc::new(urls))
        })
        .collect()
}

impl ZoomClient {
    pub fn new(
        settings: &ZoomSettings,
        accounts: &BTreeMap<String, Account>,
    ) -> Result<Self, ZoomError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ztv/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ZoomError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            settings: settings.clone(),
            urls: ArcSwap::from_pointee(urls_of(settings, accounts)),
            guards: Mutex::new(HashMap::new()),
        })
    }

    /// Puts reloaded accounts' URLs in force.
    pub fn replace_accounts(&self, accounts: &BTreeMap<String, Account>) {
        self.urls.store(Arc::new(urls_of(&self.settings, accounts)));
    }

    /// `path` under the account's OAuth host.
    fn oauth_endpoint(&self, account: &str, path: &str) -> Url {
        match self.urls.load().get(account) {
            Some(urls) => join(&urls.oauth, path),
            None => join(&self.settings.oauth_url, path),
        }
    }

    /// `path` under the account's API base.
    fn api_endpoint(&self, account: &str, path: &str) -> Url {
        match self.urls.load().get(account) {
            Some(urls) => join(&urls.api, path),
            None => join(&self.settings.api_url, path),
        }
    }

    /// Trades the account's S2S credentials for an access token.
    pub async fn fetch_s2s_token(
        &self,
        account: &str,
        credentials: &S2sCredentials,
    ) -> Result<S2sToken, ZoomError> {
        let url = self.oauth_endpoint(account, "oauth/token");
        let answer = self
            .call(account, Endpoint::OAuth, "POST /oauth/token", || {
                self.http
                    .post(url.clone())
                    .query(&[
                        ("grant_type", "account_credentials"),
                        ("account_id", credentials.account_id.as_str()),
                    ])
                    .basic_auth(
                        &credentials.client_id,
                        Some(credentials.client_secret.expose_secret()),
                    )
            })
            .await?;
        if answer.status.is_success() {
            return parse_s2s_token(&answer.body);
        }
        let (code, message) = oauth_error(&answer.body);
        if code == "invalid_client" || answer.status == StatusCode::UNAUTHORIZED {
            return Err(ZoomError::BadCredentials {
                account: account.to_string(),
                detail: format!("{code}: {message}"),
            });
        }
        Err(ZoomError::Rejected {
            status: answer.status.as_u16(),
            code,
            message: format!("account `{account}`: {message}"),
        })
    }

    /// Trades an authorization code, or a refresh token, for a user's own tokens. Parameters
    /// go in a form body, so no token is ever part of a URL.
    pub async fn user_oauth_grant(
        &self,
        account: &str,
        app: &crate::config::UserOAuthApp,
        grant: UserGrantRequest<'_>,
    ) -> Result<UserOAuthTokens, ZoomError> {
        let form: Vec<(&str, &str)> = match &grant {
            UserGrantRequest::Code(code) => vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", app.redirect_uri.as_str()),
            ],
            UserGrantRequest::Refresh(token) => vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.expose_secret()),
            ],
        };
        let answer = self
            .post_as_app(account, app, "oauth/token", "POST /oauth/token", &form)
            .await?;
        if answer.status.is_success() {
            #[derive(Deserialize)]
            struct Answer {
                access_token: String,
                refresh_token: String,
                expires_in: u64,
                scope: Option<String>,
            }
            let parsed: Answer = serde_json::from_slice(&answer.body).map_err(|_| {
                ZoomError::Malformed("the token endpoint's answer lacks the user's tokens".into())
            })?;
            return Ok(UserOAuthTokens {
                access_token: SecretString::from(parsed.access_token),
                refresh_token: SecretString::from(parsed.refresh_token),
                expires_in: parsed.expires_in.clamp(1, 86_400),
                scope: parsed.scope.unwrap_or_default(),
            });
        }
        let (code, message) = oauth_error(&answer.body);
        match code.as_str() {
            "invalid_grant" => Err(ZoomError::InvalidGrant(format!("{code}: {message}"))),
            "invalid_client" => Err(ZoomError::BadCredentials {
                account: account.to_string(),
                detail: format!("user OAuth app: {code}: {message}"),
            }),
            _ => Err(ZoomError::Rejected {
                status: answer.status.as_u16(),
                code,
                message,
            }),
        }
    }

    /// `POST {oauth_url}/oauth/revoke`: revokes a user's access token, which ends their
    /// authorisation of the app at Zoom (Zoom then sends `app_deauthorized`). The token goes in
    /// a form body, never in the URL.
    pub async fn revoke_user_token(
        &self,
        account: &str,
        app: &crate::config::UserOAuthApp,
        access_token: &SecretString,
    ) -> Result<(), ZoomError> {
        let form = [("token", access_token.expose_secret())];
        let answer = self
            .post_as_app(account, app, "oauth/revoke", "POST /oauth/revoke", &form)
            .await?;
        if answer.status.is_success() {
            return Ok(());
        }
        let (code, message) = oauth_error(&answer.body);
        Err(ZoomError::Rejected {
            status: answer.status.as_u16(),
            code,
            message,
        })
    }

    /// A form POST to `path` under the account's OAuth host, as the user OAuth app (HTTP Basic);
    /// `template` names the call in traces.
    async fn post_as_app(
        &self,
        account: &str,
        app: &crate::config::UserOAuthApp,
        path: &str,
        template: &'static str,
        form: &[(&str, &str)],
    ) -> Result<Sent, ZoomError> {
        let url = self.oauth_endpoint(account, path);
        self.call(account, Endpoint::OAuth, template, || {
            self.http
                .post(url.clone())
                .basic_auth(&app.client_id, Some(app.client_secret.expose_secret()))
                .form(form)
        })
        .await
    }

    /// `GET {api_url}/users/me` with a user's own token: their Zoom ID, email and account ID
    /// (as Zoom wrote them; the caller validates).
    pub async fn users_me(
        &self,
        account: &str,
        access_token: &SecretString,
    ) -> Result<(String, String, Option<String>), ZoomError> {
        let url = self.api_endpoint(account, "users/me");
        let body = self
            .api_get(account, "GET /v2/users/me", url, access_token)
            .await?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| ZoomError::Malformed("/users/me did not answer JSON".into()))?;
        let id = value.get("id").and_then(Value::as_str);
        let email = value.get("email").and_then(Value::as_str);
        let account_id = value.get("account_id").and_then(Value::as_str);
        match (id, email) {
            (Some(id), Some(email)) => Ok((
                id.to_string(),
                email.to_string(),
                account_id.map(str::to_string),
            )),
            _ => Err(ZoomError::Malformed("/users/me lacks id or email".into())),
        }
    }

    /// `GET` on the API with a bearer token: the body of a 2xx answer, or Zoom's refusal
    /// (401 → the token was refused; 404 code 1001 → no such user). `template` names the
    /// call in traces.
    async fn api_get(
        &self,
        account: &str,
        template: &'static str,
        url: url::Url,
        access_token: &SecretString,
    ) -> Result<Vec<u8>, ZoomError> {
        let answer = self
            .call(account, Endpoint::Api, template, || {
                self.http
                    .get(url.clone())
                    .bearer_auth(access_token.expose_secret())
            })
            .await?;
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        let (code, message) = api_error(&answer.body);
        Err(match answer.status {
            StatusCode::UNAUTHORIZED => ZoomError::TokenRejected(format!("code {code}: {message}")),
            StatusCode::NOT_FOUND if code == "1001" => ZoomError::UserNotFound(message),
            status => ZoomError::Rejected {
                status: status.as_u16(),
                code,
                message,
            },
        })
    }

    /// A ZAK or OBF token: with the account's S2S token for `user`
    /// (`/users/{user}/token?type=…`), or with the user's own token (`/users/me/zak`,
    /// `/users/me/token?type=onbehalf`).
    pub async fn user_token(
        &self,
        account: &str,
        access_token: &SecretString,
        user: &str,
        kind: &UserTokenKind,
    ) -> Result<UserToken, ZoomError> {
        self.user_token_as(account, access_token, user, kind, Acting::Account)
            .await
    }

    pub async fn user_token_as(
        &self,
        account: &str,
        access_token: &SecretString,
        user: &str,
        kind: &UserTokenKind,
        acting: Acting,
    ) -> Result<UserToken, ZoomError> {
        let mut url = self.api_endpoint(account, "users");
        let template = {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| ZoomError::Internal("zoom.api_url cannot take a path".into()))?;
            match (acting, kind) {
                (Acting::User, UserTokenKind::Zak { .. }) => {
                    path.push("me").push("zak");
                    "GET /v2/users/me/zak"
                }
                (Acting::User, _) => {
                    path.push("me").push("token");
                    "GET /v2/users/me/token"
                }
                (Acting::Account | Acting::AccountGrant, _) => {
                    path.push(user).push("token");
                    "GET /v2/users/{userId}/token"
                }
            }
        };
        match kind {
            UserTokenKind::Zak { .. } if acting == Acting::User => {}
            UserTokenKind::Zak { .. } => {
                url.query_pairs_mut().append_pair("type", "zak");
            }
            UserTokenKind::OnBehalf { meeting_number, .. } => {
                url.query_pairs_mut()
                    .append_pair("type", "onbehalf")
                    .append_pair("meeting_id", meeting_number);
            }
        }
        if let Some(ttl) = kind.ttl() {
            url.query_pairs_mut().append_pair("ttl", &ttl.to_string());
        }
        let body = self.api_get(account, template, url, access_token).await?;
        parse_user_token(&body, kind, acting)
    }

    /// One logical call, in one span for traces named by `template` (`GET
    /// /v2/users/{userId}/token`: the endpoint, never the user), with Zoom's last status and
    /// the retries it took.
    async fn call(
        &self,
        account: &str,
        endpoint: Endpoint,
        template: &'static str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Sent, ZoomError> {
        let span = tracing::debug_span!(
            target: traces::TARGET,
            "zoom",
            otel.name = template,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            url.template = template,
            ztv.account = account,
            http.response.status_code = tracing::field::Empty,
            ztv.retries = tracing::field::Empty,
        );
        let mut retries = 0;
        let outcome = self
            .attempts(account, endpoint, &span, &mut retries, request)
            .await;
        if !span.is_disabled() {
            // As i64: the OpenTelemetry layer would write a u64 as text.
            span.record("ztv.retries", i64::from(retries));
            let answered = outcome
                .as_ref()
                .is_ok_and(|answer| !answer.status.is_server_error());
            if !answered {
                span.record("otel.status_code", "error");
            }
        }
        outcome
    }

    /// The guard, then attempts with retries within the call deadline; `retries` counts them.
    async fn attempts(
        &self,
        account: &str,
        endpoint: Endpoint,
        span: &tracing::Span,
        retries: &mut u32,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Sent, ZoomError> {
        let deadline = Instant::now() + self.settings.call_deadline;
        loop {
            self.admit(account, endpoint)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(unavailable("no answer within the call deadline", None));
            }
            let timeout = remaining.min(self.settings.request_timeout);
            let started = Instant::now();
            let outcome = send(traces::propagate(request().timeout(timeout), span)).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            if let Ok(answer) = &outcome {
                span.record(
                    "http.response.status_code",
                    i64::from(answer.status.as_u16()),
                );
            }
            let result = match &outcome {
                Ok(sent) => sent.status.as_u16().to_string(),
                Err(SendError::Timeout) => "timeout".into(),
                Err(SendError::Connect(_)) => "connect_error".into(),
            };
            metrics::counter!("ztv_upstream_requests_total", "endpoint" => endpoint.label(), "outcome" => result)
                .increment(1);
            metrics::histogram!("ztv_upstream_request_duration_seconds", "endpoint" => endpoint.label())
                .record(started.elapsed().as_secs_f64());
            let retryable = match outcome {
                Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                    let wait = answer.retry_after.unwrap_or(1);
                    self.throttle(account, endpoint, Duration::from_secs(wait));
                    tracing::warn!(account, ?endpoint, retry_after = wait, "Zoom is throttling");
                    return Err(unavailable("Zoom is rate limiting", Some(wait)));
                }
                Ok(answer) if answer.status.is_server_error() => {
                    tracing::warn!(
                        account,
                        ?endpoint,
                        status = answer.status.as_u16(),
                        elapsed_ms,
                        "Zoom answered a server error"
                    );
                    self.failed(account, endpoint);
                    format!("Zoom answered {}", answer.status.as_u16())
                }
                Ok(answer) => {
                    self.succeeded(account, endpoint);
                    tracing::debug!(
                        account,
                        ?endpoint,
                        status = answer.status.as_u16(),
                        elapsed_ms,
                        "Zoom answered"
                    );
                    return Ok(answer);
                }
                Err(SendError::Timeout) => {
                    tracing::warn!(
                        account,
                        ?endpoint,
                        elapsed_ms,
                        "Zoom did not answer in time"
                    );
                    self.failed(account, endpoint);
                    return Err(unavailable("Zoom did not answer in time", None));
                }
                Err(SendError::Connect(detail)) => {
                    tracing::warn!(account, ?endpoint, error = %detail, "cannot reach Zoom");
                    self.failed(account, endpoint);
                    "cannot reach Zoom".to_string()
                }
            };
            if *retries >= self.settings.retries {
                return Err(unavailable(&retryable, None));
            }
            let pause = backoff(*retries);
            if Instant::now() + pause >= deadline {
                return Err(unavailable(&retryable, None));
            }
            tokio::time::sleep(pause).await;
            *retries += 1;
        }
    }

    /// Lets a call through, or answers at once while the breaker is open.
    fn admit(&self, account: &str, endpoint: Endpoint) -> Result<(), ZoomError> {
        let mut guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        let guard = guards.entry((account.to_string(), endpoint)).or_default();
        let now = Instant::now();
        match guard.open_until {
            Some(until) if until > now => Err(unavailable(
                "circuit breaker open after repeated failures",
                Some(ceil_secs(until - now)),
            )),
            Some(_) if guard.probing => Err(unavailable(
                "circuit breaker half-open; a trial call is under way",
                Some(1),
            )),
            Some(_) => {
                guard.probing = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn succeeded(&self, account: &str, endpoint: Endpoint) {
        let mut guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(guard) = guards.get_mut(&(account.to_string(), endpoint)) {
            if guard.open_until.is_some() {
                tracing::info!(
                    account,
                    ?endpoint,
                    "Zoom answers again; circuit breaker closed"
                );
                breaker_gauge(account, endpoint, false);
            }
            *guard = Guard::default();
        }
    }

    fn failed(&self, account: &str, endpoint: Endpoint) {
        let mut guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        let guard = guards.entry((account.to_string(), endpoint)).or_default();
        guard.consecutive_failures += 1;
        if guard.probing || guard.consecutive_failures >= self.settings.breaker_failures {
            if guard.open_until.is_none() || guard.probing {
                tracing::warn!(
                    account,
                    ?endpoint,
                    cooldown_s = self.settings.breaker_cooldown.as_secs(),
                    "circuit breaker open"
                );
            }
            guard.open_until = Some(Instant::now() + self.settings.breaker_cooldown);
            guard.probing = false;
            breaker_gauge(account, endpoint, true);
        }
    }

    fn throttle(&self, account: &str, endpoint: Endpoint, wait: Duration) {
        let mut guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        let guard = guards.entry((account.to_string(), endpoint)).or_default();
        guard.open_until = Some(Instant::now() + wait);
        guard.probing = false;
    }

    /// Whether calls for this account are being answered at once (for readiness reports).
    pub fn breaker_open(&self, account: &str) -> bool {
        let guards = self.guards.lock().unwrap_or_else(|p| p.into_inner());
        [Endpoint::OAuth, Endpoint::Api].iter().any(|endpoint| {
            guards
                .get(&(account.to_string(), *endpoint))
                .and_then(|g| g.open_until)
                .is_some_and(|until| until > Instant::now())
        })
    }
}

fn unavailable(reason: &str, retry_after: Option<u64>) -> ZoomError {
    ZoomError::Unavailable {
        reason: reason.to_string(),
        retry_after,
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Full-jitter exponential backoff: up to 100 ms, 200 ms, 400 ms … capped at 1 s.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (100u64 << attempt.min(4)).min(1_000);
    Duration::from_millis(rand::thread_rng().gen_range(cap_ms / 4..=cap_ms))
}

/// `base` + `path`, keeping any path `base` already has (`…/v2` + `users`).
fn join(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// What one HTTP exchange with Zoom produced.
struct Sent {
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<u64>,
}

enum SendError {
    Timeout,
    /// Connect failures and other transport errors, worth a retry. Never includes the URL's
    /// query or any header.
    Connect(String),
}

async fn send(request: RequestBuilder) -> Result<Sent, SendError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = response.bytes().await.map_err(transport)?.to_vec();
    body.truncate(MAX_BODY);
    Ok(Sent {
        status,
        body,
        retry_after,
    })
}

fn transport(error: reqwest::Error) -> SendError {
    if error.is_timeout() {
        return SendError::Timeout;
    }
    // `without_url` keeps the account ID in the query out of the message.
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    SendError::Connect(detail)
}

/// `Retry-After` as seconds: a number, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<u64> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(seconds);
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(ceil_secs(at.duration_since(SystemTime::now()).unwrap_or_default()).max(1))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: Option<String>,
    expires_in: u64,
    scope: Option<String>,
    api_url: Option<String>,
}

fn parse_s2s_token(body: &[u8]) -> Result<S2sToken, ZoomError> {
    // The body holds a token: never echo it, not even in a parse error.
    let answer: TokenAnswer = serde_json::from_slice(body).map_err(|_| {
        ZoomError::Malformed("the token endpoint's answer lacks access_token or expires_in".into())
    })?;
    if answer.access_token.is_empty() || answer.expires_in == 0 {
        return Err(ZoomError::Malformed(
            "empty access token or zero expires_in".into(),
        ));
    }
    let lifetime = Duration::from_secs(answer.expires_in.min(86_400));
    Ok(S2sToken {
        access_token: SecretString::from(answer.access_token),
        token_type: answer.token_type.unwrap_or_else(|| "bearer".into()),
        scope: answer.scope.unwrap_or_default(),
        expires_at: clock::now() + lifetime.as_secs() as i64,
        expires: Instant::now() + lifetime,
        lifetime,
        api_url: answer.api_url.as_deref().and_then(zoom_api_url),
    })
}

/// Zoom's `api_url`: an http(s) URL with a host and nothing after it, or nothing.
pub fn zoom_api_url(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path().len() <= 1;
    bare.then_some(url)
}

/// Assumed life of a ZAK or OBF token whose own `exp` cannot be read, in seconds.
const ASSUMED_USER_TOKEN_LIFE: i64 = 300;

fn parse_user_token(
    body: &[u8],
    kind: &UserTokenKind,
    source: Acting,
) -> Result<UserToken, ZoomError> {
    #[derive(Deserialize)]
    struct TokenBody {
        token: String,
    }
    let answer: TokenBody = serde_json::from_slice(body)
        .map_err(|_| ZoomError::Malformed(format!("the {kind:?} answer lacks `token`")))?;
    if answer.token.is_empty() {
        return Err(ZoomError::Malformed("empty user token".into()));
    }
    let expires_at =
        jwt_exp(&answer.token).unwrap_or_else(|| clock::now() + ASSUMED_USER_TOKEN_LIFE);
    Ok(UserToken {
        token: SecretString::from(answer.token),
        expires_at,
        source,
    })
}

/// The `exp` claim of a JWT-shaped token, read without verifying it: Zoom's ZAK and OBF
/// tokens are JWTs, and their expiry is what callers need.
fn jwt_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

/// Zoom's token-endpoint error body: `{"reason": …, "error": …}`.
fn oauth_error(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = text_of(&value, "error").unwrap_or_else(|| "unknown".into());
    let message = text_of(&value, "reason").unwrap_or_else(|| "no reason given".into());
    (code, message)
}

/// Zoom's API error body: `{"code": 124, "message": …}`.
fn api_error(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = text_of(&value, "code").unwrap_or_else(|| "unknown".into());
    let message = text_of(&value, "message").unwrap_or_else(|| "no message given".into());
    (code, message)
}

fn text_of(value: &Value, field: &str) -> Option<String> {
    let text = match value.get(field)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(text.chars().filter(|c| !c.is_control()).take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("7"), Some(7));
        let later = SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        let secs = parse_retry_after(&date).unwrap();
        assert!((29..=31).contains(&secs), "{secs}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn join_keeps_the_base_path() {
        let base = url::Url::parse("https://api.zoom.us/v2").unwrap();
        assert_eq!(
            join(&base, "users").as_str(),
            "https://api.zoom.us/v2/users"
        );
        let base = url::Url::parse("https://zoom.us/").unwrap();
        assert_eq!(
            join(&base, "oauth/token").as_str(),
            "https://zoom.us/oauth/token"
        );
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 0..8 {
            let pause = backoff(attempt);
            assert!(pause <= Duration::from_secs(1));
        }
    }

    #[test]
    fn the_exp_of_a_jwt_shaped_token_is_read() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1800000000}"#);
        assert_eq!(jwt_exp(&format!("a.{payload}.c")), Some(1_800_000_000));
        assert_eq!(jwt_exp("opaque"), None);
    }
}
