//! `spawn_app()`: a fresh SQLite file and the whole service on 127.0.0.1:0, plus a client
//! with one method per route and a JWT decoder that checks everything Zoom would.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{RequestBuilder, Response};
use serde_json::Value;
use tokio::sync::oneshot;

use ztv::app::Application;
use ztv::auth::api_clients::{self, NewClient};
use ztv::auth::scope::Scope;
use ztv::config::Settings;
use ztv::store::{self, Store};

pub const SDK_KEY: &str = "testSdkKey";
pub const SDK_SECRET: &str = "test-meeting-sdk-secret-9f8e7d";
pub const VIDEO_KEY: &str = "testVideoKey";
pub const VIDEO_SECRET: &str = "test-video-sdk-secret-1a2b3c";
pub const OTHER_SDK_KEY: &str = "otherSdkKey";
pub const OTHER_SDK_SECRET: &str = "other-meeting-sdk-secret-4d5e6f";

/// Config that puts per-caller rate limits out of the way, for tests that send a burst of
/// requests with one key and test something else (the default burst is 100).
pub const NO_RATE_LIMIT: &str =
    "[rate_limit]\nrequests_per_second = 100000\nburst = 100000\nupstream_per_minute = 100000\n";

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    /// The running application's state (reload tests put new settings in force through it).
    pub state: ztv::app::AppState,
    /// `http://…` of the `server.metrics_bind` listener, when configured.
    pub metrics_base: Option<String>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// The config every test starts from: two accounts, `prod` (Meeting SDK and Video SDK) and
/// `dev` (Meeting SDK only); `extra` is appended.
pub fn test_config(db_path: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
[database]
url = "sqlite://{db}"
[auth]
key_refresh_seconds = 1
[accounts.prod.meeting_sdk]
client_id = "{SDK_KEY}"
client_secret = "{SDK_SECRET}"
[accounts.prod.video_sdk]
key = "{VIDEO_KEY}"
secret = "{VIDEO_SECRET}"
[accounts.dev.meeting_sdk]
client_id = "{OTHER_SDK_KEY}"
client_secret = "{OTHER_SDK_SECRET}"
{extra}
"#,
        db = db_path.display()
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

pub async fn spawn_app_with(extra: &str) -> TestApp {
    spawn_app_on(None, extra).await
}

/// As [`spawn_app_with`], with the settings adjusted in code before the start.
pub async fn spawn_app_adjusted(extra: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        Settings::from_toml(&test_config(&dir.path().join("ztv.db"), extra)).unwrap();
    adjust(&mut settings);
    let store = store::connect(&settings.database.url).await.unwrap();
    serve(settings, store, dir).await
}

/// As [`spawn_app_with`], on the database at `db_url` (a fresh SQLite file when `None`), with a
/// connection pool of its own: two apps on one URL are two replicas.
pub async fn spawn_app_on(db_url: Option<&str>, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        Settings::from_toml(&test_config(&dir.path().join("ztv.db"), extra)).unwrap();
    if let Some(url) = db_url {
        settings.database.url = secrecy::SecretString::from(url.to_string());
    }
    let store = store::connect(&settings.database.url).await.unwrap();
    serve(settings, store, dir).await
}

/// Builds the application on `store` and serves it until the returned app is dropped.
async fn serve(settings: Settings, store: Arc<dyn Store>, dir: tempfile::TempDir) -> TestApp {
    let app = Application::build_with_store(settings.clone(), Arc::clone(&store))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let metrics_base = app.metrics_addr().map(|addr| format!("http://{addr}"));
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::new(),
        store,
        settings,
        state,
        metrics_base,
        _dir: dir,
        _stop: stop,
    }
}

impl TestApp {
    /// Creates a client and waits until the service knows its key.
    pub async fn key(&self, name: &str, scopes: &[Scope], account: Option<&str>) -> String {
        self.key_expiring(name, scopes, account, None).await
    }

    pub async fn key_expiring(
        &self,
        name: &str,
        scopes: &[Scope],
        account: Option<&str>,
        expires_in: Option<Duration>,
    ) -> String {
        let (_, key) = api_clients::create(
            self.store.as_ref(),
            &self.settings,
            NewClient {
                name,
                scopes: scopes.to_vec(),
                account: account.map(str::to_string),
                expires_in,
                rate_limit: None,
                upstream_per_minute: None,
            },
        )
        .await
        .unwrap();
        let key = key.expose().to_string();
        self.wait_until_known(&key).await;
        key
    }

