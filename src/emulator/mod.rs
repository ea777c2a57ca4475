//! A built-in Zoom emulator over real HTTP: the S2S token endpoint, the user OAuth
//! (authorization-code) flow and the ZAK / OBF token API, with Zoom's status codes and error
//! bodies, plus a control API for tests (fault injection, call counting, revocation, signed
//! webhooks). `ztv dev` runs against it, so it ships in the library.
//!
//! It answers:
//!
//! * `POST /oauth/token?grant_type=account_credentials&account_id=…` (HTTP Basic client ID and
//!   secret of an S2S app; the parameters may also come as a form body, as Zoom accepts),
//! * `GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&state=…`: the browser
//!   step of a user-managed OAuth app. The consenting user ([`Emulator::set_consenting_user`])
//!   agrees at once: `302` to `{redirect_uri}?code=…&state=…` with a single-use code that lives
//!   ten minutes. An unknown client or a `redirect_uri` other than the app's is a 400 (no
//!   redirect); another `response_type` redirects with `error=unsupported_response_type`, and
//!   a consenting user who does not exist with `error=access_denied`,
//! * `POST /oauth/token` with `grant_type=authorization_code&code=…&redirect_uri=…` or
//!   `grant_type=refresh_token&refresh_token=…` (HTTP Basic client ID and secret of a
//!   user-managed OAuth app; query or form body): a user access token and a refresh token.
//!   Refresh tokens are **single-use**, as at Zoom: a refresh invalidates the one it used,
//!   so of many concurrent refreshes with one token exactly one succeeds,
//! * `POST /oauth/revoke` with `token=…` (HTTP Basic of a user-managed OAuth app): a live user
//!   access or refresh token of that app ends the user's whole grant, as when they remove the
//!   app; `{"status":"success"}`, or `400 invalid_grant` for a token it does not know,
//! * `GET /v2/users/{userId}/token?type=zak` and `?type=onbehalf&meeting_id=…` (Bearer access
//!   token; an S2S token reaches every user of its account, a user token only its own user,
//!   as `me` or by ID or email),
//! * `GET /v2/users/me/zak` (the ZAK of the token's user) and `GET /v2/users/{userId}` (the
//!   user's profile; `me` is the token's user, or the account's first user for an S2S token),
//! * `GET /_emulator/stats`, which is **not** a Zoom route: the call counts of
//!   [`Emulator::calls`] and [`Emulator::token_requests_for`] as
//!   `{"token":N,"zak":N,"obf":N,"tokenRequestsByAccount":{"ACCOUNT_ID":N,…},"refusedTokens":N}`
//!   (`refusedTokens`: API calls answered 401 because their Bearer token was unknown, expired
//!   or revoked, [`Emulator::refused_tokens`]), so that other processes (the benchmark, soak
//!   runs against `ztv emulator`) can read how often ztv reached "Zoom". It is neither counted
//!   nor subject to injected faults, and it shows no secret or token,
//!
//! and `404 {"code":404,"message":"Not found"}` for everything else. It logs nothing, so no
//! secret or token can leak through it.
//!
//! Imports nothing of ztv, and nothing of ztv's domain imports it: only `cli` (`ztv dev`,
//! `ztv emulator`) and tests do.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::IntoFuture;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `expires_in` of access tokens until [`Emulator::set_token_lifetime`] says otherwise; Zoom's
/// own value.
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 3599;
/// Life of a ZAK, in seconds (Zoom: two hours).
pub const ZAK_LIFETIME_SECONDS: i64 = 7200;
/// Life of an On-Behalf-Of token, in seconds (Zoom: two hours; single-use).
pub const OBF_LIFETIME_SECONDS: i64 = 7200;
/// The scopes every access token is issued with.
pub const TOKEN_SCOPE: &str = "user:read:token:admin user:read:zak:admin";
/// `expires_in` of user access tokens until [`Emulator::set_user_token_lifetime`] says
/// otherwise; Zoom's own value.
pub const DEFAULT_USER_TOKEN_LIFETIME_SECONDS: u64 = 3599;
/// Life of an authorization code, in seconds (Zoom: ten minutes).
pub const AUTHORIZATION_CODE_LIFETIME_SECONDS: u64 = 600;
/// Life of a refresh token, in seconds (Zoom: 90 days).
pub const REFRESH_TOKEN_LIFETIME_SECONDS: u64 = 90 * 24 * 3600;
/// The scopes every user access token is issued with.
pub const USER_TOKEN_SCOPE: &str = "user:read:zak user:read:token";

/// Largest token-request body read; Zoom's parameters are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Beyond this many stored access tokens, expired ones are dropped on the next issue, so a long
/// `ztv dev` session does not grow without bound.
const PRUNE_ABOVE: usize = 4096;
/// How long [`Emulator::shutdown`] lets in-flight requests finish before it stops the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The emulator's own route for its call counts (not Zoom's; see the module comment).
pub const STATS_PATH: &str = "/_emulator/stats";
const RATE_LIMIT_MESSAGE: &str =
    "You have reached the maximum per-second rate limit for this API. Try again later.";

/// The endpoints whose calls are counted and into which faults can be injected. `Zak` and `Obf`
/// are the two `type`s of `GET /v2/users/{userId}/token`; `Zak` also counts
/// `GET /v2/users/me/zak`.
///
/// `Token` is every `POST /oauth/token`, whatever its grant type; `Refresh` and `Code` count the
/// `refresh_token` and `authorization_code` grants among them a second time, by their
/// `grant_type` parameter alone. A fault injected on `Refresh` or `Code` applies to requests of
/// that grant only and is taken before any fault of `Token`, which applies to every grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    Zak,
    Obf,
    /// `POST /oauth/token` with `grant_type=refresh_token`.
    Refresh,
    /// `POST /oauth/token` with `grant_type=authorization_code`.
    Code,
    /// `GET /v2/users/{userId}`.
    User,
    /// `POST /oauth/revoke`.
    Revoke,
}

/// How many [`Endpoint`]s there are.
const ENDPOINTS: usize = 7;

impl Endpoint {
    fn index(self) -> usize {
        match self {
            Endpoint::Token => 0,
            Endpoint::Zak => 1,
            Endpoint::Obf => 2,
            Endpoint::Refresh => 3,
            Endpoint::Code => 4,
            Endpoint::User => 5,
            Endpoint::Revoke => 6,
        }
    }
}

