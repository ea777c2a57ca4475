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
}

/// How many [`Endpoint`]s there are.
const ENDPOINTS: usize = 6;

impl Endpoint {
    fn index(self) -> usize {
        match self {
            Endpoint::Token => 0,
            Endpoint::Zak => 1,
            Endpoint::Obf => 2,
            Endpoint::Refresh => 3,
            Endpoint::Code => 4,
            Endpoint::User => 5,
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
            state: Mutex::new(ZoomState {
                token_lifetime: DEFAULT_TOKEN_LIFETIME_SECONDS,
                user_token_lifetime: DEFAULT_USER_TOKEN_LIFETIME_SECONDS,
                ..ZoomState::default()
            }),
        });
        let router = Router::new()
            .route("/oauth/token", post(issue_access_token))
            .route("/oauth/authorize", get(authorize))
            .route("/v2/users/{user_id}", get(describe_user))
            .route("/v2/users/me/zak", get(issue_own_zak))
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
            },
        );
    }

    /// The user who consents at `/oauth/authorize` from now on, whatever the app (tests set it
    /// before the browser step): a user ID or email of any account (user IDs are taken to be
    /// unique across accounts). Until set, the first user ever added. A user who does not exist
    /// "declines": the redirect carries `error=access_denied`.
    pub fn set_consenting_user(&self, user_id: &str) {
        self.shared.lock().consenting_user = Some(user_id.to_string());
    }

    /// `expires_in` of user access tokens issued from now on.
    pub fn set_user_token_lifetime(&self, seconds: u64) {
        self.shared.lock().user_token_lifetime = seconds;
    }

    /// The user removes the app `client_id`, as Zoom has done by the time it sends
    /// `app_deauthorized`: that user's unused codes, refresh tokens (then `invalid_grant`) and
    /// user access tokens (then 401, code 124) of that app stop working.
    pub fn deauthorize(&self, user_id: &str, client_id: &str) {
        let mut state = self.shared.lock();
        let of_theirs =
            |grant: &UserGrant| grant.user_id == user_id && grant.client_id == client_id;
        state.codes.retain(|_, code| !of_theirs(&code.grant));
        state
            .refresh_tokens
            .retain(|_, refresh| !of_theirs(&refresh.grant));
        state
            .tokens
            .retain(|_, issued| !issued.user.as_ref().is_some_and(of_theirs));
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
    calls: [AtomicU64; ENDPOINTS],
    /// See [`Emulator::refused_tokens`].
    refused_tokens: AtomicU64,
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
        api_url: &shared.base_url,
    })
    .into_response())
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
                    "code" => &mut params.code,
                    "redirect_uri" => &mut params.redirect_uri,
                    "refresh_token" => &mut params.refresh_token,
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
        shared
            .lock()
            .tokens
            .get(token)
            .filter(|issued| Instant::now() < issued.expires_at)
            .map(|issued| Bearer {
                account_id: issued.account_id.clone(),
                user_id: issued.user.as_ref().map(|grant| grant.user_id.clone()),
            })
    });
    if holder.is_none() {
        shared.refused_tokens.fetch_add(1, Ordering::SeqCst);
    }
    holder.ok_or(ApiError::InvalidAccessToken)
}

