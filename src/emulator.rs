//! A built-in Zoom emulator over real HTTP: the S2S token endpoint and the ZAK / OBF token API,
//! with Zoom's status codes and error bodies, plus a control API for tests (fault injection,
//! call counting, revocation). `ztv dev` runs against it, so it ships in the library.
//!
//! It answers:
//!
//! * `POST /oauth/token?grant_type=account_credentials&account_id=…` (HTTP Basic client ID and
//!   secret; the parameters may also come as a form body, as Zoom accepts),
//! * `GET /v2/users/{userId}/token?type=zak` and `?type=onbehalf&meeting_id=…` (Bearer access
//!   token),
//! * `GET /_emulator/stats`, which is **not** a Zoom route: the call counts of
//!   [`Emulator::calls`] and [`Emulator::token_requests_for`] as
//!   `{"token":N,"zak":N,"obf":N,"tokenRequestsByAccount":{"ACCOUNT_ID":N,…}}`, so that other
//!   processes (the benchmark, soak runs against `ztv emulator`) can read how often ztv
//!   reached "Zoom". It is neither counted nor subject to injected faults, and it shows no
//!   secret or token,
//!
//! and `404 {"code":404,"message":"Not found"}` for everything else. It logs nothing, so no
//! secret or token can leak through it.

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
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `expires_in` of access tokens until [`Emulator::set_token_lifetime`] says otherwise; Zoom's
/// own value.
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 3599;
/// Life of a ZAK, in seconds (Zoom: two hours).
pub const ZAK_LIFETIME_SECONDS: i64 = 7200;
/// Life of an On-Behalf-Of token, in seconds (Zoom: 30 minutes).
pub const OBF_LIFETIME_SECONDS: i64 = 1800;
/// The scopes every access token is issued with.
pub const TOKEN_SCOPE: &str = "user:read:token:admin user:read:zak:admin";

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
/// are the two `type`s of `GET /v2/users/{userId}/token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    Zak,
    Obf,
}