    /// Returns once this app's key ring has re-read the clients table twice: a change made to
    /// the table before the call is in force by then.
    pub async fn wait_for_two_key_refreshes(&self) {
        let keys = std::sync::Arc::clone(&self.state.keys);
        wait_for_two_key_refreshes(|| std::future::ready(keys.refreshes())).await;
    }

    /// Polls until the key ring has picked up `key` (it re-reads the store every second).
    pub async fn wait_until_known(&self, key: &str) {
        for _ in 0..60 {
            let response = self
                .http
                .post(self.url("/v1/meeting-sdk/signature"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            if body["error"]["message"] != "unknown API key" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the service never picked up the new key");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text of `GET /metrics` on the main port (which must answer 200).
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub fn post(&self, path: &str, key: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(key)
    }

    pub async fn signature(&self, key: &str, body: Value) -> Response {
        self.post("/v1/meeting-sdk/signature", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn video_token(&self, key: &str, body: Value) -> Response {
        self.post("/v1/video-sdk/token", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts an error response: status, code, a message containing `needle`, and a request id
/// that matches the `x-request-id` header.
pub async fn assert_error(response: Response, status: u16, code: &str, needle: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(needle),
        "message {message:?} lacks {needle:?}"
    );
    assert_eq!(body["error"]["requestId"], header_id.as_str());
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only `error` at the top: {body}"
    );
    body
}

/// Decodes a JWT after checking its header is exactly `{"alg":"HS256","typ":"JWT"}` and its
/// HS256 signature verifies under `secret`; returns the payload.
pub fn decode_jwt(token: &str, secret: &str) -> Value {
    let header_b64 = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
    assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));

    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .expect("signature verifies under the app secret");
    data.claims
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    ztv::clock::now()
}

pub const S2S_ACCOUNT_ID: &str = "acc-prod";
pub const S2S_CLIENT_ID: &str = "s2s-client-prod";
pub const S2S_SECRET: &str = "s2s-secret-prod-5c4b3a";
pub const ALICE_ID: &str = "uAlice01";
pub const ALICE_EMAIL: &str = "alice@example.com";
pub const BOB_ID: &str = "uBob0002";

/// The service and the Zoom emulator it talks to.
pub struct ZoomApp {
    pub app: TestApp,
    pub zoom: ztv::emulator::Emulator,
}

impl std::ops::Deref for ZoomApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts the emulator with account `acc-prod` (users Alice and Bob) and an account
/// `acc-other` (user Carol), then the service with `prod`'s S2S credentials pointing at it.
/// Zoom timeouts are short so fault tests finish quickly; `zoom_keys` go into `[zoom]`.
pub async fn spawn_zoom_app(zoom_keys: &str) -> ZoomApp {
    spawn_zoom_app_with(zoom_keys, "").await
}

/// As [`spawn_zoom_app`], with `extra` appended to the config (other sections).
pub async fn spawn_zoom_app_with(zoom_keys: &str, extra: &str) -> ZoomApp {
    spawn_zoom_app_on(None, zoom_keys, extra).await
}

/// As [`spawn_zoom_app_with`], on the database at `db_url`.
pub async fn spawn_zoom_app_on(db_url: Option<&str>, zoom_keys: &str, extra: &str) -> ZoomApp {
    let zoom = start_emulator().await;
    let config = format!("{}{extra}", zoom_config(&zoom, zoom_keys));
    let app = spawn_app_on(db_url, &config).await;
    ZoomApp { app, zoom }
}

/// The emulator with account `acc-prod` (users Alice and Bob) and `acc-other` (user Carol).
pub async fn start_emulator() -> ztv::emulator::Emulator {
    use ztv::emulator::{Emulator, EmulatorAccount};
    let zoom = Emulator::start().await.unwrap();
    zoom.add_account(EmulatorAccount {
        account_id: S2S_ACCOUNT_ID.into(),
        client_id: S2S_CLIENT_ID.into(),
        client_secret: S2S_SECRET.into(),
    });
    zoom.add_user(S2S_ACCOUNT_ID, ALICE_ID, ALICE_EMAIL);
    zoom.add_user(S2S_ACCOUNT_ID, BOB_ID, "bob@example.com");
    zoom.add_account(EmulatorAccount {
        account_id: "acc-other".into(),
        client_id: "s2s-client-other".into(),
        client_secret: "s2s-secret-other".into(),
    });
    zoom.add_user("acc-other", "uCarol03", "carol@example.org");
    zoom
}

/// `[zoom]` pointing at `zoom` (short timeouts so fault tests finish quickly; `zoom_keys` are
/// added to the section) and `prod`'s S2S credentials: what every replica of a test shares.
pub fn zoom_config(zoom: &ztv::emulator::Emulator, zoom_keys: &str) -> String {
    format!(
        r#"
[zoom]
oauth_url = "{oauth}"
api_url = "{api}"
connect_timeout_ms = 500
request_timeout_ms = 800
call_deadline_ms = 2000
retries = 2
breaker_failures = 3
breaker_cooldown_seconds = 2
{zoom_keys}
[accounts.prod.s2s]
account_id = "{S2S_ACCOUNT_ID}"
client_id = "{S2S_CLIENT_ID}"
client_secret = "{S2S_SECRET}"
"#,
        oauth = zoom.base_url(),
        api = zoom.api_url(),
    )
}

impl TestApp {
    pub async fn get_with(&self, path: &str, key: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn zak(&self, key: &str, user: &str) -> Response {
        self.get_with(&format!("/v1/users/{user}/zak"), key).await
    }

    pub async fn s2s_token(&self, key: &str) -> Response {
        self.post("/v1/s2s/token", key).send().await.unwrap()
    }

    pub async fn join(&self, key: &str, body: Value) -> Response {
        self.post("/v1/join", key).json(&body).send().await.unwrap()
    }
}

/// The Redis URL for tests that need the real server. Unset: a loud skip, or a failure when
/// `ZTV_TEST_REQUIRE_SERVICES=1` (as in CI).
pub fn redis_url_or_skip() -> Option<String> {
    service_url_or_skip("ZTV_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// The PostgreSQL server URL for tests that need the real server (see [`redis_url_or_skip`]).
pub fn postgres_url_or_skip() -> Option<String> {
    service_url_or_skip(
        "ZTV_TEST_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

fn service_url_or_skip(variable: &str, example: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ZTV_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{variable} is unset but ZTV_TEST_REQUIRE_SERVICES=1"
            );
            eprintln!("SKIPPED: set {variable}={example} to run this test against the real server");
            None
        }
    }
}

/// A fresh PostgreSQL schema for one test, dropped (best effort) when the test ends.
pub struct PgSchema {
    server_url: String,
    name: String,
}

impl PgSchema {
    pub async fn create(server_url: &str) -> Self {
        use sqlx::Connection;
        let name = format!("ztv_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        Self {
            server_url: server_url.to_string(),
            name,
        }
    }

    /// The server URL with only this schema on the search path.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server_url).unwrap();
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={}", self.name));
        url.into()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server_url).await {
                    // This runs while the test's runtime is blocked on this thread, so an
                    // app's background task may hold a transaction open that can never end:
                    // give up on the lock rather than hang the test run.
                    let _ = sqlx::query("SET lock_timeout = '5s'")
                        .execute(&mut conn)
                        .await;
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A second service on the same store as `first` (its own port, key ring and caches).
pub async fn spawn_replica(first: &TestApp, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        Settings::from_toml(&test_config(&dir.path().join("unused.db"), extra)).unwrap();
    settings.database.url = first.settings.database.url.clone();
    serve(settings, Arc::clone(&first.store), dir).await
}

/// Waits until `refreshes` (a key ring's count of reads of the clients table, see
/// `KeyRing::refreshes`) has gone up by two: a change made to the table before the call is
/// then in force, even if a read was already under way when it was made. The minute is a
/// guard against a refresher that stopped, not a claim about its speed.
pub async fn wait_for_two_key_refreshes<F, Fut>(mut refreshes: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let from = refreshes().await;
    let waiting = async {
        while refreshes().await < from + 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the key ring stopped re-reading the clients table");
}
