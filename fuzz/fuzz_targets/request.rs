//! Fuzzes request parsing and caller authentication: the input bytes choose a method, a path
//! (a real route with an arbitrary `{userId}`, or arbitrary), a query, the credential
//! (`Authorization`, `X-Api-Key`, a real key, a near miss or garbage), `Content-Type`,
//! `x-request-id`, Zoom's webhook signature headers (often validly signed), further headers,
//! and the body. The request goes through ztv's whole router and middleware, in memory, with
//! the Zoom emulator up. Asserted: no panic, never a 5xx, every error exactly
//! `{"error": {"code", "message", "requestId"}}` with a known code that matches the status and
//! a `requestId` equal to the `x-request-id` header.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run request -- -max_total_time=60` (from the repository
//! root; see docs/testing.md).

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use hmac::{Hmac, Mac};
use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::Sha256;
use tower::ServiceExt;
use ztv::auth::api_clients::{self, NewClient};
use ztv::emulator::{Emulator, EmulatorAccount, EmulatorOAuthApp};
use ztv::http::error::ErrorCode;
use ztv::scope::Scope;
use ztv::config::Settings;

const WEBHOOK_SECRET: &str = "fuzz-webhook-secret";
const USERS: [&str; 5] = [
    "me",
    "uAlice01",
    "alice@example.com",
    "uBob0002",
    "nobody@example.com",
];

/// Routes, with `{u}` for the user segment.
const ROUTES: [(&str, &str); 14] = [
    ("POST", "/v1/meeting-sdk/signature"),
    ("POST", "/v1/video-sdk/token"),
    ("GET", "/v1/users/{u}/zak"),
    ("GET", "/v1/users/{u}/obf-token"),
    ("POST", "/v1/join"),
    ("POST", "/v1/s2s/token"),
    ("POST", "/v1/oauth/authorize"),
    ("GET", "/v1/oauth/callback"),
    ("DELETE", "/v1/oauth/grants/{u}"),
    ("POST", "/v1/webhooks/zoom"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

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

/// The service, built once per process: its router, a key with every scope, and the runtime
/// that serves it and the emulator (a current-thread runtime: spawned tasks, such as the
/// emulator's server and the audit writer, run while a request is driven).
struct World {
    runtime: tokio::runtime::Runtime,
    router: Router,
    key: String,
    _zoom: Emulator,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (router, key, zoom) = runtime.block_on(build());
        World {
            runtime,
            router,
            key,
            _zoom: zoom,
        }
    })
}

async fn build() -> (Router, String, Emulator) {
    let zoom = Emulator::start().await.expect("the emulator starts");
    zoom.add_account(EmulatorAccount {
        account_id: "acc-prod".into(),
        client_id: "s2s-client".into(),
        client_secret: "s2s-secret".into(),
    });
    zoom.add_user("acc-prod", "uAlice01", "alice@example.com");
    zoom.add_user("acc-prod", "uBob0002", "bob@example.com");
    zoom.add_oauth_app(EmulatorOAuthApp {
        client_id: "oauth-client".into(),
        client_secret: "oauth-secret".into(),
        redirect_uri: "http://ztv.test/v1/oauth/callback".into(),
    });
    // On tmpfs where there is one: SQLite's fsyncs would otherwise dominate the run time.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("ztv-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let config = format!(
        r#"
[server]
bind = "127.0.0.1:0"
[database]
url = "sqlite://{db}"
[rate_limit]
requests_per_second = 100000
burst = 100000
[grants]
encryption_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
[webhooks]
secret_token = "{WEBHOOK_SECRET}"
[zoom]
oauth_url = "{oauth}"
api_url = "{api}"
connect_timeout_ms = 500
request_timeout_ms = 800
call_deadline_ms = 2000
[accounts.prod.meeting_sdk]
client_id = "fuzzSdkKey"
client_secret = "fuzz-meeting-sdk-secret"
[accounts.prod.video_sdk]
key = "fuzzVideoKey"
secret = "fuzz-video-sdk-secret"
[accounts.prod.s2s]
account_id = "acc-prod"
client_id = "s2s-client"
client_secret = "s2s-secret"
[accounts.prod.user_oauth]
client_id = "oauth-client"
client_secret = "oauth-secret"
redirect_uri = "http://ztv.test/v1/oauth/callback"
[accounts.dev.meeting_sdk]
client_id = "fuzzOtherSdkKey"
client_secret = "fuzz-other-meeting-sdk-secret"
"#,
        db = dir.join("ztv.db").display(),
        oauth = zoom.base_url(),
        api = zoom.api_url(),
    );
    let settings = Settings::from_toml(&config).expect("the fuzz config is valid");
    let store = ztv::store::connect(&settings.database.url)
        .await
        .expect("the store opens");
    let (_, key) = api_clients::create(
        store.as_ref(),
        &settings,
        NewClient {
            name: "fuzz",
            scopes: Scope::ALL.to_vec(),
            account: Some("prod".into()),
            expires_in: None,
            rate_limit: None,
        },
    )
    .await
    .expect("the key is created");
    // The same router `Application::run` serves: the routes under the whole middleware stack.
    let application = ztv::app::Application::build_with_store(settings, store)
        .await
        .expect("the application builds");
    let state = application.state().clone();
    let router = ztv::http::middleware::apply(ztv::http::routes::router(state.clone()), &state);
    (router, key.expose().to_string(), zoom)
}

