//! The soak load generator behind `bash bench/soak.sh` (which starts `ztv emulator`, `ztv serve`
//! and this): a fixed count of requests in a fixed mix against a running server, then a report.
//!
//! `cargo run --release --example soak -- --server URL --server-pid PID --emulator URL …`
//! (`--help` lists every option). Every 100 requests hold 40 Meeting SDK signatures, 15 Video
//! SDK tokens, 20 ZAKs of a few users (warm: reused by ztv), 10 S2S tokens, 5 joins with a ZAK
//! and 10 deliberately bad requests of eight kinds, each with the status and error code ztv must
//! answer. Every 200 is checked: the signatures verify under the account's own secret and name
//! its key, the ZAK belongs to the user and account asked for, the S2S token to the account and
//! is not expired.
//!
//! It reports the answers by route and status; the errors, expected (bad requests refused as
//! designed) or unexpected (5xx, timeouts, connection errors, a bad request not refused as
//! expected, a good one refused, a 200 whose token is missing or wrong); the S2S token requests
//! the emulator counted per account against the fewest possible and against ztv's refresh
//! policy; the ZAK calls against the requests; and the server's RSS at the start, after the
//! first tenth of the requests, at the end and at its peak. It exits 1 when there was any
//! unexpected error, 2 when the run itself could not be made, and never for a figure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Parser)]
#[command(about = "Soak load generator for ztv (run by bench/soak.sh)")]
struct Args {
    /// Base URL of the ztv server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// The server's process ID: its RSS is read from /proc/PID/status.
    #[arg(long)]
    server_pid: u32,
    /// Base URL of `ztv emulator`: its GET /_emulator/stats is read before and after.
    #[arg(long)]
    emulator: String,
    /// An API key with every scope the mix needs, allowed to name any account.
    #[arg(long)]
    key: String,
    /// An API key with `video-sdk:token` only (for the missing-scope requests).
    #[arg(long)]
    narrow_key: String,
    /// A configured account, `NAME:ZOOM_ACCOUNT_ID:SDK_KEY:SDK_SECRET` (its Meeting SDK app);
    /// repeat for several.
    #[arg(long = "account", required = true, value_parser = parse_account)]
    accounts: Vec<AccountArg>,
    /// The account with a Video SDK app, `NAME:KEY:SECRET`.
    #[arg(long, value_parser = parse_video)]
    video: VideoArg,
    /// A Zoom user for ZAKs and joins, `ACCOUNT_NAME:USER_ID:EMAIL`; repeat for several.
    #[arg(long = "user", required = true, value_parser = parse_user)]
    users: Vec<UserArg>,
    /// How many requests to send in all.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// How many requests are in flight at once (one connection each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `expires_in` of the emulator's access tokens (`ztv emulator --token-lifetime`), seconds.
    #[arg(long)]
    token_lifetime: u64,
    /// The server's `zoom.refresh_margin_seconds`.
    #[arg(long)]
    refresh_margin: u64,
    /// The server's `zoom.user_token_cache_seconds`.
    #[arg(long)]
    zak_reuse: u64,
    /// Longest wait for one answer, seconds; a request that takes longer is a timeout.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Clone)]
struct AccountArg {
    name: String,
    zoom_account_id: String,
    sdk_key: String,
    sdk_secret: String,
}

#[derive(Clone)]
struct VideoArg {
    account: String,
    key: String,
    secret: String,
}

#[derive(Clone)]
struct UserArg {
    account: String,
    user_id: String,
    email: String,
}

/// `N` colon-separated fields, none empty; the last may hold colons (a secret).
fn fields<const N: usize>(text: &str, form: &str) -> Result<[String; N], String> {
    let parts: Vec<String> = text.splitn(N, ':').map(str::to_string).collect();
    match <[String; N]>::try_from(parts) {
        Ok(parts) if parts.iter().all(|p| !p.is_empty()) => Ok(parts),
        _ => Err(format!("expected {form}")),
    }
}

fn parse_account(text: &str) -> Result<AccountArg, String> {
    let [name, zoom_account_id, sdk_key, sdk_secret] =
        fields(text, "NAME:ZOOM_ACCOUNT_ID:SDK_KEY:SDK_SECRET")?;
    Ok(AccountArg {
        name,
        zoom_account_id,
        sdk_key,
        sdk_secret,
    })
}

fn parse_video(text: &str) -> Result<VideoArg, String> {
    let [account, key, secret] = fields(text, "NAME:KEY:SECRET")?;
    Ok(VideoArg {
        account,
        key,
        secret,
    })
}

fn parse_user(text: &str) -> Result<UserArg, String> {
    let [account, user_id, email] = fields(text, "ACCOUNT_NAME:USER_ID:EMAIL")?;
    Ok(UserArg {
        account,
        user_id,
        email,
    })
}

/// What one request is. The good kinds come first, then the deliberately bad ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Signature,
    VideoToken,
    Zak,
    S2sToken,
    Join,
    BadJson,
    WrongTypes,
    UnknownAccount,
    MissingKey,
    InvalidKey,
    UnknownUser,
    MissingScope,
    WrongContentType,
}