/// What an injected fault does to a request instead of (or before) serving it.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status with a Zoom-shaped body: `{"code":…,"message":…}` from the API,
    /// `{"reason":…,"error":"server_error"}` from the token endpoint. A status that is not a
    /// valid final HTTP status (under 200 or over 999) is answered as 500.
    Status(u16),
    /// 429 with `Retry-After` and Zoom's rate-limit body.
    RateLimited { retry_after_seconds: u64 },
    /// Answer normally after this delay.
    Delay(Duration),
    /// Never answer: hold the request until the client gives up or the emulator shuts down.
    Hang,
}

/// An S2S OAuth app of one Zoom account. Its `Debug` hides the secret.
#[derive(Clone)]
pub struct EmulatorAccount {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::str::FromStr for EmulatorAccount {
    type Err = String;

    /// `ACCOUNT_ID:CLIENT_ID:SECRET`, the form `ztv emulator --account` takes; the secret may
    /// itself hold colons. The error never repeats the input, which holds a secret.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(account_id), Some(client_id), Some(client_secret))
                if !account_id.is_empty() && !client_id.is_empty() && !client_secret.is_empty() =>
            {
                Ok(EmulatorAccount {
                    account_id: account_id.to_string(),
                    client_id: client_id.to_string(),
                    client_secret: client_secret.to_string(),
                })
            }
            _ => Err("expected ACCOUNT_ID:CLIENT_ID:SECRET, none of them empty".to_string()),
        }
    }
}

/// A user as `ztv emulator --user` names one: `ID:EMAIL` (a user of the default account,
/// `None`) or `ACCOUNT_ID:ID:EMAIL`, as `(account ID, user ID, email)`; `None` when malformed.
pub fn parse_user_spec(spec: &str) -> Option<(Option<&str>, &str, &str)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (account_id, user_id, email) = match parts.as_slice() {
        [user_id, email] => (None, *user_id, *email),
        [account_id, user_id, email] if !account_id.is_empty() => {
            (Some(*account_id), *user_id, *email)
        }
        _ => return None,
    };
    (!user_id.is_empty() && !email.is_empty()).then_some((account_id, user_id, email))
}

impl fmt::Debug for EmulatorAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorAccount")
            .field("account_id", &self.account_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// A user-managed OAuth app (the authorization-code flow), apart from the S2S apps: its users
/// authorise it themselves, whatever their account. Its `Debug` hides the secret.
#[derive(Clone)]
pub struct EmulatorOAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// The one redirect URI `/oauth/authorize` and the code exchange accept, compared exactly.
    pub redirect_uri: String,
}

impl fmt::Debug for EmulatorOAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorOAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// A Zoom user of one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatorUser {
    pub user_id: String,
    pub email: String,
}

/// A running emulator. Dropping it, or [`Emulator::shutdown`], stops the server: hung and
/// delayed requests are released and the port is closed.
pub struct Emulator {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    // Dropping the sender is itself the shutdown signal, so a dropped emulator stops too.
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Emulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr` (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let key = random_bytes::<32>();
        let shared = Arc::new(Shared {
            base_url: format!("http://{}", reachable(local_addr)),
            signing_key: EncodingKey::from_secret(&key),
            stopped: stopped.clone(),
            calls: Default::default(),
            refused_tokens: AtomicU64::new(0),
            trace_parents: Mutex::default(),
            state: Mutex::new(ZoomState {
                token_lifetime: DEFAULT_TOKEN_LIFETIME_SECONDS,
                user_token_lifetime: DEFAULT_USER_TOKEN_LIFETIME_SECONDS,
                ..ZoomState::default()
            }),
        });
        let router = Router::new()
            .route("/oauth/token", post(issue_access_token))
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/revoke", post(revoke_token))
            .route("/v2/users/{user_id}", get(describe_user))
            .route("/v2/users/me/zak", get(issue_own_zak))
            .route("/v2/users/{user_id}/token", get(issue_user_token))
            .route(STATS_PATH, get(stats))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&shared),
                keep_trace_parent,
            ))
            .with_state(Arc::clone(&shared));
        let mut signal = stopped;
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            // An error means the emulator was dropped: stop as well.
            let _ = signal.wait_for(|stopped| *stopped).await;
        });
        let task = tokio::spawn(serve.into_future());
        Ok(Emulator {
            shared,
            local_addr,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: what `zoom.oauth_url` points at.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/v2`: what `zoom.api_url` points at.
    pub fn api_url(&self) -> String {
        format!("{}/v2", self.shared.base_url)
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Registers an S2S app. Adding one with a client ID already known replaces it (as rotating
    /// the secret does); tokens issued before stay valid, as at Zoom.
    pub fn add_account(&self, account: EmulatorAccount) {
        let mut state = self.shared.lock();
        state.clients.insert(
            account.client_id,
            Client {
                account_id: account.account_id,
                secret: account.client_secret,
            },
        );
    }

    /// Adds a user to an account (the account need not have an app yet). The first user of an
    /// account is its `me`. Adding a user ID again replaces its email.
    pub fn add_user(&self, account_id: &str, user_id: &str, email: &str) {
        let mut state = self.shared.lock();
        if state.first_user.is_none() {
            state.first_user = Some(user_id.to_string());
        }
        let users = state.users.entry(account_id.to_string()).or_default();
        let user = EmulatorUser {
            user_id: user_id.to_string(),
            email: email.to_string(),
        };
        match users.iter_mut().find(|u| u.user_id == user_id) {
            Some(existing) => *existing = user,
            None => users.push(user),
        }
    }

    /// The users of an account, `me` first.
    pub fn users_of(&self, account_id: &str) -> Vec<EmulatorUser> {
        self.shared
            .lock()
            .users
            .get(account_id)
            .cloned()
            .unwrap_or_default()
    }

    /// `expires_in` of access tokens issued from now on.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.shared.lock().token_lifetime = seconds;
    }

    /// Every access token issued so far, S2S or user, answers 401 (code 124) from now on.
    /// Refresh tokens stay valid, so a user's next refresh works.
    pub fn revoke_all_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Every access token issued so far to `account_id` (S2S, or to one of its users) answers
    /// 401 (code 124) from now on.
    pub fn revoke_tokens_of(&self, account_id: &str) {
        self.shared
            .lock()
            .tokens
            .retain(|_, issued| issued.account_id != account_id);
    }

    /// Registers a user-managed OAuth app. Adding one with a client ID already known replaces it;
    /// codes and tokens issued before stay valid.
    pub fn add_oauth_app(&self, app: EmulatorOAuthApp) {
        let mut state = self.shared.lock();
        state.oauth_apps.insert(
            app.client_id,
            OAuthApp {
                secret: app.client_secret,
                redirect_uri: app.redirect_uri,
                admin_managed: false,
            },
        );
    }

    /// Makes the OAuth app `client_id` admin-managed (or user-managed again): the tokens of its
    /// grants then act for every user of the authorising user's account (by ID or email), as
    /// an admin's install does at Zoom; `me` stays the authorising user.
    pub fn set_admin_managed(&self, client_id: &str, admin_managed: bool) {
        if let Some(app) = self.shared.lock().oauth_apps.get_mut(client_id) {
            app.admin_managed = admin_managed;
        }
    }

    /// The user who consents at `/oauth/authorize` from now on, whatever the app (tests set it
    /// before the browser step): a user ID or email of any account (user IDs are taken to be
    /// unique across accounts). Until set, the first user ever added. A user who does not exist
    /// "declines": the redirect carries `error=access_denied`.
    pub fn set_consenting_user(&self, user_id: &str) {
        self.shared.lock().consenting_user = Some(user_id.to_string());
    }

    /// The `api_url` S2S token answers for `account_id` carry from now on (default: the
    /// emulator's own base URL), as Zoom names a regional cluster.
    pub fn report_api_url(&self, account_id: &str, api_url: &str) {
        self.shared
            .lock()
            .reported_api_urls
            .insert(account_id.to_string(), api_url.to_string());
    }

    /// `expires_in` of user access tokens issued from now on.
    pub fn set_user_token_lifetime(&self, seconds: u64) {
        self.shared.lock().user_token_lifetime = seconds;
    }

    /// The user removes the app `client_id`, as Zoom has done by the time it sends
    /// `app_deauthorized`: that user's unused codes, refresh tokens (then `invalid_grant`) and
    /// user access tokens (then 401, code 124) of that app stop working.
    pub fn deauthorize(&self, user_id: &str, client_id: &str) {
        self.shared.lock().deauthorize(user_id, client_id);
    }

    /// The body and headers of the `POST {ztv}/v1/webhooks/zoom` Zoom sends when `user_id`
    /// removes the app `client_id`: an `app_deauthorized` event (`event_ts` and
    /// `deauthorization_time` are `timestamp`, unix seconds, so tests can make stale ones;
    /// `account_id` is the user's, empty for an unknown user), signed with `secret_token` as
    /// Zoom signs: `x-zm-request-timestamp: {timestamp}` and
    /// `x-zm-signature: v0={hex HMAC-SHA256(secret_token, "v0:{timestamp}:{body}")}`, plus
    /// `content-type: application/json`. Nothing is sent and no token is revoked (see
    /// [`Emulator::deauthorize`]).
    pub fn deauthorization_webhook(
        &self,
        secret_token: &str,
        user_id: &str,
        client_id: &str,
        timestamp: i64,
    ) -> (String, Vec<(String, String)>) {
        let account_id = self.shared.lock().account_of(user_id).unwrap_or_default();
        let event_ts = timestamp.saturating_mul(1000);
        let body = json!({
            "event": "app_deauthorized",
            "event_ts": event_ts,
            "payload": {
                "account_id": account_id,
                "user_id": user_id,
                "signature": hex::encode(random_bytes::<32>()),
                "deauthorization_time": rfc3339_millis(event_ts),
                "client_id": client_id,
            },
        })
        .to_string();
        let signature = webhook_signature(secret_token, timestamp, &body);
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-zm-request-timestamp".to_string(), timestamp.to_string()),
            ("x-zm-signature".to_string(), signature),
        ];
        (body, headers)
    }