/// Arbitrary bytes that are a valid header value.
fn header_value(u: &mut Unstructured) -> arbitrary::Result<Option<HeaderValue>> {
    let bytes: &[u8] = u.arbitrary()?;
    Ok(HeaderValue::from_bytes(bytes).ok())
}

/// Percent-encodes every byte but the unreserved ones.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request made of the fuzzer's bytes; `None` when they make no valid HTTP request.
fn request(u: &mut Unstructured, key: &str) -> arbitrary::Result<Option<Request<Body>>> {
    let (route_method, route) = ROUTES[u.choose_index(ROUTES.len())?];
    let method = match u.int_in_range(0..=9u8)? {
        0..=4 => Method::from_bytes(route_method.as_bytes()).expect("a method"),
        5 => Method::GET,
        6 => Method::POST,
        7 => Method::DELETE,
        8 => Method::HEAD,
        _ => match Method::from_bytes(u.arbitrary::<&[u8]>()?) {
            Ok(method) => method,
            Err(_) => return Ok(None),
        },
    };
    let user = match u.int_in_range(0..=3u8)? {
        0 => USERS[u.choose_index(USERS.len())?].to_string(),
        1 => encode(u.arbitrary::<&[u8]>()?),
        // Raw: escapes and dots reach the router as given.
        2 => u.arbitrary::<&str>()?.to_string(),
        _ => "uAlice01".to_string(),
    };
    let mut path = match u.int_in_range(0..=15u8)? {
        0 => u.arbitrary::<&str>()?.to_string(),
        _ => route.replace("{u}", &user),
    };
    match u.int_in_range(0..=3u8)? {
        0 => {
            path.push('?');
            path.push_str(u.arbitrary()?);
        }
        1 => path.push_str("?meetingNumber=123456789"),
        _ => {}
    }
    let Ok(uri) = path.parse::<Uri>() else {
        return Ok(None);
    };
    let mut builder = Request::builder().method(method).uri(uri);

    let credential = match u.int_in_range(0..=7u8)? {
        0 => None,
        1 | 2 => Some((
            "authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).ok(),
        )),
        3 => Some(("x-api-key", HeaderValue::from_str(key).ok())),
        4 => Some(("authorization", header_value(u)?)),
        5 => Some(("x-api-key", header_value(u)?)),
        6 => {
            let token: &[u8] = u.arbitrary()?;
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(token);
            Some(("authorization", HeaderValue::from_bytes(&value).ok()))
        }
        _ => {
            // A near miss: the real key with one byte changed.
            let mut near = key.as_bytes().to_vec();
            let at = u.choose_index(near.len())?;
            near[at] = u.arbitrary()?;
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(&near);
            Some(("authorization", HeaderValue::from_bytes(&value).ok()))
        }
    };
    if let Some((name, value)) = credential {
        let Some(value) = value else {
            return Ok(None);
        };
        builder = builder.header(name, value);
    }
    match u.int_in_range(0..=3u8)? {
        0 => {}
        1 | 2 => builder = builder.header("content-type", "application/json"),
        _ => {
            if let Some(value) = header_value(u)? {
                builder = builder.header("content-type", value);
            }
        }
    }
    if u.ratio(1, 4)?
        && let Some(value) = header_value(u)?
    {
        builder = builder.header("x-request-id", value);
    }
    for _ in 0..u.int_in_range(0..=2u8)? {
        let name: &[u8] = u.arbitrary()?;
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name), header_value(u)?) {
            builder = builder.header(name, value);
        }
    }
    let signing = u.int_in_range(0..=3u8)?;
    let now = ztv::clock::now();
    let timestamp = match u.int_in_range(0..=4u8)? {
        0 => u.arbitrary::<i64>()?.to_string(),
        // The edges a uniform i64 practically never hits.
        1 => {
            let edges = [
                i64::MIN,
                i64::MIN + 1,
                i64::MAX,
                0,
                -1,
                now - 301,
                now + 301,
            ];
            edges[u.choose_index(edges.len())?].to_string()
        }
        2 => u.arbitrary::<&str>()?.to_string(),
        _ => now.to_string(),
    };
    let body = u.bytes(u.len())?.to_vec();
    match signing {
        // Signed as Zoom signs, so the event's JSON is read.
        0 | 1 => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("any key length");
            mac.update(format!("v0:{timestamp}:").as_bytes());
            mac.update(&body);
            let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
            let (Ok(timestamp), Ok(signature)) = (
                HeaderValue::from_str(&timestamp),
                HeaderValue::from_str(&signature),
            ) else {
                return Ok(None);
            };
            builder = builder
                .header("x-zm-request-timestamp", timestamp)
                .header("x-zm-signature", signature);
        }
        2 => {
            if let Ok(timestamp) = HeaderValue::from_str(&timestamp) {
                builder = builder.header("x-zm-request-timestamp", timestamp);
            }
        }
        _ => {}
    }
    Ok(builder.body(Body::from(body)).ok())
}