/// The mix: how many of every 100 requests are of each kind.
const MIX: [(Kind, u64); 13] = [
    (Kind::Signature, 40),
    (Kind::VideoToken, 15),
    (Kind::Zak, 20),
    (Kind::S2sToken, 10),
    (Kind::Join, 5),
    (Kind::BadJson, 2),
    (Kind::WrongTypes, 1),
    (Kind::UnknownAccount, 1),
    (Kind::MissingKey, 1),
    (Kind::InvalidKey, 2),
    (Kind::UnknownUser, 1),
    (Kind::MissingScope, 1),
    (Kind::WrongContentType, 1),
];

const SIGNATURE_ROUTE: &str = "POST /v1/meeting-sdk/signature";
const VIDEO_ROUTE: &str = "POST /v1/video-sdk/token";
const ZAK_ROUTE: &str = "GET  /v1/users/{userId}/zak";
const S2S_ROUTE: &str = "POST /v1/s2s/token";
const JOIN_ROUTE: &str = "POST /v1/join";

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Signature => "signature",
            Kind::VideoToken => "video token",
            Kind::Zak => "ZAK (warm)",
            Kind::S2sToken => "S2S token",
            Kind::Join => "join + ZAK",
            Kind::BadJson => "bad: broken JSON",
            Kind::WrongTypes => "bad: wrong types",
            Kind::UnknownAccount => "bad: unknown account",
            Kind::MissingKey => "bad: no API key",
            Kind::InvalidKey => "bad: invalid API key",
            Kind::UnknownUser => "bad: unknown user",
            Kind::MissingScope => "bad: missing scope",
            Kind::WrongContentType => "bad: text/plain body",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Kind::VideoToken => VIDEO_ROUTE,
            Kind::Zak | Kind::UnknownUser => ZAK_ROUTE,
            Kind::S2sToken | Kind::MissingScope => S2S_ROUTE,
            Kind::Join => JOIN_ROUTE,
            Kind::Signature
            | Kind::BadJson
            | Kind::WrongTypes
            | Kind::UnknownAccount
            | Kind::MissingKey
            | Kind::InvalidKey
            | Kind::WrongContentType => SIGNATURE_ROUTE,
        }
    }

    /// For a deliberately bad request, the status and error code ztv must answer (docs/api.md's
    /// error table); `None` for a good one, which must be a 200.
    fn refusal(self) -> Option<(u16, &'static str)> {
        match self {
            Kind::Signature | Kind::VideoToken | Kind::Zak | Kind::S2sToken | Kind::Join => None,
            Kind::BadJson | Kind::WrongTypes => Some((400, "invalid_request")),
            Kind::UnknownAccount | Kind::UnknownUser => Some((404, "not_found")),
            Kind::MissingKey | Kind::InvalidKey => Some((401, "unauthenticated")),
            Kind::MissingScope => Some((403, "forbidden")),
            Kind::WrongContentType => Some((415, "unsupported_media_type")),
        }
    }
}

/// The kind of request `i`. Every block of 100 requests holds exactly the mix, spread over the
/// block (37 is prime to 100, so `slot` runs through all of 0..100) rather than in runs.
fn kind_of(i: u64) -> Kind {
    let slot = (i % 100) * 37 % 100;
    let mut below = 0;
    for (kind, weight) in MIX {
        below += weight;
        if slot < below {
            return kind;
        }
    }
    Kind::Signature
}