    /// Queues a fault for the next `times` requests of `endpoint` (`None`: every request until
    /// [`Emulator::clear_faults`]). Faults of one endpoint apply in the order they were
    /// injected; when all are used up, requests are served normally.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: Option<u32>) {
        if times == Some(0) {
            return;
        }
        self.shared
            .lock()
            .faults
            .entry(endpoint)
            .or_default()
            .push_back(Injected {
                fault,
                remaining: times,
            });
    }

    /// Drops every queued fault of every endpoint.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Requests that reached `endpoint` since start or [`Emulator::reset_calls`], faulted or not.
    /// A `/users/{userId}/token` request with neither `type=zak` nor `type=onbehalf` reaches
    /// neither endpoint.
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.shared.calls[endpoint.index()].load(Ordering::SeqCst)
    }

    /// Token-endpoint requests whose `account_id` named `account_id`, faulted or not.
    pub fn token_requests_for(&self, account_id: &str) -> u64 {
        self.shared
            .lock()
            .token_requests
            .get(account_id)
            .copied()
            .unwrap_or(0)
    }

    /// API calls answered 401 (code 124) because their Bearer token was unknown, expired or
    /// revoked, since start or [`Emulator::reset_calls`]. A client that refreshes its token in
    /// time and never sends a revoked one keeps this at zero.
    pub fn refused_tokens(&self) -> u64 {
        self.shared.refused_tokens.load(Ordering::SeqCst)
    }

    /// Sets every call counter back to zero.
    pub fn reset_calls(&self) {
        // Under the state lock, where token requests count their account, so a reset never
        // falls between a request's per-account count and the next request's.
        let mut state = self.shared.lock();
        state.token_requests.clear();
        for counter in &self.shared.calls {
            counter.store(0, Ordering::SeqCst);
        }
        self.shared.refused_tokens.store(0, Ordering::SeqCst);
        self.shared.trace_parents().clear();
    }

    /// The W3C `traceparent` headers of the requests received since start or
    /// [`Emulator::reset_calls`], oldest first (the last [`TRACE_PARENTS_KEPT`]).
    pub fn trace_parents(&self) -> Vec<String> {
        self.shared.trace_parents().clone()
    }

    /// Stops the server: releases hung and delayed requests, lets in-flight ones finish for a
    /// few seconds, then stops it outright.
    pub async fn shutdown(self) {
        let Emulator { stop, mut task, .. } = self;
        // Ignored error: no receiver left means the server is already gone.
        let _ = stop.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Most `traceparent` headers kept; older ones are forgotten.
pub const TRACE_PARENTS_KEPT: usize = 1000;

/// Keeps a request's `traceparent`, so tests can see what ztv propagates to Zoom.
async fn keep_trace_parent(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(value) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        let mut kept = shared.trace_parents();
        if kept.len() >= TRACE_PARENTS_KEPT {
            kept.remove(0);
        }
        kept.push(value.to_string());
    }
    next.run(request).await
}

