//! Hostile input, automatically: property tests that throw arbitrary JSON, fields of every
//! type, random bytes, path parameters, query strings, credentials, end-user tokens, signed
//! webhook events and methods at the real service over HTTP (with the Zoom emulator up), and
//! judge every answer: never a 5xx; every error exactly docs/api.md's
//! `{"error": {"code", "message", "requestId"}}` with a known code that matches the status and
//! the `x-request-id` header; every success the route's documented body.
//!
//! Cases per property: `PROPTEST_CASES` (default [`DEFAULT_CASES`]). A failure is shrunk and
//! saved under `tests/proptest-regressions/` so that it is replayed first next time.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult, TestRunner};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use ztv::http::error::ErrorCode;
use ztv::http::extract::BODY_LIMIT;
use ztv::scope::Scope;

use crate::helpers::idp::{self, Idp};
use crate::helpers::oauth::{OAUTH_CLIENT, WEBHOOK_SECRET};
use crate::helpers::*;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 128;

/// Longest end-user token sent, in bytes: under the server's 16 KiB request-head limit.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

// ---------------------------------------------------------------------------------------------
// The service under test and the runner
// ---------------------------------------------------------------------------------------------

/// The service with every optional part configured (user OAuth, grants, webhooks), the Zoom
/// emulator, a client that does not follow redirects, and keys with every scope.
struct Target {
    app: ZoomApp,
    http: reqwest::Client,
    /// Every scope: `[0]` bound to `prod`, `[1]` to no account.
    keys: Vec<String>,
}

impl Target {
    async fn start(extra: &str) -> Target {
        let app = TestApp::builder()
            .zoom()
            .config(NO_RATE_LIMIT)
            .grants()
            .config(extra)
            .build()
            .await;
        let bound = app.key("props-prod", &Scope::ALL, Some("prod")).await;
        let unbound = app.key("props-any", &Scope::ALL, None).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A fresh connection per request: when the server answers before reading a body
            // (413 on Content-Length) it closes the connection, and a pooled connection could
            // be picked up just as it closes, failing the next request on the client's side.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Target {
            app,
            http,
            keys: vec![bound, unbound],
        }
    }
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        source_file: Some(file!()),
        max_shrink_iters: 512,
        ..Config::default()
    }
}

/// Runs `property` on values of `strategy`. proptest's runner is synchronous: it runs on this
/// worker thread (taken out of the scheduler with `block_in_place`) and drives each case's
/// requests on the test's runtime, where the service and the emulator are served.
fn check_all<S, F, Fut>(strategy: S, property: F)
where
    S: Strategy,
    S::Value: fmt::Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = TestCaseResult>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        SEEN.with_borrow_mut(BTreeMap::clear);
        let mut runner = TestRunner::new(config());
        let outcome = runner.run(&strategy, |value| handle.block_on(property(value)));
        // What the cases reached, for `--nocapture`: a property that only ever sees 400s
        // tests little.
        SEEN.with_borrow(|seen| {
            let seen: Vec<String> = seen
                .iter()
                .map(|((route, status), n)| format!("{route:?} {status}: {n}"))
                .collect();
            eprintln!("answers seen: {}", seen.join(", "));
        });
        if let Err(error) = outcome {
            panic!("{error}\n{runner}");
        }
    });
}

thread_local! {
    /// Answers per (route, status) of the property running on this thread (the runner's
    /// thread sends every request of its cases).
    static SEEN: RefCell<BTreeMap<(Route, u16), u32>> = const { RefCell::new(BTreeMap::new()) };
}

// ---------------------------------------------------------------------------------------------
// Routes and what a success looks like on each
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Signature,
    VideoToken,
    Zak,
    ObfToken,
    Join,
    S2sToken,
    Authorize,
    Callback,
    DeleteGrant,
    Webhook,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
}

impl Route {
    const ALL: [Route; 14] = [
        Route::Signature,
        Route::VideoToken,
        Route::Zak,
        Route::ObfToken,
        Route::Join,
        Route::S2sToken,
        Route::Authorize,
        Route::Callback,
        Route::DeleteGrant,
        Route::Webhook,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
    ];
    /// Routes whose body is a JSON object read by `JsonObject`.
    const BODIES: [Route; 5] = [
        Route::Signature,
        Route::VideoToken,
        Route::Join,
        Route::S2sToken,
        Route::Authorize,
    ];
    /// Routes with a `{userId}` path parameter.
    const USERS: [Route; 3] = [Route::Zak, Route::ObfToken, Route::DeleteGrant];
    /// Routes that need a caller.
    const CALLERS: [Route; 8] = [
        Route::Signature,
        Route::VideoToken,
        Route::Zak,
        Route::ObfToken,
        Route::Join,
        Route::S2sToken,
        Route::Authorize,
        Route::DeleteGrant,
    ];

    fn method(self) -> Method {
        match self {
            Route::Zak
            | Route::ObfToken
            | Route::Callback
            | Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::OpenApi => Method::GET,
            Route::DeleteGrant => Method::DELETE,
            _ => Method::POST,
        }
    }

    /// The path, with `user` (already percent-encoded) as `{userId}`.
    fn path(self, user: &str) -> String {
        match self {
            Route::Signature => "/v1/meeting-sdk/signature".into(),
            Route::VideoToken => "/v1/video-sdk/token".into(),
            Route::Zak => format!("/v1/users/{user}/zak"),
            Route::ObfToken => format!("/v1/users/{user}/obf-token"),
            Route::Join => "/v1/join".into(),
            Route::S2sToken => "/v1/s2s/token".into(),
            Route::Authorize => "/v1/oauth/authorize".into(),
            Route::Callback => "/v1/oauth/callback".into(),
            Route::DeleteGrant => format!("/v1/oauth/grants/{user}"),
            Route::Webhook => "/v1/webhooks/zoom".into(),
            Route::Healthz => "/healthz".into(),
            Route::Readyz => "/readyz".into(),
            Route::Metrics => "/metrics".into(),
            Route::OpenApi => "/openapi.json".into(),
        }
    }