/// A well-mixed 64-bit value of `i` (splitmix64): picks accounts, users and meeting numbers,
/// so that a run is the same every time.
fn mixed(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Why an answer was not what it had to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Problem {
    ServerError,
    Timeout,
    Connect,
    Transport,
    GoodRefused,
    BadNotRefused,
    WrongToken,
}

impl Problem {
    const ALL: [Problem; 7] = [
        Problem::ServerError,
        Problem::Timeout,
        Problem::Connect,
        Problem::Transport,
        Problem::GoodRefused,
        Problem::BadNotRefused,
        Problem::WrongToken,
    ];

    fn label(self) -> &'static str {
        match self {
            Problem::ServerError => "5xx answers",
            Problem::Timeout => "timeouts",
            Problem::Connect => "connection errors",
            Problem::Transport => "other transport errors",
            Problem::GoodRefused => "good requests refused (4xx)",
            Problem::BadNotRefused => "bad requests not refused as expected",
            Problem::WrongToken => "200 with a missing or wrong token",
        }
    }
}

/// How one request ended.
enum Verdict {
    /// A good request answered 200 with the right token.
    Served,
    /// A bad request refused with the expected status and code.
    Refused,
    Unexpected(Problem, String),
}

/// Everything the workers share.
struct Context {
    args: Args,
    http: reqwest::Client,
    accounts: Vec<AccountArg>,
    users: Vec<UserArg>,
}

/// One worker's counts, merged at the end.
#[derive(Default)]
struct Tally {
    /// (route, status or transport failure) → answers.
    by_route_status: BTreeMap<(&'static str, String), u64>,
    by_kind: BTreeMap<Kind, KindTally>,
    problems: BTreeMap<Problem, u64>,
    /// The first few unexpected errors of each problem, for the report.
    samples: BTreeMap<Problem, Vec<String>>,
    /// Per account: the least life (seconds) an S2S token still had when ztv handed it out.
    s2s_least_life: BTreeMap<String, i64>,
    /// Answers that carried a ZAK (the ZAK route and joins).
    zaks_served: u64,
    /// Per user (email): the distinct ZAKs served, by `jti`. Each is one fetch from Zoom.
    zak_ids: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Default)]
struct KindTally {
    sent: u64,
    as_expected: u64,
    unexpected: u64,
    /// Latency of every request, microseconds.
    micros: Vec<u32>,
}

const SAMPLES_KEPT: usize = 5;

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (key, n) in other.by_route_status {
            *self.by_route_status.entry(key).or_default() += n;
        }
        for (kind, theirs) in other.by_kind {
            let ours = self.by_kind.entry(kind).or_default();
            ours.sent += theirs.sent;
            ours.as_expected += theirs.as_expected;
            ours.unexpected += theirs.unexpected;
            ours.micros.extend(theirs.micros);
        }
        for (problem, n) in other.problems {
            *self.problems.entry(problem).or_default() += n;
        }
        for (problem, samples) in other.samples {
            let ours = self.samples.entry(problem).or_default();
            ours.extend(samples);
            ours.truncate(SAMPLES_KEPT);
        }
        for (account, life) in other.s2s_least_life {
            let ours = self.s2s_least_life.entry(account).or_insert(life);
            *ours = (*ours).min(life);
        }
        self.zaks_served += other.zaks_served;
        for (user, ids) in other.zak_ids {
            self.zak_ids.entry(user).or_default().extend(ids);
        }
    }

    fn note_zak(&mut self, user: &UserArg, jti: String) {
        self.zaks_served += 1;
        self.zak_ids
            .entry(format!("{}/{}", user.account, user.email))
            .or_default()
            .insert(jti);
    }

    fn unexpected(&self) -> u64 {
        self.problems.values().sum()
    }
}

/// Shared progress, read by the monitor.
#[derive(Default)]
struct Progress {
    next: AtomicU64,
    done: AtomicU64,
    unexpected: AtomicU64,
    finished: AtomicBool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The payload of a JWT, read without verifying it.
fn jwt_payload(token: &str) -> Result<Value, String> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "JWT payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "JWT payload is not JSON".to_string())
}

/// The payload of an HS256 JWT that verifies under `secret`.
fn verified_payload(token: &str, secret: &str) -> Result<Value, String> {
    let (signed, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "JWT signature is not base64url")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| "HMAC refused the key".to_string())?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| "the signature does not verify under the account's secret")?;
    jwt_payload(token)
}

fn text<'a>(body: &'a Value, field: &str) -> Result<&'a str, String> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no `{field}` in the answer"))
}

fn expect_eq(what: &str, got: &Value, want: &Value) -> Result<(), String> {
    match got == want {
        true => Ok(()),
        false => Err(format!("{what} is {got}, not {want}")),
    }
}