/// The address clients should use: a wildcard bind is reached over loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, v4.port()))
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, v6.port()))
        }
        other => other,
    }
}

/// State shared by the control API and the handlers.
struct Shared {
    base_url: String,
    signing_key: EncodingKey,
    stopped: watch::Receiver<bool>,
    /// Indexed by [`Endpoint::index`]; atomics so counting never waits on the state lock.
    calls: [AtomicU64; ENDPOINTS],
    /// See [`Emulator::refused_tokens`].
    refused_tokens: AtomicU64,
    /// See [`Emulator::trace_parents`].
    trace_parents: Mutex<Vec<String>>,
    state: Mutex<ZoomState>,
}

impl Shared {
    /// The lock is never held across an await, and nothing in it can be left half-updated by a
    /// panic that matters to an emulator, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, ZoomState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn trace_parents(&self) -> MutexGuard<'_, Vec<String>> {
        self.trace_parents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, endpoint: Endpoint) {
        self.calls[endpoint.index()].fetch_add(1, Ordering::SeqCst);
    }

    /// Completes when the emulator shuts down or is dropped.
    async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

#[derive(Default)]
struct ZoomState {
    /// By client ID.
    clients: HashMap<String, Client>,
    /// By account ID, in the order added (the first is `me`).
    users: HashMap<String, Vec<EmulatorUser>>,
    /// Live access tokens, S2S and user.
    tokens: HashMap<String, Issued>,
    token_lifetime: u64,
    /// User-managed OAuth apps, by client ID.
    oauth_apps: HashMap<String, OAuthApp>,
    /// Authorization codes not yet exchanged; an exchange removes its code.
    codes: HashMap<String, Code>,
    /// Live refresh tokens; a refresh removes the one it used.
    refresh_tokens: HashMap<String, Refresh>,
    /// The user ID or email [`Emulator::set_consenting_user`] named.
    consenting_user: Option<String>,
    /// The ID of the first user ever added: the consenting user until one is set.
    first_user: Option<String>,
    user_token_lifetime: u64,
    faults: HashMap<Endpoint, VecDeque<Injected>>,
    /// Token-endpoint calls by the `account_id` they named.
    token_requests: HashMap<String, u64>,
    /// See [`Emulator::report_api_url`].
    reported_api_urls: HashMap<String, String>,
}

impl ZoomState {
    /// The fault the next request of `endpoint` gets, used up by one.
    fn next_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let queue = self.faults.get_mut(&endpoint)?;
        let front = queue.front_mut()?;
        let fault = front.fault.clone();
        if let Some(remaining) = front.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                queue.pop_front();
            }
        }
        Some(fault)
    }

    /// The user a Bearer token may act as when it names `user_id`: for an S2S token any user of
    /// its account (`me` is the first), for a user token only its own user.
    fn user_for(&self, bearer: &Bearer, user_id: &str) -> Option<&EmulatorUser> {
        let Some(own) = &bearer.user_id else {
            return self.find_user(&bearer.account_id, user_id);
        };
        if bearer.whole_account && user_id != "me" {
            return self.find_user(&bearer.account_id, user_id);
        }
        let user = self
            .users
            .get(&bearer.account_id)?
            .iter()
            .find(|u| &u.user_id == own)?;
        let named = user_id == "me"
            || user.user_id == user_id
            || user.email.to_lowercase() == user_id.to_lowercase();
        named.then_some(user)
    }

    /// The account and ID of the user who consents at `/oauth/authorize`, if they exist.
    fn consenting(&self) -> Option<(String, String)> {
        let wanted = self.consenting_user.as_ref().or(self.first_user.as_ref())?;
        let email = wanted.to_lowercase();
        self.users.iter().find_map(|(account_id, users)| {
            users
                .iter()
                .find(|u| &u.user_id == wanted || u.email.to_lowercase() == email)
                .map(|u| (account_id.clone(), u.user_id.clone()))
        })
    }

    /// Ends `user_id`'s grant of the app `client_id`: see [`Emulator::deauthorize`].
    fn deauthorize(&mut self, user_id: &str, client_id: &str) {
        let of_theirs =
            |grant: &UserGrant| grant.user_id == user_id && grant.client_id == client_id;
        self.codes.retain(|_, code| !of_theirs(&code.grant));
        self.refresh_tokens
            .retain(|_, refresh| !of_theirs(&refresh.grant));
        self.tokens
            .retain(|_, issued| !issued.user.as_ref().is_some_and(of_theirs));
    }

    /// The account of the user with this ID.
    fn account_of(&self, user_id: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(_, users)| users.iter().any(|u| u.user_id == user_id))
            .map(|(account_id, _)| account_id.clone())
    }

    /// Beyond [`PRUNE_ABOVE`] entries, drops the expired tokens, codes and refresh tokens.
    fn prune(&mut self, now: Instant) {
        if self.tokens.len() >= PRUNE_ABOVE {
            self.tokens.retain(|_, issued| issued.expires_at > now);
        }
        if self.codes.len() >= PRUNE_ABOVE {
            self.codes.retain(|_, code| code.expires_at > now);
        }
        if self.refresh_tokens.len() >= PRUNE_ABOVE {
            self.refresh_tokens
                .retain(|_, refresh| refresh.expires_at > now);
        }
    }

    fn find_user(&self, account_id: &str, user_id: &str) -> Option<&EmulatorUser> {
        let users = self.users.get(account_id)?;
        if user_id == "me" {
            return users.first();
        }
        let email = user_id.to_lowercase();
        users
            .iter()
            .find(|u| u.user_id == user_id || u.email.to_lowercase() == email)
    }
}

struct Client {
    account_id: String,
    secret: String,
}

struct OAuthApp {
    secret: String,
    redirect_uri: String,
    /// See [`Emulator::set_admin_managed`].
    admin_managed: bool,
}

/// Who a user grant (an authorization code, a refresh token, a user access token) acts for, and
/// which app holds it.
#[derive(Clone)]
struct UserGrant {
    client_id: String,
    account_id: String,
    user_id: String,
}

struct Code {
    grant: UserGrant,
    /// The `redirect_uri` of the authorize request, which the exchange must repeat.
    redirect_uri: String,
    expires_at: Instant,
}

struct Refresh {
    grant: UserGrant,
    expires_at: Instant,
}

struct Issued {
    account_id: String,
    /// `Some` for a user access token: the user it is bound to.
    user: Option<UserGrant>,
    expires_at: Instant,
}