impl Endpoint {
    fn index(self) -> usize {
        match self {
            Endpoint::Token => 0,
            Endpoint::Zak => 1,
            Endpoint::Obf => 2,
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

impl fmt::Debug for EmulatorAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorAccount")
            .field("account_id", &self.account_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
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
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let shared = Arc::new(Shared {
            base_url: format!("http://{}", reachable(local_addr)),
            signing_key: EncodingKey::from_secret(&key),
            stopped: stopped.clone(),
            calls: Default::default(),
            state: Mutex::new(ZoomState {
                token_lifetime: DEFAULT_TOKEN_LIFETIME_SECONDS,
                ..ZoomState::default()
            }),
        });
        let router = Router::new()
            .route("/oauth/token", post(issue_access_token))
            .route("/v2/users/{user_id}/token", get(issue_user_token))
            .route(STATS_PATH, get(stats))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
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

    /// Every access token issued so far answers 401 (code 124) from now on.
    pub fn revoke_all_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Every access token issued so far to `account_id` answers 401 (code 124) from now on.
    pub fn revoke_tokens_of(&self, account_id: &str) {
        self.shared
            .lock()
            .tokens
            .retain(|_, issued| issued.account_id != account_id);
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

    /// Sets every call counter back to zero.
    pub fn reset_calls(&self) {
        // Under the state lock, where token requests count their account, so a reset never
        // falls between a request's per-account count and the next request's.
        let mut state = self.shared.lock();
        state.token_requests.clear();
        for counter in &self.shared.calls {
            counter.store(0, Ordering::SeqCst);
        }
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
    calls: [AtomicU64; 3],
    state: Mutex<ZoomState>,
}

impl Shared {
    /// The lock is never held across an await, and nothing in it can be left half-updated by a
    /// panic that matters to an emulator, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, ZoomState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// Live access tokens.
    tokens: HashMap<String, Issued>,
    token_lifetime: u64,
    faults: HashMap<Endpoint, VecDeque<Injected>>,
    /// Token-endpoint calls by the `account_id` they named.
    token_requests: HashMap<String, u64>,
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

struct Issued {
    account_id: String,
    expires_at: Instant,
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
    #[error("Internal Server Error")]
    Internal,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            OAuthError::InvalidClient => (StatusCode::BAD_REQUEST, "invalid_client"),
            OAuthError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            OAuthError::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
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
    #[error("Internal Server Error")]
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            ApiError::InvalidAccessToken => (StatusCode::UNAUTHORIZED, 124),
            ApiError::UserNotFound(_) => (StatusCode::NOT_FOUND, 1001),
            ApiError::MeetingIdRequired | ApiError::InvalidType => (StatusCode::BAD_REQUEST, 300),
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
    // A body that cannot be read leaves the query as the only source of parameters.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let params = TokenParams::parse(query.as_deref(), &body);

    shared.count(Endpoint::Token);
    let fault = {
        let mut state = shared.lock();
        if let Some(account_id) = &params.account_id {
            *state.token_requests.entry(account_id.clone()).or_default() += 1;
        }
        state.next_fault(Endpoint::Token)
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
    let client = state
        .clients
        .get(&client_id)
        .filter(|client| client.secret == secret)
        .ok_or(OAuthError::InvalidClient)?;
    if params.grant_type.as_deref() != Some("account_credentials") {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let account_id = params
        .account_id
        .as_deref()
        .filter(|id| *id == client.account_id)
        .ok_or(OAuthError::InvalidRequest)?
        .to_string();

    let lifetime = state.token_lifetime;
    let access_token = sign_access_token(shared, &client_id, &account_id, lifetime)?;
    let now = Instant::now();
    if state.tokens.len() >= PRUNE_ABOVE {
        state.tokens.retain(|_, issued| issued.expires_at > now);
    }
    state.tokens.insert(
        access_token.clone(),
        Issued {
            account_id,
            expires_at: now + Duration::from_secs(lifetime),
        },
    );
    drop(state);

    Ok(Json(AccessTokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: lifetime,
        scope: TOKEN_SCOPE,
        api_url: &shared.base_url,
    })
    .into_response())
}

/// The token endpoint's parameters, from the query or, where it lacks one, a form body.
#[derive(Default)]
struct TokenParams {
    grant_type: Option<String>,
    account_id: Option<String>,
}

impl TokenParams {
    fn parse(query: Option<&str>, body: &Bytes) -> Self {
        let mut params = TokenParams::default();
        let sources = [query.unwrap_or("").as_bytes(), body.as_ref()];
        for source in sources {
            for (key, value) in url::form_urlencoded::parse(source) {
                let slot = match key.as_ref() {
                    "grant_type" => &mut params.grant_type,
                    "account_id" => &mut params.account_id,
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
/// app and account, signed with the emulator's key. Unique per issue thanks to `jti`.
fn sign_access_token(
    shared: &Shared,
    client_id: &str,
    account_id: &str,
    lifetime: u64,
) -> Result<String, OAuthError> {
    let now = unix_now();
    let header = json!({ "alg": "HS512", "v": "2.0", "kid": uuid::Uuid::new_v4().to_string() });
    let payload = json!({
        "aud": "https://oauth.zoom.us",
        "iss": format!("zm:cid:{client_id}"),
        "aid": account_id,
        "ver": 10,
        "type": 3,
        "nbf": now,
        "iat": now,
        "exp": now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
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
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "type" if kind.is_none() => kind = Some(value.into_owned()),
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
            return match bearer_account(&shared, &headers) {
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
    match sign_user_token(&shared, &headers, &user_id, endpoint, meeting_id.as_deref()) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(error) => error.into_response(),
    }
}

fn sign_user_token(
    shared: &Shared,
    headers: &HeaderMap,
    user_id: &str,
    endpoint: Endpoint,
    meeting_id: Option<&str>,
) -> Result<String, ApiError> {
    let account_id = bearer_account(shared, headers)?;
    if endpoint == Endpoint::Obf && meeting_id.is_none() {
        return Err(ApiError::MeetingIdRequired);
    }
    let uid = shared
        .lock()
        .find_user(&account_id, user_id)
        .map(|user| user.user_id.clone())
        .ok_or_else(|| ApiError::UserNotFound(user_id.to_string()))?;

    let (kind, lifetime, mid) = match endpoint {
        Endpoint::Obf => ("onbehalf", OBF_LIFETIME_SECONDS, meeting_id),
        Endpoint::Zak | Endpoint::Token => ("zak", ZAK_LIFETIME_SECONDS, None),
    };
    let now = unix_now();
    let claims = UserTokenClaims {
        uid: &uid,
        kind,
        aid: &account_id,
        mid,
        iat: now,
        exp: now + lifetime,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &shared.signing_key)
        .map_err(|_| ApiError::Internal)
}

/// The account of the request's live Bearer access token.
fn bearer_account(shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = auth_param(headers, "bearer").ok_or(ApiError::InvalidAccessToken)?;
    shared
        .lock()
        .tokens
        .get(token)
        .filter(|issued| Instant::now() < issued.expires_at)
        .map(|issued| issued.account_id.clone())
        .ok_or(ApiError::InvalidAccessToken)
}

/// The body of `GET /_emulator/stats`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    token: u64,
    zak: u64,
    obf: u64,
    token_requests_by_account: HashMap<String, u64>,
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
mod tests {
    use std::time::{Duration, Instant};

    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use serde_json::{Value, json};

    use super::{Emulator, EmulatorAccount, Endpoint, Fault, unix_now};

    const ACCOUNT: &str = "acct-1";
    const CLIENT: &str = "client-1";
    const SECRET: &str = "secret-1";
    const OTHER_ACCOUNT: &str = "acct-2";
    const OTHER_CLIENT: &str = "client-2";
    const OTHER_SECRET: &str = "secret-2";

    /// An emulator with two accounts: `acct-1` (users `u1` = me, `u2`) and `acct-2` (`v1`).
    async fn emulator() -> Emulator {
        let emu = Emulator::start().await.expect("the emulator starts");
        emu.add_account(EmulatorAccount {
            account_id: ACCOUNT.into(),
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
        });
        emu.add_account(EmulatorAccount {
            account_id: OTHER_ACCOUNT.into(),
            client_id: OTHER_CLIENT.into(),
            client_secret: OTHER_SECRET.into(),
        });
        emu.add_user(ACCOUNT, "u1", "first@example.com");
        emu.add_user(ACCOUNT, "u2", "Second.User@Example.com");
        emu.add_user(OTHER_ACCOUNT, "v1", "other@example.org");
        emu
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client builds")
    }

    fn token_url(emu: &Emulator, account_id: &str) -> String {
        format!(
            "{}/oauth/token?grant_type=account_credentials&account_id={account_id}",
            emu.base_url()
        )
    }

    async fn request_token(
        http: &reqwest::Client,
        url: &str,
        id: &str,
        secret: &str,
    ) -> reqwest::Response {
        http.post(url)
            .basic_auth(id, Some(secret))
            .send()
            .await
            .expect("the emulator answers")
    }

    /// Status, content type (asserted JSON) and body.
    async fn read(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(content_type, "application/json", "status {status}");
        let body = response.json().await.expect("a JSON body");
        (status, body)
    }

    async fn access_token(emu: &Emulator, http: &reqwest::Client) -> String {
        let response = request_token(http, &token_url(emu, ACCOUNT), CLIENT, SECRET).await;
        let (status, body) = read(response).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    async fn user_token(
        emu: &Emulator,
        http: &reqwest::Client,
        token: &str,
        user: &str,
        query: &str,
    ) -> (u16, Value) {
        let response = http
            .get(format!("{}/users/{user}/token?{query}", emu.api_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("the emulator answers");
        read(response).await
    }

    fn jwt_part(token: &str, index: usize) -> Value {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWT has three parts");
        let bytes = URL_SAFE_NO_PAD
            .decode(parts[index])
            .expect("base64url without padding");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn issues_access_tokens() {
        let emu = emulator().await;
        let http = http();
        assert_eq!(emu.api_url(), format!("{}/v2", emu.base_url()));
        assert!(emu.base_url().starts_with("http://127.0.0.1:"));

        let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
        let (status, body) = read(response).await;
        assert_eq!(status, 200);
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["scope"], "user:read:token:admin user:read:zak:admin");
        assert_eq!(body["api_url"], emu.base_url().as_str());
        let token = body["access_token"].as_str().expect("a token");
        assert_eq!(jwt_part(token, 0)["alg"], "HS512");
        let payload = jwt_part(token, 1);
        assert_eq!(payload["aid"], ACCOUNT);
        let exp = payload["exp"].as_i64().expect("integer exp");
        assert!((exp - unix_now() - 3599).abs() <= 2);

        // Every issue is a different token.
        let again = access_token(&emu, &http).await;
        assert_ne!(again, token);

        // The parameters may also come as a form body.
        let response = http
            .post(format!("{}/oauth/token", emu.base_url()))
            .basic_auth(CLIENT, Some(SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=account_credentials&account_id={ACCOUNT}"
            ))
            .send()
            .await
            .expect("an answer");
        assert_eq!(read(response).await.0, 200);

        emu.set_token_lifetime(120);
        let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
        assert_eq!(read(response).await.1["expires_in"], 120);
    }

    #[tokio::test]
    async fn token_endpoint_refusals_have_zoom_shapes() {
        let emu = emulator().await;
        let http = http();
        let url = token_url(&emu, ACCOUNT);
        let invalid_client = json!({
            "reason": "Invalid client_id or client_secret",
            "error": "invalid_client",
        });

        let no_auth = http.post(&url).send().await.expect("an answer");
        assert_eq!(read(no_auth).await, (400, invalid_client.clone()));
        for header in [
            "Bearer abc",
            "Basic !!!not-base64!!!",
            &format!("Basic {}", STANDARD.encode("no-colon")),
        ] {
            let response = http
                .post(&url)
                .header("authorization", header)
                .send()
                .await
                .expect("an answer");
            assert_eq!(
                read(response).await,
                (400, invalid_client.clone()),
                "{header}"
            );
        }
        let unknown = request_token(&http, &url, "nobody", SECRET).await;
        assert_eq!(read(unknown).await, (400, invalid_client.clone()));
        let wrong_secret = request_token(&http, &url, CLIENT, "wrong").await;
        assert_eq!(read(wrong_secret).await, (400, invalid_client.clone()));
        let others_secret = request_token(&http, &url, CLIENT, OTHER_SECRET).await;
        assert_eq!(read(others_secret).await, (400, invalid_client));

        let unsupported = json!({
            "reason": "unsupported grant type",
            "error": "unsupported_grant_type",
        });
        for query in [
            format!("grant_type=client_credentials&account_id={ACCOUNT}"),
            format!("account_id={ACCOUNT}"),
        ] {
            let url = format!("{}/oauth/token?{query}", emu.base_url());
            let response = request_token(&http, &url, CLIENT, SECRET).await;
            assert_eq!(read(response).await, (400, unsupported.clone()), "{query}");
        }

        let invalid_request = json!({
            "reason": "Invalid request : Bad Request",
            "error": "invalid_request",
        });
        let url = format!(
            "{}/oauth/token?grant_type=account_credentials",
            emu.base_url()
        );
        let missing = request_token(&http, &url, CLIENT, SECRET).await;
        assert_eq!(read(missing).await, (400, invalid_request.clone()));
        let foreign = request_token(&http, &token_url(&emu, OTHER_ACCOUNT), CLIENT, SECRET).await;
        assert_eq!(read(foreign).await, (400, invalid_request));

        // Every call is counted, and by the account it named.
        assert_eq!(emu.calls(Endpoint::Token), 11);
        assert_eq!(emu.token_requests_for(ACCOUNT), 9);
        assert_eq!(emu.token_requests_for(OTHER_ACCOUNT), 1);
        assert_eq!(emu.calls(Endpoint::Zak), 0);
    }

    #[tokio::test]
    async fn issues_zaks_for_users_by_id_email_and_me() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;

        for (user, uid) in [
            ("u2", "u2"),
            ("second.user@example.com", "u2"),
            ("SECOND.USER@EXAMPLE.COM", "u2"),
            ("me", "u1"),
        ] {
            let (status, body) = user_token(&emu, &http, &token, user, "type=zak").await;
            assert_eq!(status, 200, "{user}: {body}");
            let zak = body["token"].as_str().expect("a token");
            assert_eq!(jwt_part(zak, 0)["alg"], "HS256");
            let payload = jwt_part(zak, 1);
            assert_eq!(payload["uid"], uid);
            assert_eq!(payload["type"], "zak");
            let exp = payload["exp"].as_i64().expect("integer exp");
            assert!((exp - unix_now() - 7200).abs() <= 2, "{exp}");
        }
        assert_eq!(emu.calls(Endpoint::Zak), 4);
        assert_eq!(emu.calls(Endpoint::Obf), 0);
    }

    #[tokio::test]
    async fn issues_obf_tokens_with_a_meeting_id() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;

        let (status, body) = user_token(
            &emu,
            &http,
            &token,
            "u1",
            "type=onbehalf&meeting_id=123456789",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let payload = jwt_part(body["token"].as_str().expect("a token"), 1);
        assert_eq!(payload["uid"], "u1");
        assert_eq!(payload["type"], "onbehalf");
        let exp = payload["exp"].as_i64().expect("integer exp");
        assert!((exp - unix_now() - 1800).abs() <= 2, "{exp}");

        let required = json!({
            "code": 300,
            "message": "The meeting_id is required for onbehalf token.",
        });
        for query in ["type=onbehalf", "type=onbehalf&meeting_id="] {
            let answer = user_token(&emu, &http, &token, "u1", query).await;
            assert_eq!(answer, (400, required.clone()), "{query}");
        }
        let invalid_type = json!({ "code": 300, "message": "Invalid type." });
        for query in ["", "type=token", "type=ZAK"] {
            let answer = user_token(&emu, &http, &token, "u1", query).await;
            assert_eq!(answer, (400, invalid_type.clone()), "{query}");
        }
        // A bad type without a valid token is still a 401.
        let answer = user_token(&emu, &http, "nope", "u1", "type=token").await;
        assert_eq!(answer.0, 401);
        assert_eq!(emu.calls(Endpoint::Obf), 3);
        assert_eq!(emu.calls(Endpoint::Zak), 0);
    }

    #[tokio::test]
    async fn refuses_missing_unknown_revoked_and_expired_access_tokens() {
        let emu = emulator().await;
        let http = http();
        let invalid = json!({ "code": 124, "message": "Invalid access token." });

        let response = http
            .get(format!("{}/users/me/token?type=zak", emu.api_url()))
            .send()
            .await
            .expect("an answer");
        assert_eq!(read(response).await, (401, invalid.clone()));
        let answer = user_token(&emu, &http, "a.b.c", "me", "type=zak").await;
        assert_eq!(answer, (401, invalid.clone()));

        let first = access_token(&emu, &http).await;
        let second = access_token(&emu, &http).await;
        assert_eq!(
            user_token(&emu, &http, &first, "me", "type=zak").await.0,
            200
        );
        emu.revoke_all_tokens();
        for token in [&first, &second] {
            let answer = user_token(&emu, &http, token, "me", "type=zak").await;
            assert_eq!(answer, (401, invalid.clone()));
        }
        // A token issued after the revocation works.
        let fresh = access_token(&emu, &http).await;
        assert_eq!(
            user_token(&emu, &http, &fresh, "me", "type=zak").await.0,
            200
        );

        emu.set_token_lifetime(1);
        let short = access_token(&emu, &http).await;
        assert_eq!(
            user_token(&emu, &http, &short, "me", "type=zak").await.0,
            200
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let answer = user_token(&emu, &http, &short, "me", "type=onbehalf&meeting_id=1").await;
        assert_eq!(answer, (401, invalid));
        // Tokens issued before the lifetime changed keep theirs.
        assert_eq!(
            user_token(&emu, &http, &fresh, "me", "type=zak").await.0,
            200
        );
    }

    #[tokio::test]
    async fn revokes_the_tokens_of_one_account() {
        let emu = emulator().await;
        let http = http();
        let mine = access_token(&emu, &http).await;
        let response = request_token(
            &http,
            &token_url(&emu, OTHER_ACCOUNT),
            OTHER_CLIENT,
            OTHER_SECRET,
        )
        .await;
        let theirs = read(response).await.1["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        emu.revoke_tokens_of(ACCOUNT);
        assert_eq!(
            user_token(&emu, &http, &mine, "me", "type=zak").await.0,
            401
        );
        assert_eq!(
            user_token(&emu, &http, &theirs, "me", "type=zak").await.0,
            200
        );
    }

    #[tokio::test]
    async fn users_outside_the_tokens_account_do_not_exist() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;

        for user in ["nobody", "v1", "other@example.org"] {
            let answer = user_token(&emu, &http, &token, user, "type=zak").await;
            let expected = json!({
                "code": 1001,
                "message": format!("User does not exist: {user}."),
            });
            assert_eq!(answer, (404, expected), "{user}");
        }
        // An account without users has no `me`.
        emu.add_account(EmulatorAccount {
            account_id: "empty".into(),
            client_id: "client-empty".into(),
            client_secret: "s".into(),
        });
        let response = request_token(&http, &token_url(&emu, "empty"), "client-empty", "s").await;
        let empty = read(response).await.1["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        let answer = user_token(&emu, &http, &empty, "me", "type=zak").await;
        assert_eq!(answer.0, 404);
        assert_eq!(answer.1["message"], "User does not exist: me.");

        assert_eq!(emu.users_of(ACCOUNT).len(), 2);
        assert_eq!(emu.users_of(ACCOUNT)[0].user_id, "u1");
        assert!(emu.users_of("empty").is_empty());
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        let emu = emulator().await;
        let http = http();
        let response = http
            .get(format!("{}/v2/meetings/1", emu.base_url()))
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            read(response).await,
            (404, json!({ "code": 404, "message": "Not found" }))
        );
        let response = http
            .get(format!("{}/oauth/token", emu.base_url()))
            .send()
            .await
            .expect("an answer");
        assert_eq!(read(response).await.0, 405);
    }

    #[tokio::test]
    async fn status_faults_answer_in_each_endpoints_shape() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;

        emu.inject(Endpoint::Token, Fault::Status(503), Some(1));
        let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
        assert_eq!(
            read(response).await,
            (
                503,
                json!({ "reason": "Service Unavailable", "error": "server_error" })
            )
        );

        emu.inject(Endpoint::Zak, Fault::Status(500), Some(1));
        let answer = user_token(&emu, &http, &token, "me", "type=zak").await;
        assert_eq!(
            answer,
            (
                500,
                json!({ "code": 500, "message": "Internal Server Error" })
            )
        );

        // A fault of one endpoint leaves the others alone.
        emu.inject(Endpoint::Obf, Fault::Status(502), None);
        assert_eq!(
            user_token(&emu, &http, &token, "me", "type=zak").await.0,
            200
        );
        assert!(access_token(&emu, &http).await.len() > 10);
        let query = "type=onbehalf&meeting_id=9";
        assert_eq!(user_token(&emu, &http, &token, "me", query).await.0, 502);
        assert_eq!(user_token(&emu, &http, &token, "me", query).await.0, 502);
        emu.clear_faults();
        assert_eq!(user_token(&emu, &http, &token, "me", query).await.0, 200);

        // Faulted requests are counted too.
        assert_eq!(emu.calls(Endpoint::Token), 3);
        assert_eq!(emu.calls(Endpoint::Zak), 2);
        assert_eq!(emu.calls(Endpoint::Obf), 3);
    }

    #[tokio::test]
    async fn rate_limit_faults_carry_retry_after() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;
        let body = json!({
            "code": 429,
            "message": "You have reached the maximum per-second rate limit for this API. Try again later.",
        });

        for endpoint in [Endpoint::Zak, Endpoint::Token] {
            emu.inject(
                endpoint,
                Fault::RateLimited {
                    retry_after_seconds: 7,
                },
                Some(1),
            );
        }
        let response = http
            .get(format!("{}/users/me/token?type=zak", emu.api_url()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.headers()["retry-after"], "7");
        assert_eq!(read(response).await, (429, body.clone()));

        let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
        assert_eq!(response.headers()["retry-after"], "7");
        assert_eq!(read(response).await, (429, body));
    }

    #[tokio::test]
    async fn delay_faults_answer_normally_late() {
        let emu = emulator().await;
        let http = http();
        emu.inject(
            Endpoint::Token,
            Fault::Delay(Duration::from_millis(300)),
            Some(1),
        );
        let started = Instant::now();
        let token = access_token(&emu, &http).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(!token.is_empty());

        let started = Instant::now();
        access_token(&emu, &http).await;
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    #[tokio::test]
    async fn hang_faults_never_answer_and_do_not_block_shutdown() {
        let emu = emulator().await;
        let quick = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .expect("a client builds");
        emu.inject(Endpoint::Token, Fault::Hang, None);
        let error = quick
            .post(token_url(&emu, ACCOUNT))
            .basic_auth(CLIENT, Some(SECRET))
            .send()
            .await
            .expect_err("a hung request times out");
        assert!(error.is_timeout(), "{error}");

        // A request still held when the emulator stops is released and the server goes away.
        let url = token_url(&emu, ACCOUNT);
        let held = tokio::spawn(async move {
            http()
                .post(url)
                .basic_auth(CLIENT, Some(SECRET))
                .send()
                .await
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while emu.calls(Endpoint::Token) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(emu.calls(Endpoint::Token), 2);
        let base_url = emu.base_url();
        let started = Instant::now();
        emu.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let held = held.await.expect("the task completes");
        if let Ok(response) = held {
            assert_eq!(response.status().as_u16(), 503);
        }
        let after = http().post(format!("{base_url}/oauth/token")).send().await;
        assert!(after.is_err(), "the port is closed after shutdown");
    }

    #[tokio::test]
    async fn dropping_the_emulator_stops_it() {
        let emu = emulator().await;
        emu.inject(Endpoint::Token, Fault::Hang, None);
        let url = token_url(&emu, ACCOUNT);
        let held = tokio::spawn(async move {
            http()
                .post(url)
                .basic_auth(CLIENT, Some(SECRET))
                .send()
                .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let base_url = emu.base_url();
        drop(emu);
        tokio::time::timeout(Duration::from_secs(2), held)
            .await
            .expect("the held request is released")
            .expect("the task completes")
            .ok();
        let mut closed = false;
        for _ in 0..20 {
            if http().get(&base_url).send().await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(closed, "the port is closed after drop");
    }

    #[tokio::test]
    async fn faults_are_used_up_in_order() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;
        emu.inject(Endpoint::Zak, Fault::Status(500), Some(2));
        emu.inject(Endpoint::Zak, Fault::Status(0), Some(0));
        emu.inject(
            Endpoint::Zak,
            Fault::RateLimited {
                retry_after_seconds: 1,
            },
            Some(1),
        );
        emu.inject(Endpoint::Zak, Fault::Status(503), Some(1));
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(user_token(&emu, &http, &token, "me", "type=zak").await.0);
        }
        assert_eq!(statuses, [500, 500, 429, 503, 200]);

        // An endless fault shadows the ones after it until cleared.
        emu.inject(Endpoint::Zak, Fault::Status(502), None);
        emu.inject(Endpoint::Zak, Fault::Status(504), Some(1));
        for _ in 0..3 {
            assert_eq!(
                user_token(&emu, &http, &token, "me", "type=zak").await.0,
                502
            );
        }
        emu.clear_faults();
        assert_eq!(
            user_token(&emu, &http, &token, "me", "type=zak").await.0,
            200
        );
        assert_eq!(emu.calls(Endpoint::Zak), 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn counts_concurrent_calls_exactly() {
        let emu = emulator().await;
        let http = http();
        let token = access_token(&emu, &http).await;
        emu.reset_calls();
        assert_eq!(emu.calls(Endpoint::Token), 0);
        assert_eq!(emu.token_requests_for(ACCOUNT), 0);
        emu.inject(Endpoint::Token, Fault::Status(500), Some(10));

        let mut tasks = Vec::new();
        for i in 0..50 {
            let http = http.clone();
            let token_url = token_url(&emu, ACCOUNT);
            let api = format!("{}/users/me/token", emu.api_url());
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let token_status = http
                    .post(token_url)
                    .basic_auth(CLIENT, Some(SECRET))
                    .send()
                    .await
                    .expect("an answer")
                    .status()
                    .as_u16();
                let query = if i % 2 == 0 {
                    "type=zak".to_string()
                } else {
                    format!("type=onbehalf&meeting_id={i}")
                };
                let user_status = http
                    .get(format!("{api}?{query}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("an answer")
                    .status()
                    .as_u16();
                (token_status, user_status)
            }));
        }
        let mut token_statuses = Vec::new();
        for task in tasks {
            let (token_status, user_status) = task.await.expect("the task completes");
            token_statuses.push(token_status);
            assert_eq!(user_status, 200);
        }
        assert_eq!(token_statuses.iter().filter(|s| **s == 500).count(), 10);
        assert_eq!(token_statuses.iter().filter(|s| **s == 200).count(), 40);
        assert_eq!(emu.calls(Endpoint::Token), 50);
        assert_eq!(emu.token_requests_for(ACCOUNT), 50);
        assert_eq!(emu.calls(Endpoint::Zak), 25);
        assert_eq!(emu.calls(Endpoint::Obf), 25);
        emu.shutdown().await;
    }

    /// `GET /_emulator/stats` as (status, body).
    async fn stats(emu: &Emulator, http: &reqwest::Client) -> (u16, Value) {
        let response = http
            .get(format!("{}/_emulator/stats", emu.base_url()))
            .send()
            .await
            .expect("an answer");
        read(response).await
    }

    #[tokio::test]
    async fn stats_route_reports_the_call_counts() {
        let emu = emulator().await;
        let http = http();
        let zero = json!({ "token": 0, "zak": 0, "obf": 0, "tokenRequestsByAccount": {} });
        assert_eq!(stats(&emu, &http).await, (200, zero.clone()));

        let token = access_token(&emu, &http).await;
        access_token(&emu, &http).await;
        // Refused requests count, by the account they named.
        let foreign = request_token(&http, &token_url(&emu, OTHER_ACCOUNT), CLIENT, "wrong").await;
        assert_eq!(foreign.status().as_u16(), 400);
        for _ in 0..3 {
            assert_eq!(
                user_token(&emu, &http, &token, "me", "type=zak").await.0,
                200
            );
        }
        let query = "type=onbehalf&meeting_id=123456789";
        assert_eq!(user_token(&emu, &http, &token, "u2", query).await.0, 200);
        // Neither ZAK nor OBF.
        assert_eq!(
            user_token(&emu, &http, &token, "me", "type=token").await.0,
            400
        );

        let expected = json!({
            "token": 3,
            "zak": 3,
            "obf": 1,
            "tokenRequestsByAccount": { ACCOUNT: 2, OTHER_ACCOUNT: 1 },
        });
        assert_eq!(stats(&emu, &http).await, (200, expected.clone()));
        // The same figures as the in-process API.
        assert_eq!(emu.calls(Endpoint::Token), 3);
        assert_eq!(emu.calls(Endpoint::Zak), 3);
        assert_eq!(emu.calls(Endpoint::Obf), 1);
        assert_eq!(emu.token_requests_for(ACCOUNT), 2);
        assert_eq!(emu.token_requests_for(OTHER_ACCOUNT), 1);

        // The route is not counted, takes no faults and answers only GET.
        for endpoint in [Endpoint::Token, Endpoint::Zak, Endpoint::Obf] {
            emu.inject(endpoint, Fault::Status(503), None);
        }
        assert_eq!(stats(&emu, &http).await, (200, expected.clone()));
        assert_eq!(stats(&emu, &http).await, (200, expected));
        let response = http
            .post(format!("{}/_emulator/stats", emu.base_url()))
            .send()
            .await
            .expect("an answer");
        assert_eq!(read(response).await.0, 405);
        assert_eq!(emu.calls(Endpoint::Token), 3);

        emu.reset_calls();
        assert_eq!(stats(&emu, &http).await, (200, zero));
    }

    #[test]
    fn account_debug_hides_the_secret() {
        let account = EmulatorAccount {
            account_id: "a".into(),
            client_id: "c".into(),
            client_secret: "very-secret".into(),
        };
        assert!(!format!("{account:?}").contains("very-secret"));
    }
}