/// A Meeting SDK signature of `account`'s app for `meeting` and `role`.
fn check_signature(
    body: &Value,
    account: &AccountArg,
    meeting: &Value,
    role: u64,
) -> Result<(), String> {
    let payload = verified_payload(text(body, "signature")?, &account.sdk_secret)?;
    expect_eq(
        "sdkKey",
        &json!(text(body, "sdkKey")?),
        &json!(account.sdk_key),
    )?;
    expect_eq("appKey", &payload["appKey"], &json!(account.sdk_key))?;
    expect_eq("mn", &payload["mn"], meeting)?;
    expect_eq("role", &payload["role"], &json!(role))?;
    text(body, "expiresAt").map(drop)
}

/// A ZAK of `user` in `account` that has not expired; its `jti` (every ZAK the emulator
/// issues has its own), so that the distinct ZAKs served can be counted.
fn check_zak(token: &str, user: &UserArg, account: &AccountArg) -> Result<String, String> {
    let payload = jwt_payload(token)?;
    expect_eq("ZAK uid", &payload["uid"], &json!(user.user_id))?;
    expect_eq("ZAK aid", &payload["aid"], &json!(account.zoom_account_id))?;
    match payload["exp"].as_i64() {
        Some(exp) if exp > unix_now() => Ok(payload["jti"].as_str().unwrap_or("").to_string()),
        _ => Err("the ZAK has expired".into()),
    }
}