/// The holder of a live Bearer access token: an account (S2S) or one user of it (user OAuth).
struct Bearer {
    account_id: String,
    user_id: Option<String>,
    /// A user token of an admin-managed app: it acts for every user of its account.
    whole_account: bool,
}

struct Injected {
    fault: Fault,
    /// `None`: until cleared.
    remaining: Option<u32>,
}

/// The token endpoint's refusals, with Zoom's `reason` as the message.
#[derive(Debug, thiserror::Error)]
enum OAuthError {
    #[error("Invalid client_id or client_secret")]
    InvalidClient,
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    #[error("Invalid request : Bad Request")]
    InvalidRequest,
    /// `/oauth/authorize` for a client ID no OAuth app has.
    #[error("Invalid client_id")]
    UnknownClientId,
    /// `/oauth/authorize` with a `redirect_uri` other than the app's.
    #[error("Invalid redirect uri")]
    InvalidRedirectUri,
    /// A code that does not exist, was used, expired, is another app's, or came with another
    /// `redirect_uri`.
    #[error("Invalid authorization code")]
    InvalidCode,
    /// A refresh token that does not exist, was used, expired or is another app's.
    #[error("Invalid Token!")]
    InvalidRefreshToken,
    #[error("Internal Server Error")]
    Internal,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            OAuthError::InvalidClient => (StatusCode::BAD_REQUEST, "invalid_client"),
            OAuthError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            OAuthError::InvalidRequest | OAuthError::InvalidRedirectUri => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            OAuthError::UnknownClientId => (StatusCode::BAD_REQUEST, "invalid_client"),
            OAuthError::InvalidCode | OAuthError::InvalidRefreshToken => {
                (StatusCode::BAD_REQUEST, "invalid_grant")
            }
            OAuthError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        oauth_body(status, &self.to_string(), error)
    }
}

/// The API's refusals, with Zoom's `message`.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("Invalid access token.")]
    InvalidAccessToken,
    #[error("User does not exist: {0}.")]
    UserNotFound(String),
    #[error("The meeting_id is required for onbehalf token.")]
    MeetingIdRequired,
    #[error("Invalid type.")]
    InvalidType,
    #[error("Invalid ttl.")]
    InvalidTtl,
    #[error("Internal Server Error")]
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            ApiError::InvalidAccessToken => (StatusCode::UNAUTHORIZED, 124),
            ApiError::UserNotFound(_) => (StatusCode::NOT_FOUND, 1001),
            ApiError::MeetingIdRequired | ApiError::InvalidType | ApiError::InvalidTtl => {
                (StatusCode::BAD_REQUEST, 300)
            }
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 500),
        };
        api_body(status, code, &self.to_string())
    }
}

fn oauth_body(status: StatusCode, reason: &str, error: &str) -> Response {
    (status, Json(json!({ "reason": reason, "error": error }))).into_response()
}

fn api_body(status: StatusCode, code: u16, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

/// Which body shape a faulted endpoint answers in.
#[derive(Clone, Copy)]
enum Shape {
    OAuth,
    Api,
}

/// Applies the fault, if any, the next request of `endpoint` gets: `Some(response)` answers in
/// its place, `None` serves the request normally (after any delay).
async fn apply_fault(shared: &Shared, fault: Option<Fault>, shape: Shape) -> Option<Response> {
    match fault? {
        Fault::Status(status) => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| !s.is_informational())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = status.canonical_reason().unwrap_or("Error");
            Some(match shape {
                Shape::OAuth => oauth_body(status, message, "server_error"),
                Shape::Api => api_body(status, status.as_u16(), message),
            })
        }
        Fault::RateLimited {
            retry_after_seconds,
        } => {
            let mut response = api_body(StatusCode::TOO_MANY_REQUESTS, 429, RATE_LIMIT_MESSAGE);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            Some(response)
        }
        Fault::Delay(delay) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => None,
                _ = shared.stopped() => Some(shutting_down()),
            }
        }
        Fault::Hang => {
            shared.stopped().await;
            Some(shutting_down())
        }
    }
}

/// What a held request gets when the emulator stops (the client has usually gone by then).
fn shutting_down() -> Response {
    api_body(
        StatusCode::SERVICE_UNAVAILABLE,
        503,
        "The emulator is shutting down.",
    )
}

#[derive(Serialize)]
struct AccessTokenResponse<'a> {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: &'static str,
    api_url: &'a str,
}

/// `POST /oauth/token`.
async fn issue_access_token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = TokenParams::read(query.as_deref(), body).await;
    let grant = match params.grant_type.as_deref() {
        Some("refresh_token") => Some(Endpoint::Refresh),
        Some("authorization_code") => Some(Endpoint::Code),
        _ => None,
    };

    shared.count(Endpoint::Token);
    if let Some(grant) = grant {
        shared.count(grant);
    }
    let fault = {
        let mut state = shared.lock();
        if let Some(account_id) = &params.account_id {
            *state.token_requests.entry(account_id.clone()).or_default() += 1;
        }
        // The grant's own faults first, then those of the whole endpoint.
        grant
            .and_then(|grant| state.next_fault(grant))
            .or_else(|| state.next_fault(Endpoint::Token))
    };
    if let Some(response) = apply_fault(&shared, fault, Shape::OAuth).await {
        return response;
    }

    match grant_access_token(&shared, &headers, &params) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn grant_access_token(
    shared: &Shared,
    headers: &HeaderMap,
    params: &TokenParams,
) -> Result<Response, OAuthError> {
    // Client authentication first, as an OAuth server does: nothing else is said to a caller
    // that cannot prove it is the app.
    let (client_id, secret) = basic_credentials(headers).ok_or(OAuthError::InvalidClient)?;
    let mut state = shared.lock();
    // An S2S app first, then a user-managed one; each takes only its own grant types.
    let s2s_account = state
        .clients
        .get(&client_id)
        .filter(|client| client.secret == secret)
        .map(|client| client.account_id.clone());
    let Some(client_account) = s2s_account else {
        let is_oauth_app = state
            .oauth_apps
            .get(&client_id)
            .is_some_and(|app| app.secret == secret);
        if !is_oauth_app {
            return Err(OAuthError::InvalidClient);
        }
        return match params.grant_type.as_deref() {
            Some("authorization_code") => exchange_code(shared, &mut state, &client_id, params),
            Some("refresh_token") => refresh(shared, &mut state, &client_id, params),
            _ => Err(OAuthError::UnsupportedGrantType),
        };
    };
    if params.grant_type.as_deref() != Some("account_credentials") {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let account_id = params
        .account_id
        .as_deref()
        .filter(|id| *id == client_account)
        .ok_or(OAuthError::InvalidRequest)?
        .to_string();

    let lifetime = state.token_lifetime;
    let api_url = state
        .reported_api_urls
        .get(&account_id)
        .cloned()
        .unwrap_or_else(|| shared.base_url.clone());
    let access_token = sign_oauth_token(shared, &client_id, &account_id, None, lifetime)?;
    let now = Instant::now();
    state.prune(now);
    state.tokens.insert(
        access_token.clone(),
        Issued {
            account_id,
            user: None,
            expires_at: now + Duration::from_secs(lifetime),
        },
    );
    drop(state);

    Ok(Json(AccessTokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: lifetime,
        scope: TOKEN_SCOPE,
        api_url: &api_url,
    })
    .into_response())
}