/// `GET /v2/users/me/zak`: the ZAK of the token's user (for an S2S token, the account's first
/// user). Counted, and faulted, as [`Endpoint::Zak`].
async fn issue_own_zak(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.count(Endpoint::Zak);
    let fault = shared.lock().next_fault(Endpoint::Zak);
    if let Some(response) = apply_fault(&shared, fault, Shape::Api).await {
        return response;
    }
    match sign_user_token(&shared, &headers, "me", Endpoint::Zak, None) {
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
mod tests {
    use std::time::{Duration, Instant};

    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use serde_json::{Value, json};

    use super::{
        Emulator, EmulatorAccount, EmulatorOAuthApp, Endpoint, Fault, parse_user_spec,
        rfc3339_millis, unix_now,
    };

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
        assert!(
            (exp - unix_now() - super::OBF_LIFETIME_SECONDS).abs() <= 2,
            "{exp}"
        );

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

        // Injected for one request: used up, so the next one is answered without a delay.
        let queued = emu
            .shared
            .lock()
            .faults
            .get(&Endpoint::Token)
            .map_or(0, std::collections::VecDeque::len);
        assert_eq!(queued, 0);
        assert!(!access_token(&emu, &http).await.is_empty());
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
        // A shutdown that waited on the hung request would never end.
        tokio::time::timeout(Duration::from_secs(30), emu.shutdown())
            .await
            .expect("the shutdown does not wait for a hung request");
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
        let zero = json!({
            "token": 0,
            "zak": 0,
            "obf": 0,
            "tokenRequestsByAccount": {},
            "refusedTokens": 0,
        });
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
        // Refused tokens: an unknown one, and an expired one (on a ZAK and a profile call).
        assert_eq!(
            user_token(&emu, &http, "not-a-token", "me", "type=zak")
                .await
                .0,
            401
        );
        emu.set_token_lifetime(1);
        let short = access_token(&emu, &http).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            user_token(&emu, &http, &short, "me", "type=zak").await.0,
            401
        );
        assert_eq!(api_get(&emu, &http, &short, "users/me").await.0, 401);
        assert_eq!(emu.refused_tokens(), 3);

        let expected = json!({
            "token": 4,
            "zak": 5,
            "obf": 1,
            "tokenRequestsByAccount": { ACCOUNT: 3, OTHER_ACCOUNT: 1 },
            "refusedTokens": 3,
        });
        assert_eq!(stats(&emu, &http).await, (200, expected.clone()));
        // The same figures as the in-process API.
        assert_eq!(emu.calls(Endpoint::Token), 4);
        assert_eq!(emu.calls(Endpoint::Zak), 5);
        assert_eq!(emu.calls(Endpoint::Obf), 1);
        assert_eq!(emu.token_requests_for(ACCOUNT), 3);
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
        assert_eq!(emu.calls(Endpoint::Token), 4);

        emu.reset_calls();
        assert_eq!(stats(&emu, &http).await, (200, zero));
        assert_eq!(emu.refused_tokens(), 0);
    }

    #[test]
    fn parses_the_command_line_forms_of_accounts_and_users() {
        let account: EmulatorAccount = "acct:client:sec:ret".parse().expect("an account");
        assert_eq!(
            (
                account.account_id.as_str(),
                account.client_id.as_str(),
                account.client_secret.as_str()
            ),
            ("acct", "client", "sec:ret")
        );
        // The error is always the same words: it never shows the input, which holds a secret.
        for bad in [
            "",
            "acct",
            "acct:client",
            "acct::secret",
            ":client:secret",
            "a:c:",
        ] {
            assert_eq!(
                bad.parse::<EmulatorAccount>().map(|_| ()),
                Err("expected ACCOUNT_ID:CLIENT_ID:SECRET, none of them empty".to_string()),
                "{bad:?}"
            );
        }

        assert_eq!(
            parse_user_spec("u1:one@example.com"),
            Some((None, "u1", "one@example.com"))
        );
        assert_eq!(
            parse_user_spec("acct-2:v1:v@example.org"),
            Some((Some("acct-2"), "v1", "v@example.org"))
        );
        for bad in ["", "u1", "u1:", ":e@x", "a:u1:", ":u1:e@x", "a:b:c:d"] {
            assert_eq!(parse_user_spec(bad), None, "{bad:?}");
        }
    }

    const APP: &str = "oauth-client";
    const APP_SECRET: &str = "oauth-secret";
    const REDIRECT: &str = "https://ztv.example.com/v1/oauth/callback";
    const OTHER_APP: &str = "oauth-client-2";
    const OTHER_APP_SECRET: &str = "oauth-secret-2";

    /// [`emulator`] with two user-managed OAuth apps of the same redirect URI.
    async fn oauth_emulator() -> Emulator {
        let emu = emulator().await;
        for (client_id, client_secret) in [(APP, APP_SECRET), (OTHER_APP, OTHER_APP_SECRET)] {
            emu.add_oauth_app(EmulatorOAuthApp {
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                redirect_uri: REDIRECT.into(),
            });
        }
        emu
    }

    /// A client that shows redirects instead of following them.
    fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client builds")
    }

    /// `GET /oauth/authorize` with this query.
    async fn authorize_raw(emu: &Emulator, query: &str) -> reqwest::Response {
        browser()
            .get(format!("{}/oauth/authorize?{query}", emu.base_url()))
            .send()
            .await
            .expect("an answer")
    }

    /// The query pairs of a 302's `Location`, asserted to be under `REDIRECT`.
    fn redirected(response: &reqwest::Response) -> Vec<(String, String)> {
        assert_eq!(response.status().as_u16(), 302);
        let location = response.headers()["location"]
            .to_str()
            .expect("an ASCII location");
        let (base, query) = location.split_once('?').expect("a query");
        assert_eq!(base, REDIRECT);
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    /// A fresh authorization code of `client_id` for the consenting user.
    async fn code_for(emu: &Emulator, client_id: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "st")
            .finish();
        let response = authorize_raw(emu, &query).await;
        let pairs = redirected(&response);
        assert_eq!(pairs[0].0, "code", "{pairs:?}");
        assert_eq!(pairs[1], ("state".to_string(), "st".to_string()));
        pairs[0].1.clone()
    }

    /// `POST /oauth/token` with a form body, authenticated as `client_id`.
    async fn grant(
        emu: &Emulator,
        http: &reqwest::Client,
        (client_id, secret): (&str, &str),
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let response = http
            .post(format!("{}/oauth/token", emu.base_url()))
            .basic_auth(client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("an answer");
        read(response).await
    }

    async fn exchange(emu: &Emulator, http: &reqwest::Client, code: &str) -> (u16, Value) {
        let params = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        grant(emu, http, (APP, APP_SECRET), &params).await
    }

    async fn refresh(emu: &Emulator, http: &reqwest::Client, token: &str) -> (u16, Value) {
        let params = [("grant_type", "refresh_token"), ("refresh_token", token)];
        grant(emu, http, (APP, APP_SECRET), &params).await
    }

    /// The access and refresh tokens of a successful grant.
    fn tokens(answer: (u16, Value)) -> (String, String) {
        let (status, body) = answer;
        assert_eq!(status, 200, "{body}");
        let field = |name: &str| body[name].as_str().expect("a token").to_string();
        (field("access_token"), field("refresh_token"))
    }

    /// `GET {api_url}/{path}` with a Bearer token.
    async fn api_get(
        emu: &Emulator,
        http: &reqwest::Client,
        token: &str,
        path: &str,
    ) -> (u16, Value) {
        let response = http
            .get(format!("{}/{path}", emu.api_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("an answer");
        read(response).await
    }

    fn invalid_code() -> Value {
        json!({ "reason": "Invalid authorization code", "error": "invalid_grant" })
    }

    fn invalid_refresh_token() -> Value {
        json!({ "reason": "Invalid Token!", "error": "invalid_grant" })
    }

    #[tokio::test]
    async fn runs_the_authorization_code_flow() {
        let emu = oauth_emulator().await;
        let http = http();

        // The state comes back exactly as given, however it has to be encoded.
        let state = "a b&c=d/é";
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", APP)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", state)
            .finish();
        let response = authorize_raw(&emu, &query).await;
        let pairs = redirected(&response);
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert_eq!(pairs[0].0, "code");
        assert_eq!(pairs[1], ("state".to_string(), state.to_string()));
        let code = &pairs[0].1;
        assert!(code.len() >= 32, "{code}");

        let (status, body) = exchange(&emu, &http, code).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["scope"], "user:read:zak user:read:token");
        let access = body["access_token"].as_str().expect("a token");
        let refresh_token = body["refresh_token"].as_str().expect("a refresh token");
        assert_ne!(access, refresh_token);
        let payload = jwt_part(access, 1);
        assert_eq!(payload["uid"], "u1");
        assert_eq!(payload["aid"], ACCOUNT);
        let exp = payload["exp"].as_i64().expect("integer exp");
        assert!((exp - unix_now() - 3599).abs() <= 2);

        // The token is bound to the consenting user: by default the first user ever added.
        let me = json!({
            "id": "u1",
            "email": "first@example.com",
            "account_id": ACCOUNT,
            "first_name": "First",
            "last_name": "",
            "type": 1,
        });
        assert_eq!(
            api_get(&emu, &http, access, "users/me").await,
            (200, me.clone())
        );
        assert_eq!(api_get(&emu, &http, access, "users/u1").await, (200, me));
        let (status, body) = api_get(&emu, &http, access, "users/me/zak").await;
        assert_eq!(status, 200, "{body}");
        let zak = jwt_part(body["token"].as_str().expect("a ZAK"), 1);
        assert_eq!(zak["uid"], "u1");
        assert_eq!(zak["type"], "zak");
        let exp = zak["exp"].as_i64().expect("integer exp");
        assert!((exp - unix_now() - 7200).abs() <= 2, "{exp}");
        let query = "type=onbehalf&meeting_id=123456789";
        let (status, body) = user_token(&emu, &http, access, "me", query).await;
        assert_eq!(status, 200, "{body}");
        let obf = jwt_part(body["token"].as_str().expect("an OBF token"), 1);
        assert_eq!(
            (&obf["uid"], &obf["type"]),
            (&json!("u1"), &json!("onbehalf"))
        );
        for user in ["u1", "FIRST@example.com"] {
            assert_eq!(
                user_token(&emu, &http, access, user, "type=zak").await.0,
                200
            );
        }
        // A user token reaches only its own user, even within its account.
        for user in ["u2", "second.user@example.com", "v1"] {
            let expected =
                json!({ "code": 1001, "message": format!("User does not exist: {user}.") });
            assert_eq!(
                user_token(&emu, &http, access, user, "type=zak").await,
                (404, expected.clone())
            );
            assert_eq!(
                api_get(&emu, &http, access, &format!("users/{user}")).await,
                (404, expected)
            );
        }

        // A user of another account, with a shorter token lifetime.
        emu.set_consenting_user("other@example.org");
        emu.set_user_token_lifetime(60);
        let (status, body) = exchange(&emu, &http, &code_for(&emu, APP).await).await;
        assert_eq!((status, &body["expires_in"]), (200, &json!(60)), "{body}");
        let theirs = body["access_token"].as_str().expect("a token");
        let (status, body) = api_get(&emu, &http, theirs, "users/me").await;
        assert_eq!(status, 200);
        assert_eq!(
            (&body["id"], &body["account_id"]),
            (&json!("v1"), &json!(OTHER_ACCOUNT))
        );
        assert_eq!(body["first_name"], "Other");
        let (status, body) = api_get(&emu, &http, theirs, "users/me/zak").await;
        assert_eq!(status, 200);
        assert_eq!(
            jwt_part(body["token"].as_str().expect("a ZAK"), 1)["uid"],
            "v1"
        );

        // S2S tokens keep working, `me` being the account's first user; the profile route
        // reaches every user of the account.
        let s2s = access_token(&emu, &http).await;
        let (status, body) = api_get(&emu, &http, &s2s, "users/me").await;
        assert_eq!((status, &body["id"]), (200, &json!("u1")));
        let (status, body) = api_get(&emu, &http, &s2s, "users/second.user@example.com").await;
        assert_eq!((status, &body["id"]), (200, &json!("u2")));
        assert_eq!(
            (&body["first_name"], &body["last_name"]),
            (&json!("Second"), &json!("User"))
        );
        assert_eq!(api_get(&emu, &http, &s2s, "users/v1").await.0, 404);
        let (status, body) = api_get(&emu, &http, &s2s, "users/me/zak").await;
        assert_eq!(status, 200);
        assert_eq!(
            jwt_part(body["token"].as_str().expect("a ZAK"), 1)["uid"],
            "u1"
        );
        assert_eq!(user_token(&emu, &http, &s2s, "u2", "type=zak").await.0, 200);

        assert_eq!(emu.calls(Endpoint::Code), 2);
        assert_eq!(emu.calls(Endpoint::Refresh), 0);
        assert_eq!(emu.calls(Endpoint::Token), 3);
        assert_eq!(emu.calls(Endpoint::User), 9);
        assert_eq!(emu.calls(Endpoint::Zak), 9);
        assert_eq!(emu.calls(Endpoint::Obf), 1);
    }

    #[tokio::test]
    async fn authorize_refuses_unknown_apps_and_foreign_redirect_uris() {
        let emu = oauth_emulator().await;
        let invalid_redirect =
            json!({ "reason": "Invalid redirect uri", "error": "invalid_request" });
        let with = |client_id: &str, redirect_uri: Option<&str>| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", client_id);
            if let Some(uri) = redirect_uri {
                query.append_pair("redirect_uri", uri);
            }
            query.append_pair("state", "s").finish()
        };
        for query in [
            with(APP, Some("https://evil.example.com/cb")),
            with(APP, Some(&format!("{REDIRECT}/"))),
            with(APP, None),
        ] {
            let answer = read(authorize_raw(&emu, &query).await).await;
            assert_eq!(answer, (400, invalid_redirect.clone()), "{query}");
        }
        let unknown = json!({ "reason": "Invalid client_id", "error": "invalid_client" });
        for query in [with("nobody", Some(REDIRECT)), with(CLIENT, Some(REDIRECT))] {
            assert_eq!(
                read(authorize_raw(&emu, &query).await).await,
                (400, unknown.clone())
            );
        }
        let query = format!("response_type=code&redirect_uri={REDIRECT}");
        assert_eq!(
            read(authorize_raw(&emu, &query).await).await,
            (400, unknown)
        );

        // Errors the app may hear go back to it, with the state.
        let query = format!("response_type=token&client_id={APP}&redirect_uri={REDIRECT}&state=s");
        let pairs = redirected(&authorize_raw(&emu, &query).await);
        assert_eq!(
            pairs,
            [
                ("error".into(), "unsupported_response_type".into()),
                ("state".into(), "s".into())
            ]
        );
        emu.set_consenting_user("nobody");
        let query = format!("response_type=code&client_id={APP}&redirect_uri={REDIRECT}");
        let pairs = redirected(&authorize_raw(&emu, &query).await);
        assert_eq!(pairs, [("error".to_string(), "access_denied".to_string())]);

        // Without a state, none comes back.
        emu.set_consenting_user("u2");
        let pairs = redirected(&authorize_raw(&emu, &query).await);
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].0, "code");
        let http = http();
        let (access, _) = tokens(exchange(&emu, &http, &pairs[0].1).await);
        let (status, body) = api_get(&emu, &http, &access, "users/me").await;
        assert_eq!((status, &body["id"]), (200, &json!("u2")));

        // Only GET.
        let response = browser()
            .post(format!("{}/oauth/authorize?{query}", emu.base_url()))
            .send()
            .await
            .expect("an answer");
        assert_eq!(read(response).await.0, 405);
    }

    #[tokio::test]
    async fn authorization_codes_are_single_use_and_bound_to_app_and_redirect_uri() {
        let emu = oauth_emulator().await;
        let http = http();
        let code = code_for(&emu, APP).await;

        // Refused exchanges leave the code as it was.
        let wrong_redirect = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://evil.example.com/cb"),
        ];
        let answer = grant(&emu, &http, (APP, APP_SECRET), &wrong_redirect).await;
        assert_eq!(answer, (400, invalid_code()));
        let no_redirect = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ];
        let answer = grant(&emu, &http, (APP, APP_SECRET), &no_redirect).await;
        assert_eq!(answer, (400, invalid_code()));
        let right = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        let answer = grant(&emu, &http, (OTHER_APP, OTHER_APP_SECRET), &right).await;
        assert_eq!(answer, (400, invalid_code()), "another app's code");
        let invalid_client = json!({
            "reason": "Invalid client_id or client_secret",
            "error": "invalid_client",
        });
        let answer = grant(&emu, &http, (APP, "wrong"), &right).await;
        assert_eq!(answer, (400, invalid_client));
        let unsupported =
            json!({ "reason": "unsupported grant type", "error": "unsupported_grant_type" });
        let answer = grant(&emu, &http, (CLIENT, SECRET), &right).await;
        assert_eq!(
            answer,
            (400, unsupported.clone()),
            "an S2S app has no codes"
        );

        // The parameters may also come in the query string.
        let url = url::Url::parse_with_params(&format!("{}/oauth/token", emu.base_url()), right)
            .expect("a URL");
        let response = http
            .post(url.as_str())
            .basic_auth(APP, Some(APP_SECRET))
            .send()
            .await
            .expect("an answer");
        let (status, body) = read(response).await;
        assert_eq!(status, 200, "{body}");

        // Used once, never again.
        assert_eq!(exchange(&emu, &http, &code).await, (400, invalid_code()));
        assert_eq!(
            exchange(&emu, &http, "made-up").await,
            (400, invalid_code())
        );
        let missing = [
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
        ];
        let answer = grant(&emu, &http, (APP, APP_SECRET), &missing).await;
        assert_eq!(answer, (400, invalid_code()));
        // An OAuth app cannot use the S2S grant.
        let s2s = [
            ("grant_type", "account_credentials"),
            ("account_id", ACCOUNT),
        ];
        let answer = grant(&emu, &http, (APP, APP_SECRET), &s2s).await;
        assert_eq!(answer, (400, unsupported));

        // Each code of an app works once, whichever app.
        let theirs = code_for(&emu, OTHER_APP).await;
        let params = [
            ("grant_type", "authorization_code"),
            ("code", theirs.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        assert_eq!(
            grant(&emu, &http, (OTHER_APP, OTHER_APP_SECRET), &params)
                .await
                .0,
            200
        );
        assert_eq!(exchange(&emu, &http, &theirs).await, (400, invalid_code()));

        assert_eq!(emu.calls(Endpoint::Code), 11);
        assert_eq!(emu.calls(Endpoint::Token), 12);
        assert_eq!(emu.calls(Endpoint::Refresh), 0);
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_and_are_single_use() {
        let emu = oauth_emulator().await;
        let http = http();
        let (first_access, first_refresh) =
            tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);

        let (status, body) = refresh(&emu, &http, &first_refresh).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["scope"], "user:read:zak user:read:token");
        let (second_access, second_refresh) = tokens((status, body));
        assert_ne!(second_access, first_access);
        assert_ne!(second_refresh, first_refresh);
        let (status, me) = api_get(&emu, &http, &second_access, "users/me").await;
        assert_eq!((status, &me["id"]), (200, &json!("u1")));
        // The access token issued before a refresh lives out its life.
        assert_eq!(api_get(&emu, &http, &first_access, "users/me").await.0, 200);

        // The used refresh token is gone; the new one works once.
        assert_eq!(
            refresh(&emu, &http, &first_refresh).await,
            (400, invalid_refresh_token())
        );
        let other_app = [
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh.as_str()),
        ];
        let answer = grant(&emu, &http, (OTHER_APP, OTHER_APP_SECRET), &other_app).await;
        assert_eq!(
            answer,
            (400, invalid_refresh_token()),
            "another app's refresh token"
        );
        let (_, third_refresh) = tokens(refresh(&emu, &http, &second_refresh).await);
        assert_eq!(
            refresh(&emu, &http, &second_refresh).await,
            (400, invalid_refresh_token())
        );
        let missing = [("grant_type", "refresh_token")];
        let answer = grant(&emu, &http, (APP, APP_SECRET), &missing).await;
        assert_eq!(answer, (400, invalid_refresh_token()));

        // In the query string too.
        let url = format!(
            "{}/oauth/token?grant_type=refresh_token&refresh_token={third_refresh}",
            emu.base_url()
        );
        let answer = read(request_token(&http, &url, APP, APP_SECRET).await).await;
        assert_eq!(answer.0, 200, "{}", answer.1);

        assert_eq!(emu.calls(Endpoint::Refresh), 7);
        assert_eq!(emu.calls(Endpoint::Code), 1);
        assert_eq!(emu.calls(Endpoint::Token), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
        let emu = oauth_emulator().await;
        let http = http();
        let (_, refresh_token) = tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
        emu.reset_calls();

        let mut tasks = Vec::new();
        for _ in 0..50 {
            let http = http.clone();
            let url = format!("{}/oauth/token", emu.base_url());
            let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
            tasks.push(tokio::spawn(async move {
                let response = http
                    .post(url)
                    .basic_auth(APP, Some(APP_SECRET))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .expect("an answer");
                read(response).await
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (status, body) = task.await.expect("the task completes");
            match status {
                200 => winners.push(body),
                _ => assert_eq!((status, body), (400, invalid_refresh_token())),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(emu.calls(Endpoint::Refresh), 50);
        assert_eq!(emu.calls(Endpoint::Token), 50);
        assert_eq!(emu.calls(Endpoint::Code), 0);

        // The winner's refresh token carries on.
        let next = winners[0]["refresh_token"]
            .as_str()
            .expect("a refresh token");
        assert_eq!(refresh(&emu, &http, next).await.0, 200);
        emu.shutdown().await;
    }

    #[tokio::test]
    async fn user_tokens_are_revoked_expire_and_end_with_deauthorization() {
        let emu = oauth_emulator().await;
        let http = http();
        let invalid = json!({ "code": 124, "message": "Invalid access token." });
        let (access, refresh_token) =
            tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
        let s2s = access_token(&emu, &http).await;

        // Revoking all access tokens spares the refresh tokens.
        emu.revoke_all_tokens();
        for path in ["users/me", "users/me/zak", "users/me/token?type=zak"] {
            assert_eq!(
                api_get(&emu, &http, &access, path).await,
                (401, invalid.clone()),
                "{path}"
            );
            assert_eq!(
                api_get(&emu, &http, &s2s, path).await,
                (401, invalid.clone()),
                "{path}"
            );
        }
        let (access, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
        assert_eq!(api_get(&emu, &http, &access, "users/me/zak").await.0, 200);
        // So does revoking an account's.
        emu.revoke_tokens_of(ACCOUNT);
        assert_eq!(
            api_get(&emu, &http, &access, "users/me").await,
            (401, invalid.clone())
        );
        let (_, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);

        emu.set_user_token_lifetime(1);
        let (short, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
        assert_eq!(api_get(&emu, &http, &short, "users/me").await.0, 200);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            api_get(&emu, &http, &short, "users/me").await,
            (401, invalid.clone())
        );
        let response = http
            .get(format!("{}/users/me", emu.api_url()))
            .send()
            .await
            .expect("an answer");
        assert_eq!(read(response).await, (401, invalid.clone()));

        // Deauthorization ends the user's grant of that app, and only that one.
        emu.set_user_token_lifetime(3599);
        let (access, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
        let unused = code_for(&emu, APP).await;
        let others_code = code_for(&emu, OTHER_APP).await;
        let params = [
            ("grant_type", "authorization_code"),
            ("code", others_code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        let other_app = (OTHER_APP, OTHER_APP_SECRET);
        let (other_access, _) = tokens(grant(&emu, &http, other_app, &params).await);
        emu.deauthorize("u1", APP);
        assert_eq!(
            api_get(&emu, &http, &access, "users/me").await,
            (401, invalid)
        );
        assert_eq!(
            refresh(&emu, &http, &refresh_token).await,
            (400, invalid_refresh_token())
        );
        assert_eq!(exchange(&emu, &http, &unused).await, (400, invalid_code()));
        assert_eq!(api_get(&emu, &http, &other_access, "users/me").await.0, 200);
        // Authorising again works.
        tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
    }

    #[tokio::test]
    async fn grant_faults_apply_to_their_grant_only() {
        let emu = oauth_emulator().await;
        let http = http();
        let (access, refresh_token) =
            tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);

        emu.inject(Endpoint::Refresh, Fault::Status(503), Some(1));
        let unavailable = json!({ "reason": "Service Unavailable", "error": "server_error" });
        assert_eq!(
            refresh(&emu, &http, &refresh_token).await,
            (503, unavailable)
        );
        // Other grants are untouched, and the faulted refresh did not use the token up.
        assert!(!access_token(&emu, &http).await.is_empty());
        tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
        let (_, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);

        emu.inject(Endpoint::Code, Fault::Status(500), Some(1));
        assert_eq!(
            exchange(&emu, &http, &code_for(&emu, APP).await).await.0,
            500
        );
        // A fault of the whole endpoint reaches every grant.
        emu.inject(
            Endpoint::Token,
            Fault::RateLimited {
                retry_after_seconds: 3,
            },
            Some(1),
        );
        assert_eq!(refresh(&emu, &http, &refresh_token).await.0, 429);
        let (_, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
        // The grant's fault first; the endpoint's waits for the next request.
        emu.inject(Endpoint::Token, Fault::Status(502), Some(1));
        emu.inject(Endpoint::Refresh, Fault::Status(504), Some(1));
        assert_eq!(refresh(&emu, &http, &refresh_token).await.0, 504);
        assert_eq!(refresh(&emu, &http, &refresh_token).await.0, 502);
        tokens(refresh(&emu, &http, &refresh_token).await);

        emu.inject(Endpoint::User, Fault::Status(500), Some(1));
        emu.inject(Endpoint::Zak, Fault::Status(503), Some(1));
        assert_eq!(api_get(&emu, &http, &access, "users/me").await.0, 500);
        assert_eq!(api_get(&emu, &http, &access, "users/me").await.0, 200);
        assert_eq!(api_get(&emu, &http, &access, "users/me/zak").await.0, 503);
        assert_eq!(api_get(&emu, &http, &access, "users/me/zak").await.0, 200);

        assert_eq!(emu.calls(Endpoint::Refresh), 7);
        assert_eq!(emu.calls(Endpoint::Code), 3);
        assert_eq!(emu.calls(Endpoint::Token), 11);
        assert_eq!(emu.calls(Endpoint::User), 2);
        assert_eq!(emu.calls(Endpoint::Zak), 2);
        emu.reset_calls();
        for endpoint in [Endpoint::Refresh, Endpoint::Code, Endpoint::User] {
            assert_eq!(emu.calls(endpoint), 0);
        }
    }

    #[tokio::test]
    async fn builds_signed_deauthorization_webhooks() {
        use hmac::{Hmac, Mac};
        use sha2::Sha256;

        let emu = oauth_emulator().await;
        let timestamp = unix_now();
        let (body, headers) = emu.deauthorization_webhook("whsec", "v1", APP, timestamp);

        let event: Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(event["event"], "app_deauthorized");
        assert_eq!(event["event_ts"], timestamp * 1000);
        let payload = &event["payload"];
        assert_eq!(payload["account_id"], OTHER_ACCOUNT);
        assert_eq!(payload["user_id"], "v1");
        assert_eq!(payload["client_id"], APP);
        assert_eq!(
            payload["deauthorization_time"],
            rfc3339_millis(timestamp * 1000)
        );
        assert_eq!(
            payload["signature"].as_str().expect("a signature").len(),
            64
        );

        let header = |name: &str| {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .collect();
            assert_eq!(values.len(), 1, "{name}: {headers:?}");
            values[0].to_string()
        };
        assert_eq!(header("x-zm-request-timestamp"), timestamp.to_string());
        assert_eq!(header("content-type"), "application/json");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").expect("any key length");
        mac.update(format!("v0:{timestamp}:{body}").as_bytes());
        let signature = header("x-zm-signature");
        let hex = signature.strip_prefix("v0=").expect("the v0= prefix");
        mac.verify_slice(&hex::decode(hex).expect("hex"))
            .expect("the signature verifies");
        // Under another secret it does not.
        let mut other = Hmac::<Sha256>::new_from_slice(b"other").expect("any key length");
        other.update(format!("v0:{timestamp}:{body}").as_bytes());
        assert!(other.verify_slice(&hex::decode(hex).expect("hex")).is_err());

        // A stale one is signed for its own timestamp.
        let stale = timestamp - 600;
        let (body, headers) = emu.deauthorization_webhook("whsec", "u2", APP, stale);
        let event: Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(event["payload"]["account_id"], ACCOUNT);
        assert!(headers.contains(&("x-zm-request-timestamp".to_string(), stale.to_string())));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").expect("any key length");
        mac.update(format!("v0:{stale}:{body}").as_bytes());
        let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        assert!(headers.contains(&("x-zm-signature".to_string(), expected)));
    }

    #[test]
    fn formats_rfc3339_times() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_560_779_548_632),
            "2019-06-17T13:52:28.632Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn oauth_app_debug_hides_the_secret() {
        let app = EmulatorOAuthApp {
            client_id: "c".into(),
            client_secret: "very-secret".into(),
            redirect_uri: REDIRECT.into(),
        };
        assert!(!format!("{app:?}").contains("very-secret"));
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