impl Context {
    fn account(&self, name: &str) -> &AccountArg {
        self.accounts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or(&self.accounts[0])
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.args.server.trim_end_matches('/'))
    }

    fn post_json(&self, path: &str, key: Option<&str>, body: String) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends request `i` and judges the answer.
    async fn run_one(&self, i: u64, kind: Kind, tally: &mut Tally) -> Verdict {
        let h = mixed(i);
        let key = self.args.key.as_str();
        let account = &self.accounts[(h % self.accounts.len() as u64) as usize];
        let user = &self.users[((h >> 8) % self.users.len() as u64) as usize];
        // A 9- to 11-digit meeting number, as a string or a number.
        let digits = 100_000_000 + (h >> 16) % 99_900_000_000;
        let meeting = match (h >> 60) & 1 {
            0 => json!(digits.to_string()),
            _ => json!(digits),
        };
        let role = u64::from((h >> 20) % 10 == 0);
        let request = match kind {
            Kind::Signature => self.post_json(
                "/v1/meeting-sdk/signature",
                Some(key),
                json!({"meetingNumber": meeting, "role": role, "account": account.name})
                    .to_string(),
            ),
            Kind::VideoToken => self.post_json(
                "/v1/video-sdk/token",
                Some(key),
                json!({
                    "sessionName": format!("soak session {}", h % 1000),
                    "role": role,
                    "account": self.args.video.account,
                })
                .to_string(),
            ),
            Kind::Zak => self
                .http
                .get(self.url(&format!(
                    "/v1/users/{}/zak?account={}",
                    user.email, user.account
                )))
                .bearer_auth(key),
            Kind::S2sToken => self.post_json(
                "/v1/s2s/token",
                Some(key),
                json!({"account": account.name}).to_string(),
            ),
            Kind::Join => self.post_json(
                "/v1/join",
                Some(key),
                json!({
                    "meetingNumber": meeting,
                    "role": 1,
                    "userId": user.email,
                    "account": user.account,
                })
                .to_string(),
            ),
            Kind::BadJson => self.post_json(
                "/v1/meeting-sdk/signature",
                Some(key),
                r#"{"meetingNumber": "123456789", "role": 0"#.to_string(),
            ),
            Kind::WrongTypes => self.post_json(
                "/v1/meeting-sdk/signature",
                Some(key),
                json!({"meetingNumber": true, "role": "zero", "account": account.name}).to_string(),
            ),
            Kind::UnknownAccount => self.post_json(
                "/v1/meeting-sdk/signature",
                Some(key),
                json!({"meetingNumber": meeting, "role": 0, "account": "no-such-account"})
                    .to_string(),
            ),
            Kind::MissingKey => self.post_json(
                "/v1/meeting-sdk/signature",
                None,
                json!({"meetingNumber": meeting, "role": 0}).to_string(),
            ),
            Kind::InvalidKey => {
                let body = json!({"meetingNumber": meeting, "role": 0}).to_string();
                let forged = format!("ztv_{:016x}{:016x}", h, mixed(h));
                match h & 1 {
                    0 => self.post_json("/v1/meeting-sdk/signature", Some(&forged), body),
                    _ => self
                        .post_json("/v1/meeting-sdk/signature", None, body)
                        .header("x-api-key", forged),
                }
            }
            Kind::UnknownUser => self
                .http
                .get(self.url(&format!(
                    "/v1/users/nobody{}@example.com/zak?account={}",
                    h % 5,
                    account.name
                )))
                .bearer_auth(key),
            Kind::MissingScope => self.post_json(
                "/v1/s2s/token",
                Some(&self.args.narrow_key),
                json!({"account": account.name}).to_string(),
            ),
            Kind::WrongContentType => self
                .http
                .post(self.url("/v1/meeting-sdk/signature"))
                .bearer_auth(key)
                .header("content-type", "text/plain")
                .body(json!({"meetingNumber": meeting, "role": 0}).to_string()),
        };

        let started = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|body| (status, body))
            }
            Err(error) => Err(error),
        };
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let kind_tally = tally.by_kind.entry(kind).or_default();
        kind_tally.sent += 1;
        kind_tally.micros.push(micros);

        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                let (problem, label) = if error.is_timeout() {
                    (Problem::Timeout, "timeout")
                } else if error.is_connect() {
                    (Problem::Connect, "connect error")
                } else {
                    (Problem::Transport, "transport error")
                };
                *tally
                    .by_route_status
                    .entry((kind.route(), label.to_string()))
                    .or_default() += 1;
                return Verdict::Unexpected(problem, error.to_string());
            }
        };
        *tally
            .by_route_status
            .entry((kind.route(), status.to_string()))
            .or_default() += 1;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // ztv's error bodies hold a code and a message, never a token or secret.
        let error_code = body["error"]["code"].as_str().unwrap_or("-").to_string();
        let refusal = || {
            format!(
                "{status} {error_code}: {}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("(no JSON error body)")
            )
        };
        if status >= 500 {
            return Verdict::Unexpected(Problem::ServerError, refusal());
        }
        if let Some((want_status, want_code)) = kind.refusal() {
            return match (status, error_code.as_str()) {
                (s, c) if s == want_status && c == want_code => Verdict::Refused,
                (200..=299, _) => Verdict::Unexpected(
                    Problem::BadNotRefused,
                    format!("answered {status}, not {want_status} {want_code}"),
                ),
                _ => Verdict::Unexpected(
                    Problem::BadNotRefused,
                    format!("answered {}, not {want_status} {want_code}", refusal()),
                ),
            };
        }
        if status != 200 {
            return Verdict::Unexpected(Problem::GoodRefused, refusal());
        }

        let checked = match kind {
            Kind::Signature => check_signature(&body, account, &meeting, role),
            Kind::VideoToken => text(&body, "signature").and_then(|token| {
                let payload = verified_payload(token, &self.args.video.secret)?;
                expect_eq("app_key", &payload["app_key"], &json!(self.args.video.key))?;
                expect_eq(
                    "tpc",
                    &payload["tpc"],
                    &json!(format!("soak session {}", h % 1000)),
                )?;
                expect_eq("role_type", &payload["role_type"], &json!(role))
            }),
            Kind::Zak => text(&body, "zak")
                .and_then(|zak| check_zak(zak, user, self.account(&user.account)))
                .map(|jti| tally.note_zak(user, jti)),
            Kind::S2sToken => text(&body, "accessToken").and_then(|token| {
                let payload = jwt_payload(token)?;
                expect_eq("aid", &payload["aid"], &json!(account.zoom_account_id))?;
                let life = payload["exp"].as_i64().unwrap_or(0) - unix_now();
                let least = tally
                    .s2s_least_life
                    .entry(account.name.clone())
                    .or_insert(life);
                *least = (*least).min(life);
                match life > 0 {
                    true => Ok(()),
                    false => Err(format!("an S2S token {} s past its expiry", -life)),
                }
            }),
            Kind::Join => {
                let owner = self.account(&user.account);
                check_signature(&body, owner, &meeting, 1)
                    .and_then(|()| check_zak(text(&body, "zak")?, user, owner))
                    .map(|jti| tally.note_zak(user, jti))
            }
            _ => Ok(()),
        };
        match checked {
            Ok(()) => Verdict::Served,
            Err(why) => Verdict::Unexpected(Problem::WrongToken, why),
        }
    }
}