/// Panics unless `response` is a success or an error in the error shape of docs/api.md.
fn judge(method: &Method, uri: &Uri, status: u16, response: &Response<Body>, body: &[u8]) {
    let shown = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
    let context = format!("{method} {uri} → {status}: {shown}");
    assert!(status < 500, "a server error: {context}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-request-id");
    assert!(request_id.is_some(), "no x-request-id: {context}");
    if !(400..500).contains(&status) || method == Method::HEAD {
        return;
    }
    let content_type = header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error with content-type {content_type:?}: {context}"
    );
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {context}"));
    let top = value.as_object().expect("an object");
    assert_eq!(top.len(), 1, "only `error`: {context}");
    let error = top["error"].as_object().expect("`error` is an object");
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "requestId"], "{context}");
    let code = error["code"].as_str().expect("code is a string");
    let known = ERROR_CODES
        .iter()
        .find(|c| c.as_str() == code)
        .unwrap_or_else(|| panic!("unknown code: {context}"));
    assert_eq!(
        known.status().as_u16(),
        status,
        "code and status: {context}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {context}"
    );
    assert_eq!(
        error["requestId"].as_str(),
        request_id.as_deref(),
        "requestId: {context}"
    );
}

/// AddressSanitizer's defaults for this binary: no leak detection. The service keeps caches,
/// pools and metrics that outlive a request, so nearly every input looks like a leak to
/// libFuzzer, and the leak scan it then runs costs more than the request itself.
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"detect_leaks=0".as_ptr()
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let mut u = Unstructured::new(data);
    let Ok(Some(request)) = request(&mut u, &world.key) else {
        return;
    };
    let method = request.method().clone();
    let uri = request.uri().clone();
    world.runtime.block_on(async {
        let response = world
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the body is read");
        let response = Response::from_parts(parts, Body::empty());
        judge(&method, &uri, status, &response, &body);
    });
});