/// `POST /oauth/revoke`: an OAuth app (HTTP Basic) revokes one of its users' live access or
/// refresh tokens (`token`, form or query), which ends that user's whole grant of the app, as
/// when they remove it (see [`Emulator::deauthorize`]); answers `{"status":"success"}`.
async fn revoke_token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = TokenParams::read(query.as_deref(), body).await;
    shared.count(Endpoint::Revoke);
    let fault = shared.lock().next_fault(Endpoint::Revoke);
    if let Some(response) = apply_fault(&shared, fault, Shape::OAuth).await {
        return response;
    }
    let Some((client_id, secret)) = basic_credentials(&headers) else {
        return OAuthError::InvalidClient.into_response();
    };
    let mut state = shared.lock();
    if state
        .oauth_apps
        .get(&client_id)
        .is_none_or(|app| app.secret != secret)
    {
        return OAuthError::InvalidClient.into_response();
    }
    let token = params.token.as_deref().unwrap_or_default();
    let now = Instant::now();
    let live_access = state
        .tokens
        .get(token)
        .filter(|issued| issued.expires_at > now)
        .and_then(|issued| issued.user.clone());
    let live_refresh = state
        .refresh_tokens
        .get(token)
        .filter(|refresh| refresh.expires_at > now)
        .map(|refresh| refresh.grant.clone());
    let Some(grant) = live_access
        .or(live_refresh)
        .filter(|grant| grant.client_id == client_id)
    else {
        return OAuthError::InvalidRefreshToken.into_response();
    };
    state.deauthorize(&grant.user_id, &client_id);
    Json(json!({"status": "success"})).into_response()
}

/// `grant_type=authorization_code`: trades a live code of this app, with the `redirect_uri` it
/// was issued for, once. A refused exchange leaves the code as it was.
fn exchange_code(
    shared: &Shared,
    state: &mut ZoomState,
    client_id: &str,
    params: &TokenParams,
) -> Result<Response, OAuthError> {
    let code = params.code.as_deref().ok_or(OAuthError::InvalidCode)?;
    let now = Instant::now();
    let valid = state.codes.get(code).is_some_and(|issued| {
        issued.grant.client_id == client_id
            && issued.expires_at > now
            && params.redirect_uri.as_deref() == Some(issued.redirect_uri.as_str())
    });
    if !valid {
        return Err(OAuthError::InvalidCode);
    }
    let grant = state
        .codes
        .remove(code)
        .ok_or(OAuthError::InvalidCode)?
        .grant;
    issue_user_tokens(shared, state, grant)
}

/// `grant_type=refresh_token`: a live refresh token of this app buys a new access token and a
/// new refresh token, and is used up. Checked and removed under the state lock, so of
/// concurrent refreshes with one token exactly one succeeds.
fn refresh(
    shared: &Shared,
    state: &mut ZoomState,
    client_id: &str,
    params: &TokenParams,
) -> Result<Response, OAuthError> {
    let token = params
        .refresh_token
        .as_deref()
        .ok_or(OAuthError::InvalidRefreshToken)?;
    let now = Instant::now();
    let valid = state
        .refresh_tokens
        .get(token)
        .is_some_and(|refresh| refresh.grant.client_id == client_id && refresh.expires_at > now);
    if !valid {
        return Err(OAuthError::InvalidRefreshToken);
    }
    let grant = state
        .refresh_tokens
        .remove(token)
        .ok_or(OAuthError::InvalidRefreshToken)?
        .grant;
    issue_user_tokens(shared, state, grant)
}

#[derive(Serialize)]
struct UserAccessTokenResponse<'a> {
    access_token: String,
    token_type: &'static str,
    refresh_token: String,
    expires_in: u64,
    scope: &'static str,
    api_url: &'a str,
}

/// A user access token and a refresh token for `grant`, stored as live.
fn issue_user_tokens(
    shared: &Shared,
    state: &mut ZoomState,
    grant: UserGrant,
) -> Result<Response, OAuthError> {
    let lifetime = state.user_token_lifetime;
    let access_token = sign_oauth_token(
        shared,
        &grant.client_id,
        &grant.account_id,
        Some(&grant.user_id),
        lifetime,
    )?;
    let refresh_token = random_token();
    let now = Instant::now();
    state.prune(now);
    state.tokens.insert(
        access_token.clone(),
        Issued {
            account_id: grant.account_id.clone(),
            user: Some(grant.clone()),
            expires_at: now + Duration::from_secs(lifetime),
        },
    );
    state.refresh_tokens.insert(
        refresh_token.clone(),
        Refresh {
            grant,
            expires_at: now + Duration::from_secs(REFRESH_TOKEN_LIFETIME_SECONDS),
        },
    );
    Ok(Json(UserAccessTokenResponse {
        access_token,
        token_type: "bearer",
        refresh_token,
        expires_in: lifetime,
        scope: USER_TOKEN_SCOPE,
        api_url: &shared.base_url,
    })
    .into_response())
}

/// The token endpoint's parameters, from the query or, where it lacks one, a form body.
#[derive(Default)]
struct TokenParams {
    grant_type: Option<String>,
    account_id: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
    /// `POST /oauth/revoke`'s token.
    token: Option<String>,
}

impl TokenParams {
    /// The parameters of the query and the form body; a body that cannot be read leaves the
    /// query as the only source.
    async fn read(query: Option<&str>, body: Body) -> Self {
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        Self::parse(query, &body)
    }