async fn worker(context: Arc<Context>, progress: Arc<Progress>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let i = progress.next.fetch_add(1, Ordering::Relaxed);
        if i >= context.args.requests {
            return tally;
        }
        let kind = kind_of(i);
        let verdict = context.run_one(i, kind, &mut tally).await;
        let kind_tally = tally.by_kind.entry(kind).or_default();
        match verdict {
            Verdict::Served | Verdict::Refused => kind_tally.as_expected += 1,
            Verdict::Unexpected(problem, detail) => {
                kind_tally.unexpected += 1;
                *tally.problems.entry(problem).or_default() += 1;
                let samples = tally.samples.entry(problem).or_default();
                if samples.len() < SAMPLES_KEPT {
                    samples.push(format!("request {i} ({}): {detail}", kind.label()));
                }
                progress.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// What /proc/PID/status says of a process's memory, KiB.
#[derive(Clone, Copy)]
struct Snapshot {
    rss: u64,
    /// Peak RSS since the process started.
    hwm: u64,
    /// The heap and other private memory: where a leak shows.
    anon: u64,
    /// Mapped files (the binary, libraries).
    file: u64,
}

impl Snapshot {
    fn describe(self) -> String {
        format!(
            "{} (anonymous {}, files {})",
            mib(self.rss),
            mib(self.anon),
            mib(self.file)
        )
    }
}

fn memory_of(pid: u32) -> Option<Snapshot> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Snapshot {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// What the monitor saw of the server's memory.
#[derive(Default)]
struct Memory {
    /// Once a tenth of the requests were answered (the caches are warm by then).
    after_tenth: Option<Snapshot>,
    /// Largest VmRSS sampled (every 250 ms).
    peak: u64,
}

/// Samples the server's RSS and prints a progress line at every tenth of the run.
async fn monitor(args_pid: u32, total: u64, progress: Arc<Progress>, started: Instant) -> Memory {
    let mut memory = Memory::default();
    let mut next_tenth = 1;
    loop {
        let done = progress.done.load(Ordering::Relaxed);
        let snapshot = memory_of(args_pid);
        let rss = snapshot.map(|s| s.rss);
        if let Some(rss) = rss {
            memory.peak = memory.peak.max(rss);
        }
        // One line whenever another tenth of the requests has been answered since the last.
        if next_tenth <= 10 && done * 10 >= total * next_tenth {
            if next_tenth == 1 {
                memory.after_tenth = snapshot;
            }
            next_tenth = done * 10 / total + 1;
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "soak: {:3}% {done:>8} requests {elapsed:7.1} s {:7.0} req/s  server RSS {}  unexpected {}",
                done * 100 / total,
                done as f64 / elapsed.max(1e-9),
                rss.map(mib).unwrap_or_else(|| "?".into()),
                progress.unexpected.load(Ordering::Relaxed)
            );
        }
        if progress.finished.load(Ordering::Relaxed) {
            return memory;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The emulator's counts (`GET /_emulator/stats`).
#[derive(Default)]
struct Stats {
    token: u64,
    zak: u64,
    by_account: BTreeMap<String, u64>,
    refused_tokens: u64,
}

async fn emulator_stats(http: &reqwest::Client, base: &str) -> Result<Stats, String> {
    let url = format!("{}/_emulator/stats", base.trim_end_matches('/'));
    let body: Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let count = |field: &str| body[field].as_u64().unwrap_or(0);
    let by_account = body["tokenRequestsByAccount"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(id, n)| (id.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Stats {
        token: count("token"),
        zak: count("zak"),
        by_account,
        refused_tokens: count("refusedTokens"),
    })
}

/// The `q`-quantile of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index]) / 1000.0
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("soak: cannot start the runtime: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(soak(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(error) => {
            eprintln!("soak: error: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the soak and prints the report; `Ok(false)` when there were unexpected errors.
async fn soak(args: Args) -> Result<bool, String> {
    if args.requests == 0 || args.concurrency == 0 {
        return Err("--requests and --concurrency must be at least 1".into());
    }
    for user in &args.users {
        if !args.accounts.iter().any(|a| a.name == user.account) {
            return Err(format!("--user names no --account {:?}", user.account));
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let pid = args.server_pid;
    let start_memory = memory_of(pid).ok_or_else(|| format!("cannot read /proc/{pid}/status"))?;
    let before = emulator_stats(&http, &args.emulator).await?;

    let context = Arc::new(Context {
        accounts: args.accounts.clone(),
        users: args.users.clone(),
        http,
        args,
    });
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let watcher = tokio::spawn(monitor(
        pid,
        context.args.requests,
        Arc::clone(&progress),
        started,
    ));
    let workers: Vec<_> = (0..context.args.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&context), Arc::clone(&progress))))
        .collect();
    let mut tally = Tally::default();
    for handle in workers {
        tally.merge(handle.await.map_err(|e| format!("a worker failed: {e}"))?);
    }
    let elapsed = started.elapsed();
    progress.finished.store(true, Ordering::Relaxed);
    let memory = watcher
        .await
        .map_err(|e| format!("the monitor failed: {e}"))?;
    let end_memory = memory_of(pid);
    let after = emulator_stats(&context.http, &context.args.emulator).await?;

    report(
        &context,
        &tally,
        elapsed,
        (start_memory, memory, end_memory),
        (&before, &after),
    );
    Ok(tally.unexpected() == 0)
}

fn report(
    context: &Context,
    tally: &Tally,
    elapsed: Duration,
    (start_memory, memory, end_memory): (Snapshot, Memory, Option<Snapshot>),
    (before, after): (&Stats, &Stats),
) {
    let args = &context.args;
    let seconds = elapsed.as_secs_f64();
    let sent: u64 = tally.by_kind.values().map(|k| k.sent).sum();
    let mix: Vec<String> = MIX
        .iter()
        .filter(|(kind, _)| kind.refusal().is_none())
        .map(|(kind, weight)| format!("{weight} {}", kind.label()))
        .collect();
    let bad: u64 = MIX
        .iter()
        .filter(|(kind, _)| kind.refusal().is_some())
        .map(|(_, weight)| weight)
        .sum();
    println!();
    println!(
        "ztv soak: {sent} requests, {} in flight, in {seconds:.1} s ({:.0} req/s)",
        args.concurrency,
        sent as f64 / seconds.max(1e-9)
    );
    println!(
        "mix per 100 requests: {}, {bad} deliberately bad ({} kinds)",
        mix.join(", "),
        MIX.iter().filter(|(k, _)| k.refusal().is_some()).count()
    );
    let lifetime = args.token_lifetime as f64;
    let margin = (args.refresh_margin as f64).min(lifetime / 2.0);
    println!(
        "upstream: emulator tokens live L = {} s; refresh margin m = min({} s, L/2) = {margin} s; ZAK reuse {} s",
        args.token_lifetime, args.refresh_margin, args.zak_reuse
    );

    println!();
    println!(
        "{:<22} {:<31} {:>7} {:>7} {:<24} {:>10} {:>7} {:>7} {:>7}",
        "kind",
        "route",
        "sent",
        "as exp.",
        "expected answer",
        "unexpected",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    for (kind, k) in &tally.by_kind {
        let mut sorted = k.micros.clone();
        sorted.sort_unstable();
        let expected = match kind.refusal() {
            Some((status, code)) => format!("{status} {code}"),
            None => "200 + valid token".to_string(),
        };
        println!(
            "{:<22} {:<31} {:>7} {:>7} {:<24} {:>10} {:>7.2} {:>7.2} {:>7.1}",
            kind.label(),
            kind.route(),
            k.sent,
            k.as_expected,
            expected,
            k.unexpected,
            quantile_ms(&sorted, 0.50),
            quantile_ms(&sorted, 0.99),
            quantile_ms(&sorted, 1.0)
        );
    }

    println!();
    println!("answers by route and status:");
    let mut routes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((route, status), n) in &tally.by_route_status {
        routes
            .entry(route)
            .or_default()
            .push(format!("{status}: {n}"));
    }
    for (route, statuses) in routes {
        println!("  {route:<31} {}", statuses.join(", "));
    }

    let expected_refusals: u64 = tally
        .by_kind
        .iter()
        .filter(|(kind, _)| kind.refusal().is_some())
        .map(|(_, k)| k.as_expected)
        .sum();
    let served: u64 = tally
        .by_kind
        .iter()
        .filter(|(kind, _)| kind.refusal().is_none())
        .map(|(_, k)| k.as_expected)
        .sum();
    println!();
    println!("requests served (200 with a valid token): {served}");
    println!("errors, expected (bad requests refused as designed): {expected_refusals}");
    println!("errors, unexpected: {}", tally.unexpected());
    let breakdown: Vec<String> = Problem::ALL
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.label(),
                tally.problems.get(p).copied().unwrap_or(0)
            )
        })
        .collect();
    println!("  {}", breakdown.join(", "));
    for (problem, samples) in &tally.samples {
        for sample in samples {
            println!("  e.g. {}: {sample}", problem.label());
        }
    }

    // The S2S tokens: ztv refreshes when less than m remains, so one token serves L − m
    // seconds and T seconds of steady load take 1 + ⌊T / (L − m)⌋; no cache can do with fewer
    // than ⌈T / L⌉ (a token lives L seconds).
    println!();
    println!(
        "upstream S2S token requests per account over T = {seconds:.1} s (emulator, GET /_emulator/stats):"
    );
    println!(
        "  {:<10} {:<16} {:>9} {:>16} {:>22} {:>18}",
        "account",
        "Zoom account",
        "requests",
        "fewest ⌈T/L⌉",
        "ztv policy 1+⌊T/(L−m)⌋",
        "least life left"
    );
    let fewest = (seconds / lifetime).ceil() as u64;
    let policy = 1 + (seconds / (lifetime - margin).max(1e-9)).floor() as u64;
    let mut over_policy = Vec::new();
    for account in &context.accounts {
        let id = &account.zoom_account_id;
        let requests = after.by_account.get(id).copied().unwrap_or(0)
            - before.by_account.get(id).copied().unwrap_or(0);
        let least = tally
            .s2s_least_life
            .get(&account.name)
            .map(|s| format!("{s} s"))
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<10} {:<16} {:>9} {:>16} {:>22} {:>18}",
            account.name, id, requests, fewest, policy, least
        );
        // One more than the policy is timing (a refresh due just as the run ends).
        if requests > policy + 1 {
            over_policy.push(format!("{} ({requests} > {policy} + 1)", account.name));
        }
    }
    println!(
        "  all accounts: {} token requests; 401s for an expired or unknown token at the emulator: {}",
        after.token - before.token,
        after.refused_tokens - before.refused_tokens
    );
    println!(
        "  (least life left: of the S2S tokens /v1/s2s/token handed out, the shortest remaining life)"
    );
    if !over_policy.is_empty() {
        println!(
            "  NOTE: more token requests than the refresh policy explains: {}",
            over_policy.join(", ")
        );
    }

    // ZAKs: ztv reuses one per (account, user) for r seconds and then fetches the next on the
    // first request after, so T seconds take at most 1 + ⌊T / r⌋ fetches per user.
    let zak_calls = after.zak - before.zak;
    let unknown_user = tally
        .by_kind
        .get(&Kind::UnknownUser)
        .map(|k| k.sent)
        .unwrap_or(0);
    println!();
    println!(
        "ZAK: {} answers carried a ZAK (the ZAK route and joins) for {} users; reuse r = {} s",
        tally.zaks_served,
        context.users.len(),
        args.zak_reuse
    );
    let zak_policy = match args.zak_reuse {
        0 => None,
        r => Some(1 + (seconds / r as f64).floor() as u64),
    };
    let distinct: Vec<String> = tally
        .zak_ids
        .iter()
        .map(|(user, ids)| format!("{user} {}", ids.len()))
        .collect();
    println!(
        "  distinct ZAKs served per user (one fetch each): {}",
        distinct.join(", ")
    );
    match zak_policy {
        Some(most) => {
            println!("  ztv policy: at most 1 + ⌊T / r⌋ = {most} per user");
            let over: Vec<&String> = tally
                .zak_ids
                .iter()
                .filter(|(_, ids)| ids.len() as u64 > most)
                .map(|(user, _)| user)
                .collect();
            if !over.is_empty() {
                println!(
                    "  NOTE: more ZAK fetches than the reuse policy explains for {}",
                    over.iter()
                        .map(|u| u.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        None => println!("  ztv policy: no reuse (zoom.user_token_cache_seconds = 0)"),
    }
    println!(
        "  emulator ZAK calls: {zak_calls} = the known users' fetches + the unknown-user requests' \
         ({unknown_user} sent; never cached, concurrent ones share one call)"
    );

    println!();
    println!("server RSS (/proc/{}/status):", args.server_pid);
    println!(
        "  start (before the first request)  {}",
        start_memory.describe()
    );
    if let Some(warm) = memory.after_tenth {
        println!("  after 10 % of the requests         {}", warm.describe());
    }
    match end_memory {
        Some(end) => {
            let growth = memory
                .after_tenth
                .map(|warm| {
                    format!(
                        "; {:+.1} MiB since 10 %",
                        (end.rss as f64 - warm.rss as f64) / 1024.0
                    )
                })
                .unwrap_or_default();
            println!(
                "  end                                {}{growth}",
                end.describe()
            );
            println!(
                "  peak: VmRSS sampled every 250 ms {}, VmHWM {}",
                mib(memory.peak.max(end.rss)),
                mib(end.hwm)
            );
        }
        None => println!("  end: the server is gone"),
    }
    println!();
    match tally.unexpected() {
        0 => println!("result: no unexpected errors"),
        n => println!("result: FAILED: {n} unexpected errors"),
    }
}