    /// A 2xx answer is the route's documented body (unknown fields refused).
    fn check_success(self, status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
        fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
            serde_json::from_slice(body).map_err(|e| format!("not the documented body: {e}"))
        }
        let json = || {
            content_type
                .starts_with("application/json")
                .then_some(())
                .ok_or_else(|| format!("content-type {content_type:?}"))
        };
        match (self, status) {
            (Route::Signature, 200) => {
                json()?;
                let b: SignatureBody = parse(body)?;
                jwt(&b.signature)?;
                nonempty(&b.sdk_key)?;
                timestamp(&b.expires_at)
            }
            (Route::VideoToken, 200) => {
                json()?;
                let b: VideoTokenBody = parse(body)?;
                jwt(&b.signature)?;
                timestamp(&b.expires_at)
            }
            (Route::Zak, 200) => {
                json()?;
                let b: ZakBody = parse(body)?;
                nonempty(&b.zak)?;
                source(&b.source)?;
                timestamp(&b.expires_at)
            }
            (Route::ObfToken, 200) => {
                json()?;
                let b: ObfBody = parse(body)?;
                nonempty(&b.obf_token)?;
                source(&b.source)?;
                timestamp(&b.expires_at)
            }
            (Route::Join, 200) => {
                json()?;
                let b: JoinBody = parse(body)?;
                jwt(&b.signature)?;
                nonempty(&b.sdk_key)?;
                if let Some(s) = &b.source {
                    source(s)?;
                }
                if b.source.is_some() != (b.zak.is_some() || b.obf_token.is_some()) {
                    return Err("`source` exactly when a ZAK or OBF token is given".into());
                }
                timestamp(&b.expires_at)
            }
            (Route::S2sToken, 200) => {
                json()?;
                let b: S2sBody = parse(body)?;
                nonempty(&b.access_token)?;
                nonempty(&b.token_type)?;
                let _ = b.scope;
                url::Url::parse(&b.api_url).map_err(|e| format!("apiUrl: {e}"))?;
                timestamp(&b.expires_at)
            }
            (Route::Authorize, 200) => {
                json()?;
                let b: AuthorizeBody = parse(body)?;
                url::Url::parse(&b.authorize_url).map_err(|e| format!("authorizeUrl: {e}"))?;
                Ok(())
            }
            (Route::Callback, 200) => content_type
                .starts_with("text/html")
                .then_some(())
                .ok_or_else(|| format!("content-type {content_type:?}")),
            (Route::DeleteGrant, 200) => {
                json()?;
                let b: Value = parse(body)?;
                b["revokedAtZoom"]
                    .is_boolean()
                    .then_some(())
                    .ok_or_else(|| format!("no revokedAtZoom in {b}"))
            }
            (Route::Webhook, 200) => {
                json()?;
                match parse::<WebhookBody>(body)? {
                    WebhookBody::Validation {
                        plain_token,
                        encrypted_token,
                    } => {
                        let _ = plain_token;
                        (encrypted_token.len() == 64
                            && encrypted_token.bytes().all(|b| b.is_ascii_hexdigit()))
                        .then_some(())
                        .ok_or_else(|| "encryptedToken is not hex HMAC-SHA256".to_string())
                    }
                    WebhookBody::Received { received, .. } => received
                        .then_some(())
                        .ok_or_else(|| "received: false".to_string()),
                }
            }
            (Route::Healthz, 200) => {
                json()?;
                (parse::<Value>(body)? == json!({"status": "ok"}))
                    .then_some(())
                    .ok_or_else(|| "not {\"status\":\"ok\"}".to_string())
            }
            (Route::Readyz, 200) => {
                json()?;
                (parse::<Value>(body)?["status"] == "ready")
                    .then_some(())
                    .ok_or_else(|| "200 but not ready".to_string())
            }
            (Route::Metrics, 200) => content_type
                .starts_with("text/plain")
                .then_some(())
                .ok_or_else(|| format!("content-type {content_type:?}")),
            (Route::OpenApi, 200) => {
                json()?;
                parse::<Value>(body)?["openapi"]
                    .as_str()
                    .filter(|v| v.starts_with("3.1"))
                    .map(|_| ())
                    .ok_or_else(|| "not an OpenAPI 3.1 document".to_string())
            }
            _ => Err("a success status the route does not document".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SignatureBody {
    signature: String,
    sdk_key: String,
    expires_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VideoTokenBody {
    signature: String,
    expires_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ZakBody {
    zak: String,
    expires_at: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ObfBody {
    obf_token: String,
    expires_at: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JoinBody {
    signature: String,
    sdk_key: String,
    zak: Option<String>,
    obf_token: Option<String>,
    expires_at: String,
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct S2sBody {
    access_token: String,
    token_type: String,
    expires_at: String,
    scope: String,
    api_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AuthorizeBody {
    authorize_url: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WebhookBody {
    #[serde(rename_all = "camelCase")]
    Validation {
        plain_token: String,
        encrypted_token: String,
    },
    #[serde(rename_all = "camelCase")]
    Received {
        received: bool,
        #[allow(dead_code)]
        grants_deleted: Option<u32>,
    },
}

fn nonempty(text: &str) -> Result<(), String> {
    (!text.is_empty())
        .then_some(())
        .ok_or_else(|| "an empty token".to_string())
}

fn jwt(token: &str) -> Result<(), String> {
    (token.split('.').count() == 3 && token.split('.').all(|part| !part.is_empty()))
        .then_some(())
        .ok_or_else(|| "not a JWT".to_string())
}

fn source(text: &str) -> Result<(), String> {
    matches!(text, "user_grant" | "account")
        .then_some(())
        .ok_or_else(|| format!("source {text:?}"))
}

/// RFC 3339 in UTC as the service writes it: `2025-01-01T14:00:00Z`.
fn timestamp(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    (b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z')
        .then_some(())
        .ok_or_else(|| format!("expiresAt {text:?} is not RFC 3339 UTC"))
}

// ---------------------------------------------------------------------------------------------
// A request and the judgement of its answer
// ---------------------------------------------------------------------------------------------

/// The credential a probe presents.
#[derive(Clone, Debug)]
enum Auth {
    Nothing,
    /// One of the target's keys, as `Authorization: Bearer`.
    Key(usize),
    /// Raw header values (valid as HTTP header values, anything else).
    Raw(Vec<(&'static str, Vec<u8>)>),
}

#[derive(Clone)]
struct Probe {
    route: Route,
    method: Method,
    /// Path and query, percent-encoded as sent.
    target: String,
    auth: Auth,
    content_type: Option<Vec<u8>>,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

impl Probe {
    fn new(route: Route) -> Probe {
        Probe {
            route,
            method: route.method(),
            target: route.path(ALICE_ID),
            auth: Auth::Key(0),
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn json(mut self, body: &Value) -> Probe {
        self.body = serde_json::to_vec(body).unwrap();
        self.content_type = Some(b"application/json".to_vec());
        self
    }
}

/// At most `max` characters of `bytes`, escaped, for failure reports.
fn shown(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max {
        out.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    out
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::Nothing => "none".to_string(),
            Auth::Key(i) => format!("key #{i}"),
            Auth::Raw(headers) => headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", shown(v, 120)))
                .collect::<Vec<_>>()
                .join(" | "),
        };
        write!(
            f,
            "{} {} [{:?}] auth={auth} content-type={:?} headers={:?} body={}",
            self.method,
            shown(self.target.as_bytes(), 300),
            self.route,
            self.content_type.as_deref().map(|c| shown(c, 80)),
            self.headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", shown(v, 80)))
                .collect::<Vec<_>>(),
            shown(&self.body, 400),
        )
    }
}

/// Sends `probe` and judges the answer.
async fn answer(t: &Target, probe: Probe) -> TestCaseResult {
    send(t, probe).await.map(|_| ())
}

/// As [`answer`], returning the status of an answer that passed.
async fn send(t: &Target, probe: Probe) -> Result<u16, TestCaseError> {
    let Ok(url) = reqwest::Url::parse(&format!("{}{}", t.app.base, probe.target)) else {
        return Err(TestCaseError::reject("not a URL"));
    };
    let mut request = t.http.request(probe.method.clone(), url);
    match &probe.auth {
        Auth::Nothing => {}
        Auth::Key(i) => request = request.bearer_auth(&t.keys[*i]),
        Auth::Raw(headers) => {
            for (name, value) in headers {
                request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
            }
        }
    }
    if let Some(content_type) = &probe.content_type {
        request = request.header(CONTENT_TYPE, HeaderValue::from_bytes(content_type).unwrap());
    }
    for (name, value) in &probe.headers {
        request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    if !probe.body.is_empty() {
        request = request.body(probe.body.clone());
    }
    let response = request
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e:?}")))?;
    let status = response.status().as_u16();
    SEEN.with_borrow_mut(|seen| *seen.entry((probe.route, status)).or_default() += 1);
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| TestCaseError::fail(format!("{status}: unreadable body: {e}")))?;
    judge(&probe, status, &headers, &body).map_err(|problem| {
        TestCaseError::fail(format!("{status} {problem}: {}", shown(&body, 600)))
    })?;
    Ok(status)
}

/// Every error code, to find a code's status.
const ERROR_CODES: [ErrorCode; 12] = [
    ErrorCode::InvalidRequest,
    ErrorCode::Unauthenticated,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::RequestTimeout,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::RateLimited,
    ErrorCode::UpstreamError,
    ErrorCode::UpstreamUnavailable,
    ErrorCode::Internal,
];

fn judge(probe: &Probe, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request_id = header("x-request-id").ok_or("without x-request-id")?;
    // `/readyz` answers 503 with its report when the store does not answer; the store is up.
    if status >= 500 {
        return Err("a server error".into());
    }
    if probe.method == Method::HEAD {
        return Ok(());
    }
    let content_type = header("content-type").unwrap_or("");
    match status {
        200..=299 => probe.route.check_success(status, content_type, body),
        302 if probe.route == Route::Callback && header("location").is_some() => Ok(()),
        400..=499 => {
            if !content_type.starts_with("application/json") {
                return Err(format!("error with content-type {content_type:?}"));
            }
            let value: Value =
                serde_json::from_slice(body).map_err(|e| format!("error body not JSON: {e}"))?;
            let top = value.as_object().ok_or("error body not an object")?;
            let error = match (top.len(), top.get("error")) {
                (1, Some(Value::Object(error))) => error,
                _ => return Err("not exactly {\"error\": {…}}".into()),
            };
            let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
            keys.sort_unstable();
            if keys != ["code", "message", "requestId"] {
                return Err(format!("error fields {keys:?}"));
            }
            let code = error["code"].as_str().ok_or("code not a string")?;
            let known = ERROR_CODES
                .iter()
                .find(|c| c.as_str() == code)
                .ok_or_else(|| format!("unknown code {code:?}"))?;
            if known.status().as_u16() != status {
                return Err(format!("code {code} with status {status}"));
            }
            match error["message"].as_str() {
                Some(message) if !message.is_empty() => {}
                _ => return Err("message not a non-empty string".into()),
            }
            if error["requestId"] != request_id {
                return Err(format!("requestId is not the x-request-id {request_id:?}"));
            }
            if status == 429 && header("retry-after").is_none() {
                return Err("429 without Retry-After".into());
            }
            if status == 401 && header("www-authenticate").is_none() {
                return Err("401 without WWW-Authenticate".into());
            }
            Ok(())
        }
        _ => Err("an unexpected status".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Strings that have broken parsers before.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "me",
    "ME",
    "null",
    "0",
    "-1",
    "1abc",
    "123456789",
    "0123456789",
    "000000000",
    "1234567890123",
    " 123456789",
    "123456789 ",
    "１２３４５６７８９",
    "٣٤٥٦٧٨٩١٢٣",
    "1e9",
    "\u{0}",
    "\u{7f}",
    "\u{202e}evil",
    "\u{feff}",
    "a\nb",
    "\t",
    "../../etc/passwd",
    "..",
    ".",
    "%00",
    "%2e%2e",
    "ztv_",
    "Bearer",
    "<script>alert(1)</script>",
    "' OR '1'='1",
    "US,DE",
    "us, de",
    ",",
    "US,,DE",
    "XX",
    "😀",
    "\u{10FFFF}",
    "{}",
    "[]",
    "prod",
    "dev",
    "nope",
    "alice@example.com",
    "uAlice01",
    "endpoint.url_validation",
    "app_deauthorized",
];

/// Short strings of every kind: printable unicode, any `char` (control characters
/// included), digits, printable ASCII, and known troublemakers.
fn short_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "\\PC{0,40}",
        3 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        2 => "[0-9]{0,24}",
        2 => "[ -~]{0,60}",
        3 => prop::sample::select(ODD_STRINGS).prop_map(str::to_string),
    ]
    .boxed()
}

/// As [`short_string`], sometimes very long: around the 64 KiB body limit.
fn any_string() -> BoxedStrategy<String> {
    prop_oneof![
        12 => short_string(),
        1 => (prop::char::range(' ', '~'), 0..(BODY_LIMIT + 2048))
            .prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => (any::<char>(), 0..20_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// Numbers at and beyond every edge the routes check.
fn odd_number() -> BoxedStrategy<Value> {
    prop::sample::select(vec![
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(9_007_199_254_740_993_u64),
        json!(-1),
        json!(0),
        json!(1),
        json!(2),
        json!(-0.0),
        json!(0.5),
        json!(1.0),
        json!(1800.0),
        json!(1e300),
        json!(-1e300),
        json!(f64::MIN_POSITIVE),
        json!(99_999_999),
        json!(100_000_000),
        json!(999_999_999_999_i64),
        json!(1_000_000_000_000_i64),
        json!(-123_456_789),
        json!(1799),
        json!(172_801),
    ])
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        2 => odd_number(),
        4 => short_string().prop_map(Value::String),
    ]
    .boxed()
}

/// A field name: plausible, arbitrary, or one some route knows.
fn field_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-zA-Z_]{1,16}",
        2 => short_string(),
        2 => prop::sample::select(KNOWN_FIELDS).prop_map(str::to_string),
    ]
    .boxed()
}

const KNOWN_FIELDS: &[&str] = &[
    "meetingNumber",
    "role",
    "expirationSeconds",
    "videoWebRtcMode",
    "audioWebRtcMode",
    "account",
    "sessionName",
    "sessionKey",
    "userKey",
    "userIdentity",
    "geoRegions",
    "cloudRecordingOption",
    "cloudRecordingElection",
    "telemetryTrackingId",
    "userId",
    "withZak",
    "withObf",
    "userHint",
    "event",
    "payload",
    "plainToken",
    "user_id",
    "client_id",
];

/// Any JSON value, nested up to four levels.
fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((field_name(), inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A value of any type for a known field: mostly leaves, sometimes long, sometimes nested.
fn hostile_value() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => json_leaf(),
        2 => json_value(),
        1 => any_string().prop_map(Value::String),
    ]
    .boxed()
}

fn select(values: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(values).prop_map(Value::from).boxed()
}

fn flag() -> BoxedStrategy<Value> {
    (0..=1i64).prop_map(Value::from).boxed()
}

fn meeting_number() -> BoxedStrategy<Value> {
    prop_oneof![
        "[1-9][0-9]{8,11}".prop_map(Value::from),
        (100_000_000i64..=999_999_999_999).prop_map(Value::from),
    ]
    .boxed()
}

const USERS: &[&str] = &[
    "me",
    ALICE_ID,
    ALICE_EMAIL,
    BOB_ID,
    "uCarol03",
    "nobody@example.com",
];

/// A known body field: its name, how often a case sends it, and its valid values.
type Field = (&'static str, f64, BoxedStrategy<Value>);

/// A route's known body fields. Required ones are sent in most cases, `userKey` and
/// `userIdentity` (which exclude each other) in few, so that a fair share of cases succeed.
fn known_fields(route: Route) -> Vec<Field> {
    let account = || prop_oneof![3 => Just(json!("prod")), 1 => Just(json!("dev"))].boxed();
    let expiration = || (1800..=172_800i64).prop_map(Value::from).boxed();
    let text = |pattern: &'static str| pattern.prop_map(Value::from).boxed();
    match route {
        Route::Signature => vec![
            ("meetingNumber", 0.7, meeting_number()),
            ("role", 0.7, flag()),
            ("expirationSeconds", 0.4, expiration()),
            ("videoWebRtcMode", 0.4, flag()),
            ("account", 0.5, account()),
        ],
        Route::VideoToken => vec![
            (
                "sessionName",
                0.95,
                text("[A-Za-z0-9 !#$%&()+:;<=.>?@^_|~,-]{1,200}"),
            ),
            ("role", 0.95, flag()),
            ("expirationSeconds", 0.4, expiration()),
            ("sessionKey", 0.4, text("[A-Za-z0-9]{1,36}")),
            ("userKey", 0.3, text("[A-Za-z0-9]{1,36}")),
            ("userIdentity", 0.15, text("[A-Za-z0-9]{1,35}")),
            (
                "geoRegions",
                0.4,
                prop_oneof![
                    prop::collection::vec(select(&["US", "de", "JP", "AU"]), 1..4)
                        .prop_map(Value::Array),
                    Just(json!("US, DE")),
                ]
                .boxed(),
            ),
            ("cloudRecordingOption", 0.3, flag()),
            ("cloudRecordingElection", 0.3, flag()),
            ("telemetryTrackingId", 0.3, text("[a-z0-9-]{1,64}")),
            ("videoWebRtcMode", 0.3, flag()),
            ("audioWebRtcMode", 0.3, flag()),
            ("account", 0.5, account()),
        ],
        Route::Join => vec![
            ("meetingNumber", 0.9, meeting_number()),
            ("role", 0.9, flag()),
            ("expirationSeconds", 0.4, expiration()),
            ("videoWebRtcMode", 0.4, flag()),
            ("userId", 0.6, select(USERS)),
            ("withZak", 0.5, any::<bool>().prop_map(Value::Bool).boxed()),
            ("withObf", 0.5, any::<bool>().prop_map(Value::Bool).boxed()),
            ("account", 0.5, account()),
        ],
        Route::S2sToken => vec![("account", 0.5, account())],
        Route::Authorize => vec![
            ("account", 0.5, account()),
            ("userHint", 0.9, select(USERS)),
        ],
        _ => Vec::new(),
    }
}

/// A body for `route`: each known field present or not, mostly valid, sometimes of any type;
/// now and then fields the route does not know.
fn body_object(route: Route) -> BoxedStrategy<Map<String, Value>> {
    let known: Vec<BoxedStrategy<Option<(String, Value)>>> = known_fields(route)
        .into_iter()
        .map(|(name, presence, valid)| {
            let value = prop_oneof![8 => valid, 1 => hostile_value()];
            prop::option::weighted(presence, value.prop_map(move |v| (name.to_string(), v))).boxed()
        })
        .collect();
    let extra = prop_oneof![
        6 => Just(Vec::new()),
        1 => prop::collection::vec((field_name(), json_value()), 1..4),
    ];
    (known, extra)
        .prop_map(|(known, extra)| known.into_iter().flatten().chain(extra).collect())
        .boxed()
}

/// Which of the target's keys, or none.
fn auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        8 => (0..2usize).prop_map(Auth::Key),
        1 => Just(Auth::Nothing),
    ]
    .boxed()
}

/// Percent-encodes every byte but the unreserved ones.
fn encode_all(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-encodes what a query cannot carry, and keeps `% & = +` so that broken escapes
/// and odd pairs reach the server as typed.
fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'!'..=b'~'
                if !matches!(
                    b,
                    b'"' | b'#'
                        | b'<'
                        | b'>'
                        | b'`'
                        | b'{'
                        | b'}'
                        | b'|'
                        | b'\\'
                        | b'^'
                        | b'['
                        | b']'
                ) =>
            {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `{userId}` path segment: an encoded arbitrary string, a known user, or raw escapes.
fn path_segment() -> BoxedStrategy<String> {
    prop_oneof![
        4 => short_string().prop_map(|s| encode_all(&s)),
        2 => prop::sample::select(USERS).prop_map(str::to_string),
        3 => prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9._~@+-]{1,4}",
                prop::sample::select(vec![
                    "%", "%FF", "%00", "%2F", "%2f", "%2e", "%2E%2E", "..", ".", "%C0%AF",
                    "%zz", "%E2%82", "%25", "+", "@", ";", "=", "%20", "%0A", "%5C", ",", "!",
                ]).prop_map(str::to_string),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat()),
        1 => (prop::char::range('a', 'z'), 100..9000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// A query string: the route's own parameters with values of any kind, repeated or not,
/// unknown ones, or raw garbage.
fn query() -> BoxedStrategy<String> {
    let name = prop_oneof![
        3 => prop::sample::select(vec![
            "account", "meetingNumber", "state", "code", "error", "userId", "role",
        ])
        .prop_map(str::to_string),
        1 => short_string(),
    ];
    let value = prop_oneof![
        2 => "[1-9][0-9]{8,11}",
        1 => prop::sample::select(vec!["prod", "dev"]).prop_map(str::to_string),
        3 => short_string(),
    ];
    prop_oneof![
        3 => prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &pairs {
                query.append_pair(name, value);
            }
            query.finish()
        }),
        2 => short_string().prop_map(|s| encode_query(&s)),
        1 => prop::collection::vec(
            prop::sample::select(vec![
                "&", "=", "&&", "==", "%", "%FF", "%00", "+", "%2B", "account", "meetingNumber",
                "state", "123456789", "prod", "%ZZ", ";", "?",
            ]),
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

/// Header value bytes the HTTP stack will carry (no CR, LF, NUL or other controls but tab).
fn header_bytes(bytes: Vec<u8>) -> Option<Vec<u8>> {
    HeaderValue::from_bytes(&bytes).ok().map(|_| bytes)
}

fn any_header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => short_string().prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<u8>(), 0..80),
    ]
    .prop_filter_map("not a header value", header_bytes)
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_json_bodies_on_every_body_route_are_answered_in_shape() {
    let t = Target::start("").await;
    let strategy = (
        prop::sample::select(Route::BODIES.to_vec()),
        json_value(),
        auth(),
    );

    check_all(strategy, |(route, body, auth)| {
        let probe = Probe {
            auth,
            ..Probe::new(route).json(&body)
        };
        answer(&t, probe)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_fields_with_values_of_any_type_are_answered_in_shape() {
    let t = Target::start("").await;
    let strategy = prop::sample::select(Route::BODIES.to_vec())
        .prop_flat_map(|route| (Just(route), body_object(route), auth()));

    check_all(strategy, |(route, body, auth)| {
        let probe = Probe {
            auth,
            ..Probe::new(route).json(&Value::Object(body))
        };
        answer(&t, probe)
    });
}

/// JSON text with numbers and strings `serde_json::Value` cannot hold or that parsers
/// disagree on: huge exponents, lone surrogates, duplicate keys, leading zeros.
fn odd_json_text() -> BoxedStrategy<Vec<u8>> {
    let raw = prop::sample::select(vec![
        "1e400",
        "-1e400",
        "-0",
        "0.0",
        "1E2",
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        "1.0e9",
        "NaN",
        "Infinity",
        "0x1F",
        "01",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"123456789\\u0000\"",
        "[]",
        "{}",
        "true",
        "null",
        "\"\"",
    ]);
    let field = prop::sample::select(vec![
        "meetingNumber",
        "role",
        "expirationSeconds",
        "sessionName",
        "geoRegions",
        "account",
        "userId",
        "withZak",
    ]);
    prop::collection::vec((field, raw), 1..5)
        .prop_map(|pairs| {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(field, raw)| format!("\"{field}\": {raw}"))
                .collect();
            format!("{{{}}}", inner.join(", ")).into_bytes()
        })
        .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_with_any_content_type_are_answered_in_shape() {
    let t = Target::start("").await;
    let body = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..512),
        2 => odd_json_text(),
        2 => any_string().prop_map(String::into_bytes),
        1 => (any::<u8>(), (BODY_LIMIT - 16)..(BODY_LIMIT + 16)).prop_map(|(b, n)| vec![b; n]),
    ];
    let content_type = prop_oneof![
        2 => Just(None),
        3 => Just(Some(b"application/json".to_vec())),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/problem+json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json;;;",
            ";",
            "",
        ])
        .prop_map(|c| Some(c.as_bytes().to_vec())),
        1 => any_header_value().prop_map(Some),
    ];
    let strategy = (
        prop::sample::select(vec![
            Route::Signature,
            Route::VideoToken,
            Route::Join,
            Route::S2sToken,
            Route::Authorize,
            Route::Webhook,
            Route::Zak,
            Route::Callback,
        ]),
        body,
        content_type,
        auth(),
    );

    check_all(strategy, |(route, body, content_type, auth)| {
        let probe = Probe {
            auth,
            content_type,
            body,
            ..Probe::new(route)
        };
        answer(&t, probe)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_path_parameters_are_answered_in_shape() {
    let t = Target::start("").await;
    let strategy = (
        prop::sample::select(Route::USERS.to_vec()),
        path_segment(),
        prop_oneof![
            Just(String::new()),
            "[1-9][0-9]{8,11}".prop_map(|n| format!("?meetingNumber={n}")),
        ],
        auth(),
    );

    check_all(strategy, |(route, user, query, auth)| {
        let probe = Probe {
            auth,
            target: format!("{}{query}", route.path(&user)),
            ..Probe::new(route)
        };
        answer(&t, probe)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_query_strings_on_every_route_are_answered_in_shape() {
    let t = Target::start("").await;
    let strategy = (prop::sample::select(Route::ALL.to_vec()), query(), auth());

    check_all(strategy, |(route, query, auth)| {
        let probe = Probe {
            auth,
            target: format!("{}?{query}", route.path(ALICE_ID)),
            ..Probe::new(route)
        };
        answer(&t, probe)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_credentials_are_unauthenticated_in_shape() {
    let t = Target::start("").await;
    let real = t.keys[0].clone();
    // Near misses of a real key: one character changed, cut short, made longer.
    let near_miss = (0..real.len(), any::<char>(), 0..3u8).prop_map(move |(at, c, how)| {
        let mut key: Vec<char> = real.chars().collect();
        match how {
            0 => key[at] = if key[at] == c { '!' } else { c },
            1 => key.truncate(at),
            _ => key.insert(at, c),
        }
        key.into_iter().collect::<String>()
    });
    let credential = prop_oneof![
        2 => "ztv_[A-Za-z0-9_-]{43}",
        2 => near_miss,
        2 => short_string(),
        1 => "[A-Za-z0-9_-]{0,100}\\.[A-Za-z0-9_-]{0,100}\\.[A-Za-z0-9_-]{0,100}",
    ]
    .boxed();
    let scheme = prop::sample::select(vec![
        "Bearer ", "bearer ", "BEARER ", "Bearer  ", "Bearer", "Basic ", "Token ", "", " ",
    ]);
    let headers = prop_oneof![
        3 => (scheme, credential.clone()).prop_filter_map("not a header value", |(s, c)| {
            header_bytes(format!("{s}{c}").into_bytes()).map(|v| vec![("authorization", v)])
        }),
        2 => credential.prop_filter_map("not a header value", |c| {
            header_bytes(c.into_bytes()).map(|v| vec![("x-api-key", v)])
        }),
        1 => (any_header_value(), any_header_value())
            .prop_map(|(a, k)| vec![("authorization", a), ("x-api-key", k)]),
        1 => any_header_value().prop_map(|a| vec![("authorization", a)]),
    ];
    let strategy = (prop::sample::select(Route::CALLERS.to_vec()), headers);

    check_all(strategy, |(route, headers)| {
        let presents_a_key = headers.iter().any(|(_, value)| {
            t.keys
                .iter()
                .any(|key| String::from_utf8_lossy(value).contains(key.as_str()))
        });
        let probe = Probe {
            auth: Auth::Raw(headers),
            ..Probe::new(route)
        };
        let t = &t;
        async move {
            let status = send(t, probe).await?;
            if !presents_a_key {
                prop_assert_eq!(status, 401, "a credential that is no key got in");
            }
            Ok(())
        }
    });
}

/// When a webhook says it was signed, in Unix seconds.
#[derive(Debug, Clone)]
enum Timestamp {
    /// Now plus this many seconds.
    Now(i64),
    Raw(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_events_of_any_shape_are_answered_in_shape() {
    let t = Target::start("").await;
    let payload_field = prop_oneof![
        3 => prop::sample::select(vec!["plainToken", "user_id", "client_id", "account_id"])
            .prop_map(str::to_string),
        1 => field_name(),
    ];
    let payload_value = prop_oneof![
        2 => select(&[ALICE_ID, ALICE_EMAIL, OAUTH_CLIENT, "qgg8vlvZRS6UYooatFL8Aw"]),
        3 => hostile_value(),
    ];
    let event = (
        prop_oneof![
            3 => select(&["endpoint.url_validation", "app_deauthorized", "meeting.started"]),
            1 => hostile_value(),
        ],
        prop_oneof![
            4 => prop::collection::vec((payload_field, payload_value), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            1 => hostile_value(),
        ],
        prop::option::of(json_value()),
    )
        .prop_map(|(event, payload, extra)| {
            let mut body = json!({"event": event, "payload": payload, "event_ts": 1});
            if let Some(extra) = extra {
                body["extra"] = extra;
            }
            serde_json::to_vec(&body).unwrap()
        });
    let body = prop_oneof![
        5 => event,
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => odd_json_text(),
    ];
    let timestamp = prop_oneof![
        6 => Just(Timestamp::Now(0)),
        1 => (-100_000i64..100_000).prop_map(Timestamp::Now),
        1 => prop::sample::select(vec![
            "-9223372036854775808",
            "9223372036854775807",
            "-1",
            "0",
            "1e9",
            "",
            "abc",
            "99999999999999999999",
        ])
        .prop_map(|t| Timestamp::Raw(t.into())),
    ];
    let strategy = (body, timestamp, prop::bool::weighted(0.9));

    check_all(strategy, |(body, timestamp, well_signed)| {
        let timestamp = match timestamp {
            Timestamp::Now(offset) => (now() + offset).to_string(),
            Timestamp::Raw(raw) => raw,
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(&body);
        let mut signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        if !well_signed {
            signature.pop();
        }
        let probe = Probe {
            auth: Auth::Nothing,
            content_type: Some(b"application/json".to_vec()),
            headers: vec![
                ("x-zm-request-timestamp", timestamp.into_bytes()),
                ("x-zm-signature", signature.into_bytes()),
            ],
            body,
            ..Probe::new(Route::Webhook)
        };
        answer(&t, probe)
    });
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_tokens_with_hostile_claims_are_answered_in_shape() {
    let key = idp::ec_key("ec-props");
    let provider = Idp::start(&[&key]).await;
    let scopes =
        r#""meeting-sdk:signature", "meeting-sdk:host", "video-sdk:token", "zak:read", "obf:read""#;
    let t = Target::start(&idp::end_users_config(&provider, scopes)).await;

    // Valid claims with some replaced by values of any type, removed, or added to.
    let claims = provider.claims(ALICE_EMAIL);
    let change = prop_oneof![
        1 => Just(None),
        3 => hostile_value().prop_map(Some),
        1 => Just(Some(json!(provider.issuer))),
        1 => select(&[ALICE_EMAIL, "bob@example.com", "nobody@example.com", "me"]).prop_map(Some),
    ];
    let changes = prop::collection::vec(
        (
            prop::sample::select(vec!["iss", "aud", "sub", "email", "iat", "nbf", "exp"]),
            change,
        ),
        0..3,
    );
    let kid = prop_oneof![
        4 => Just(Some("ec-props".to_string())),
        1 => Just(None),
        1 => short_string().prop_map(Some),
    ];
    let signed =
        (changes, kid, prop::bool::weighted(0.85)).prop_map(move |(changes, kid, es256)| {
            let mut claims = claims.clone();
            for (name, value) in changes {
                match value {
                    Some(value) => claims[name] = value,
                    None => {
                        claims.as_object_mut().unwrap().remove(name);
                    }
                }
            }
            let alg = if es256 {
                jsonwebtoken::Algorithm::ES256
            } else {
                jsonwebtoken::Algorithm::HS256
            };
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = kid;
            let encoding = if es256 {
                key.encoding.clone()
            } else {
                jsonwebtoken::EncodingKey::from_secret(b"guessed")
            };
            jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
        });
    // Not signed at all: arbitrary headers and payloads, random segments.
    let unsigned = prop_oneof![
        (
            json_value(),
            json_value(),
            prop::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(header, payload, signature)| format!(
                "{}.{}.{}",
                base64url(header.to_string().as_bytes()),
                base64url(payload.to_string().as_bytes()),
                base64url(&signature)
            )),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..5).prop_map(|parts| {
            parts
                .iter()
                .map(|p| base64url(p))
                .collect::<Vec<_>>()
                .join(".")
        }),
        short_string(),
    ];
    let token = prop_oneof![3 => signed, 2 => unsigned];
    let request = prop_oneof![
        Just(Probe::new(Route::Signature).json(&json!({"meetingNumber": "123456789", "role": 0}))),
        Just(Probe::new(Route::VideoToken).json(&json!({"sessionName": "props", "role": 1}))),
        Just(Probe {
            target: Route::Zak.path("me"),
            ..Probe::new(Route::Zak)
        }),
        Just(Probe {
            target: format!("{}?meetingNumber=123456789", Route::ObfToken.path("me")),
            ..Probe::new(Route::ObfToken)
        }),
        Just(Probe::new(Route::Join).json(&json!({"meetingNumber": 123456789, "role": 1}))),
        Just(Probe::new(Route::Authorize)),
        Just(Probe {
            target: Route::DeleteGrant.path("me"),
            ..Probe::new(Route::DeleteGrant)
        }),
    ];
    // Request heads over `server.max_header_bytes` (16 KiB) are refused by hyper with a bare
    // 431 before any of ztv's code runs: tokens stay well under it.
    let strategy = (request, token).prop_filter_map("not a header value", |(probe, token)| {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let value = header_bytes(format!("Bearer {token}").into_bytes())?;
        Some(Probe {
            auth: Auth::Raw(vec![("authorization", value)]),
            ..probe
        })
    });

    check_all(strategy, |probe| answer(&t, probe));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_method_on_any_route_is_answered_in_shape() {
    let t = Target::start("").await;
    let method = prop_oneof![
        3 => prop::sample::select(vec![
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
        ]),
        1 => "[A-Z]{1,12}"
            .prop_filter("CONNECT needs an authority", |m| m != "CONNECT")
            .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ];
    let request_id = prop_oneof![
        2 => Just(None),
        1 => "[A-Za-z0-9._:-]{1,128}".prop_map(|id| Some(id.into_bytes())),
        1 => any_header_value().prop_map(Some),
    ];
    let body = prop_oneof![
        2 => Just(Vec::new()),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ];
    let strategy = (
        prop::sample::select(Route::ALL.to_vec()),
        method,
        request_id,
        body,
        auth(),
    );

    check_all(strategy, |(route, method, request_id, body, auth)| {
        let probe = Probe {
            method,
            auth,
            headers: request_id
                .map(|id| vec![("x-request-id", id)])
                .unwrap_or_default(),
            content_type: (!body.is_empty()).then(|| b"application/json".to_vec()),
            body,
            ..Probe::new(route)
        };
        answer(&t, probe)
    });
}

/// Characters whose Unicode case mapping lands on ASCII (KELVIN SIGN → `k`, LONG S → `S`,
/// dotted and dotless I, the `ﬀ` ligature, sharp s), other non-ASCII letters, and controls.
const FOLDING_TRAPS: &[char] = &[
    '\u{212A}', '\u{017F}', '\u{0130}', '\u{0131}', '\u{FB00}', '\u{00DF}', '\u{00E9}', '\u{0000}',
    '\n', '\r', '\u{1b}', '\u{85}', ' ',
];

/// The end users the emulator knows, by email.
const PEOPLE: &[(&str, &str)] = &[
    ("uKate0001", "kate@example.com"),
    ("uKit00002", "kit@example.com"),
    ("uSissi003", "sissi@example.com"),
];

/// A person's email with some letters' ASCII case flipped and some characters replaced by a
/// trap, inserted or removed.
fn identity_variant() -> BoxedStrategy<String> {
    let edit = prop_oneof![
        3 => Just(None),
        2 => prop::sample::select(FOLDING_TRAPS).prop_map(Some),
    ];
    (
        prop::sample::select(PEOPLE),
        prop::collection::vec((any::<bool>(), edit, 0..4u8), 1..24),
    )
        .prop_map(|((_, email), edits)| {
            let mut out = String::new();
            for (c, (flip, edit, how)) in email.chars().zip(edits.iter().cycle()) {
                match (edit, how) {
                    (Some(trap), 0) => out.push(*trap),
                    (Some(trap), 1) => {
                        out.push(c);
                        out.push(*trap);
                    }
                    (Some(_), 2) => {}
                    _ if *flip => out.push(c.to_ascii_uppercase()),
                    _ => out.push(c),
                }
            }
            out
        })
        .boxed()
}

/// ASCII case folded: the only way two identities may be the same.
fn fold(text: &str) -> String {
    text.to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_end_user_identities_never_reach_the_same_token_or_grant() {
    let key = idp::ec_key("ec-identities");
    let provider = Idp::start(&[&key]).await;
    let t = Target::start(&idp::end_users_config(&provider, r#""zak:read""#)).await;
    for (id, email) in PEOPLE {
        t.app.zoom.add_user(S2S_ACCOUNT_ID, id, email);
    }
    // Kate has a grant while each case tries to delete it: only an identity that is hers
    // (ASCII case aside) may. (Its tokens are not real: it never serves a ZAK.)
    let kate = ztv::zoom_user::ZoomUser::parse(PEOPLE[0].1).unwrap();
    let kates_grant = ztv::store::GrantRow {
        account: "prod".into(),
        kind: ztv::store::GrantKind::User,
        zoom_user_id: PEOPLE[0].0.into(),
        zoom_account_id: None,
        last_used_at: None,
        refreshed_at: None,
        user_key: fold(PEOPLE[0].0),
        email: PEOPLE[0].1.into(),
        refresh_token: b"sealed".to_vec(),
        access_token: b"sealed".to_vec(),
        access_expires_at: 0,
        scopes: String::new(),
        version: 0,
        refreshing_until: None,
        needs_reauth: false,
    };

    check_all(identity_variant(), |claim| {
        let (t, provider, key, kate, kates_grant) = (&t, &provider, &key, &kate, &kates_grant);
        async move {
            let mut claims = provider.claims(ALICE_EMAIL);
            claims["email"] = json!(claim);
            claims["sub"] = json!("identity-props");
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header {
                    kid: Some("ec-identities".into()),
                    ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256)
                },
                &claims,
                &key.encoding,
            )
            .unwrap();
            let valid = claim.is_ascii()
                && ztv::zoom_user::ZoomUser::parse(&claim).is_ok_and(|u| !u.is_me());
            let owner = PEOPLE.iter().find(|(_, email)| fold(email) == fold(&claim));

            let response = t.app.zak(&token, "me").await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match (valid, owner) {
                (false, _) => prop_assert_eq!(status, 401, "{:?}: {}", claim, body),
                (true, None) => prop_assert_eq!(status, 404, "{:?}: {}", claim, body),
                (true, Some((id, _))) => {
                    prop_assert_eq!(status, 200, "{:?}: {}", claim, body);
                    let zak = body["zak"].as_str().unwrap_or_default();
                    let payload = zak.split('.').nth(1).unwrap_or_default();
                    let payload: Value = base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        payload,
                    )
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or(Value::Null);
                    prop_assert_eq!(&payload["uid"], &json!(id), "{:?} got another's ZAK", claim);
                }
            }

            t.app.store.put_grant(kates_grant, 0).await.unwrap();
            let deleted = t
                .http
                .delete(t.app.url("/v1/oauth/grants/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let hers = owner.is_some_and(|(id, _)| *id == PEOPLE[0].0);
            let kept = t
                .app
                .store
                .find_grant("prod", kate)
                .await
                .unwrap()
                .is_some();
            match (valid, hers) {
                (true, true) => prop_assert!(deleted == 200 && !kept, "{:?}: {}", claim, deleted),
                (true, false) => prop_assert!(deleted == 404 && kept, "{:?}: {}", claim, deleted),
                (false, _) => prop_assert!(deleted == 401 && kept, "{:?}: {}", claim, deleted),
            }
            // Gone again before the next case's ZAK, which must come with the S2S token.
            t.app.store.delete_grant("prod", kate).await.unwrap();
            Ok(())
        }
    });
}