    fn parse(query: Option<&str>, body: &Bytes) -> Self {
        let mut params = TokenParams::default();
        let sources = [query.unwrap_or("").as_bytes(), body.as_ref()];
        for source in sources {
            for (key, value) in url::form_urlencoded::parse(source) {
                let slot = match key.as_ref() {
                    "grant_type" => &mut params.grant_type,
                    "account_id" => &mut params.account_id,
                    "code" => &mut params.code,
                    "redirect_uri" => &mut params.redirect_uri,
                    "refresh_token" => &mut params.refresh_token,
                    "token" => &mut params.token,
                    _ => continue,
                };
                if slot.is_none() && !value.is_empty() {
                    *slot = Some(value.into_owned());
                }
            }
        }
        params
    }
}

/// `Authorization: Basic base64(client_id:client_secret)`, or `None` if absent or malformed.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = auth_param(headers, "basic")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The credentials of an `Authorization` header of the given scheme (compared
/// case-insensitively).
fn auth_param<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, param) = value.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| param.trim())
}

/// A Zoom-shaped access token: `{"alg":"HS512","v":"2.0","kid":…}` over a payload naming the
/// app and account, and for a user token the user (`uid`), signed with the emulator's key.
/// Unique per issue thanks to `jti`.
fn sign_oauth_token(
    shared: &Shared,
    client_id: &str,
    account_id: &str,
    user_id: Option<&str>,
    lifetime: u64,
) -> Result<String, OAuthError> {
    let now = unix_now();
    let header = json!({ "alg": "HS512", "v": "2.0", "kid": uuid::Uuid::new_v4().to_string() });
    let mut payload = json!({
        "aud": "https://oauth.zoom.us",
        "iss": format!("zm:cid:{client_id}"),
        "aid": account_id,
        "ver": 10,
        "type": if user_id.is_some() { 0 } else { 3 },
        "nbf": now,
        "iat": now,
        "exp": now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(user_id) = user_id {
        payload["uid"] = json!(user_id);
    }
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &shared.signing_key, Algorithm::HS512)
            .map_err(|_| OAuthError::Internal)?;
    Ok(format!("{message}.{signature}"))
}

#[derive(Serialize)]
struct UserTokenClaims<'a> {
    uid: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    aid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mid: Option<&'a str>,
    iat: i64,
    exp: i64,
    jti: String,
}

/// `GET /v2/users/{userId}/token`.
async fn issue_user_token(
    State(shared): State<Arc<Shared>>,
    user_id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut kind = None;
    let mut meeting_id = None;
    let mut ttl = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "type" if kind.is_none() => kind = Some(value.into_owned()),
            "ttl" if ttl.is_none() => ttl = Some(value.into_owned()),
            "meeting_id" if meeting_id.is_none() && !value.is_empty() => {
                meeting_id = Some(value.into_owned());
            }
            _ => {}
        }
    }
    let endpoint = match kind.as_deref() {
        Some("zak") => Endpoint::Zak,
        Some("onbehalf") => Endpoint::Obf,
        // Zoom checks the access token before anything else, so a bad type from a caller
        // without a valid token is still a 401.
        _ => {
            return match bearer(&shared, &headers) {
                Ok(_) => ApiError::InvalidType.into_response(),
                Err(error) => error.into_response(),
            };
        }
    };

    shared.count(endpoint);
    let fault = shared.lock().next_fault(endpoint);
    if let Some(response) = apply_fault(&shared, fault, Shape::Api).await {
        return response;
    }

    // Only a path that is not valid UTF-8 fails to extract; no user has such an ID.
    let user_id = match user_id {
        Ok(Path(user_id)) => user_id,
        Err(_) => return ApiError::UserNotFound(String::new()).into_response(),
    };
    let ttl = match ttl.as_deref().map(parse_ttl).transpose() {
        Ok(ttl) => ttl,
        Err(error) => return error.into_response(),
    };
    let asked = Asked {
        meeting_id: meeting_id.as_deref(),
        ttl,
    };
    match sign_user_token(&shared, &headers, &user_id, endpoint, asked) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// What a user-token request asked for beyond its type: the meeting (OBF) and the token's life.
#[derive(Default)]
struct Asked<'a> {
    meeting_id: Option<&'a str>,
    /// Seconds; `None`: Zoom's default for the kind.
    ttl: Option<i64>,
}

/// `ttl`: whole seconds, at most one year, as Zoom documents it.
fn parse_ttl(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|ttl| (1..=31_536_000).contains(ttl))
        .ok_or(ApiError::InvalidTtl)
}

fn sign_user_token(
    shared: &Shared,
    headers: &HeaderMap,
    user_id: &str,
    endpoint: Endpoint,
    asked: Asked<'_>,
) -> Result<String, ApiError> {
    let meeting_id = asked.meeting_id;
    let bearer = bearer(shared, headers)?;
    if endpoint == Endpoint::Obf && meeting_id.is_none() {
        return Err(ApiError::MeetingIdRequired);
    }
    let uid = shared
        .lock()
        .user_for(&bearer, user_id)
        .map(|user| user.user_id.clone())
        .ok_or_else(|| ApiError::UserNotFound(user_id.to_string()))?;

    let (kind, lifetime, mid) = match endpoint {
        Endpoint::Obf => ("onbehalf", OBF_LIFETIME_SECONDS, meeting_id),
        _ => ("zak", ZAK_LIFETIME_SECONDS, None),
    };
    let lifetime = asked.ttl.unwrap_or(lifetime);
    let now = unix_now();
    let claims = UserTokenClaims {
        uid: &uid,
        kind,
        aid: &bearer.account_id,
        mid,
        iat: now,
        exp: now + lifetime,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &shared.signing_key)
        .map_err(|_| ApiError::Internal)
}

/// The holder of the request's live Bearer access token; a refusal is counted in
/// [`Emulator::refused_tokens`].
fn bearer(shared: &Shared, headers: &HeaderMap) -> Result<Bearer, ApiError> {
    let holder = auth_param(headers, "bearer").and_then(|token| {
        let state = shared.lock();
        state
            .tokens
            .get(token)
            .filter(|issued| Instant::now() < issued.expires_at)
            .map(|issued| Bearer {
                account_id: issued.account_id.clone(),
                user_id: issued.user.as_ref().map(|grant| grant.user_id.clone()),
                whole_account: issued.user.as_ref().is_some_and(|grant| {
                    state
                        .oauth_apps
                        .get(&grant.client_id)
                        .is_some_and(|app| app.admin_managed)
                }),
            })
    });
    if holder.is_none() {
        shared.refused_tokens.fetch_add(1, Ordering::SeqCst);
    }
    holder.ok_or(ApiError::InvalidAccessToken)
}

/// `GET /v2/users/me/zak`: the ZAK of the token's user (for an S2S token, the account's first
/// user). Counted, and faulted, as [`Endpoint::Zak`].
async fn issue_own_zak(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ttl = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "ttl")
        .map(|(_, value)| parse_ttl(&value))
        .transpose();
    let ttl = match ttl {
        Ok(ttl) => ttl,
        Err(error) => return error.into_response(),
    };
    shared.count(Endpoint::Zak);
    let fault = shared.lock().next_fault(Endpoint::Zak);
    if let Some(response) = apply_fault(&shared, fault, Shape::Api).await {
        return response;
    }
    let asked = Asked {
        meeting_id: None,
        ttl,
    };
    match sign_user_token(&shared, &headers, "me", Endpoint::Zak, asked) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v2/users/{userId}`: the user's profile, as far as the emulator knows it.
async fn describe_user(
    State(shared): State<Arc<Shared>>,
    user_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    shared.count(Endpoint::User);
    let fault = shared.lock().next_fault(Endpoint::User);
    if let Some(response) = apply_fault(&shared, fault, Shape::Api).await {
        return response;
    }
    // Only a path that is not valid UTF-8 fails to extract; no user has such an ID.
    let user_id = match user_id {
        Ok(Path(user_id)) => user_id,
        Err(_) => return ApiError::UserNotFound(String::new()).into_response(),
    };
    match user_profile(&shared, &headers, &user_id) {
        Ok(profile) => Json(profile).into_response(),
        Err(error) => error.into_response(),
    }
}

fn user_profile(
    shared: &Shared,
    headers: &HeaderMap,
    user_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let bearer = bearer(shared, headers)?;
    let state = shared.lock();
    let user = state
        .user_for(&bearer, user_id)
        .ok_or_else(|| ApiError::UserNotFound(user_id.to_string()))?;
    let (first_name, last_name) = names_of(&user.email);
    Ok(json!({
        "id": user.user_id,
        "email": user.email,
        "account_id": bearer.account_id,
        "first_name": first_name,
        "last_name": last_name,
        "type": 1,
    }))
}

/// A user's names, made up from the email: `jane.q.doe@…` is Jane / Q Doe.
fn names_of(email: &str) -> (String, String) {
    let local = email.split('@').next().unwrap_or_default();
    let mut parts = local
        .split(['.', '_', '-', '+'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        });
    let first = parts.next().unwrap_or_default();
    (first, parts.collect::<Vec<_>>().join(" "))
}

#[derive(Default)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
}

/// `GET /oauth/authorize`: the browser step, consented at once by the consenting user.
async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let mut params = AuthorizeParams::default();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match key.as_ref() {
            "response_type" => &mut params.response_type,
            "client_id" => &mut params.client_id,
            "redirect_uri" => &mut params.redirect_uri,
            "state" => &mut params.state,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.into_owned());
        }
    }
    let location = match consent(&shared, &params) {
        Ok(location) => location,
        Err(error) => return error.into_response(),
    };
    match HeaderValue::try_from(location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // Only a registered redirect URI with bytes a header cannot carry.
        Err(_) => OAuthError::Internal.into_response(),
    }
}

/// Where the browser goes: the app's redirect URI with a fresh code (or an `error`) and the
/// `state` as given. An unknown client or a foreign redirect URI is answered, not redirected,
/// as OAuth requires.
fn consent(shared: &Shared, params: &AuthorizeParams) -> Result<String, OAuthError> {
    let mut state = shared.lock();
    let client_id = params.client_id.clone().unwrap_or_default();
    let app = state
        .oauth_apps
        .get(&client_id)
        .ok_or(OAuthError::UnknownClientId)?;
    let redirect_uri = params
        .redirect_uri
        .clone()
        .filter(|uri| *uri == app.redirect_uri)
        .ok_or(OAuthError::InvalidRedirectUri)?;

    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if params.response_type.as_deref() != Some("code") {
        query.append_pair("error", "unsupported_response_type");
    } else if let Some((account_id, user_id)) = state.consenting() {
        let code = random_token();
        let now = Instant::now();
        state.prune(now);
        state.codes.insert(
            code.clone(),
            Code {
                grant: UserGrant {
                    client_id,
                    account_id,
                    user_id,
                },
                redirect_uri: redirect_uri.clone(),
                expires_at: now + Duration::from_secs(AUTHORIZATION_CODE_LIFETIME_SECONDS),
            },
        );
        query.append_pair("code", &code);
    } else {
        query.append_pair("error", "access_denied");
    }
    if let Some(given) = &params.state {
        query.append_pair("state", given);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    Ok(format!("{redirect_uri}{separator}{}", query.finish()))
}

/// `N` bytes from the operating system's generator.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// An opaque, unguessable token: authorization codes and refresh tokens.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// `v0=` and the hex HMAC-SHA256, under `secret_token`, of `v0:{timestamp}:{body}`: Zoom's
/// webhook signature.
fn webhook_signature(secret_token: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// `1970-01-01T00:00:00.000Z` for unix milliseconds (UTC, proleptic Gregorian calendar).
fn rfc3339_millis(unix_ms: i64) -> String {
    let (secs, millis) = (unix_ms.div_euclid(1000), unix_ms.rem_euclid(1000));
    let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The body of `GET /_emulator/stats`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    token: u64,
    zak: u64,
    obf: u64,
    token_requests_by_account: HashMap<String, u64>,
    refused_tokens: u64,
}

/// `GET /_emulator/stats`: the call counts, read under the state lock (as
/// [`Emulator::reset_calls`] writes them) so a reset is never half seen. Not counted, no faults.
async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    let state = shared.lock();
    let count = |endpoint: Endpoint| shared.calls[endpoint.index()].load(Ordering::SeqCst);
    Json(Stats {
        token: count(Endpoint::Token),
        zak: count(Endpoint::Zak),
        obf: count(Endpoint::Obf),
        token_requests_by_account: state.token_requests.clone(),
        refused_tokens: shared.refused_tokens.load(Ordering::SeqCst),
    })
}

async fn not_found() -> Response {
    api_body(StatusCode::NOT_FOUND, 404, "Not found")
}

async fn method_not_allowed() -> Response {
    api_body(StatusCode::METHOD_NOT_ALLOWED, 405, "Method not allowed")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
