//! In-process apps: [`TestApp::builder`] serves the whole application on 127.0.0.1:0 with a
//! fresh SQLite file (or the database it is given), with the Zoom emulator, user OAuth and
//! end-user sign-in when asked for, until the app is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use ztv::app::{AppState, Application};
use ztv::auth::api_clients::{self, NewClient};
use ztv::config::Settings;
use ztv::emulator::Emulator;
use ztv::scope::Scope;
use ztv::store::{self, Store};

use super::config::test_config;
use super::idp::{self, Idp};
use super::oauth;
use super::zoom::{start_emulator, zoom_config};

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    /// The running application's state (reload tests put new settings in force through it).
    pub state: AppState,
    /// `http://…` of the `server.metrics_bind` listener, when configured.
    pub metrics_base: Option<String>,
    /// What was appended to [`test_config`]: a replica is started with the same.
    config: String,
    server: Option<JoinHandle<std::io::Result<()>>>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// The service and the Zoom emulator it talks to.
pub struct ZoomApp {
    pub app: TestApp,
    pub zoom: Emulator,
}

impl std::ops::Deref for ZoomApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

type Adjustment = Box<dyn FnOnce(&mut Settings) + Send>;

/// How to start a [`TestApp`] (without the emulator) or, after [`AppBuilder::zoom`], a
/// [`ZoomApp`]. Config added with [`AppBuilder::config`], [`AppBuilder::end_users`] and
/// [`AppBuilder::grants`] is appended to [`test_config`] in the order of the calls, after the
/// emulator's `[zoom]` section.
#[must_use]
pub struct AppBuilder<Z = NoZoom> {
    config: String,
    adjustments: Vec<Adjustment>,
    database: Option<String>,
    zoom: Z,
}

/// An [`AppBuilder`] without the emulator.
pub struct NoZoom;

/// An [`AppBuilder`] with the emulator: the keys added to `[zoom]`, and whether the emulator
/// knows the user-managed OAuth app.
pub struct WithZoom {
    keys: String,
    grants: bool,
}

impl TestApp {
    /// The service on the test config with a fresh SQLite file; see [`AppBuilder`].
    pub fn builder() -> AppBuilder {
        AppBuilder {
            config: String::new(),
            adjustments: Vec::new(),
            database: None,
            zoom: NoZoom,
        }
    }

    /// A second service with this one's config on this one's store (the same connection
    /// pool): its own port, key ring and caches.
    pub async fn replica(&self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings =
            Settings::from_toml(&test_config(&dir.path().join("unused.db"), &self.config)).unwrap();
        settings.database.url = self.settings.database.url.clone();
        serve(settings, Arc::clone(&self.store), dir, self.config.clone()).await
    }

    /// As [`TestApp::replica`], with a connection pool of its own: only the database is shared.
    pub async fn replica_with_own_pool(&self) -> TestApp {
        TestApp::builder()
            .config(&self.config)
            .database(self.settings.database.url.expose_secret())
            .build()
            .await
    }

    /// Sends the shutdown signal (as SIGTERM does to `ztv serve`); the returned task ends with
    /// the server's result once it has stopped.
    pub fn shut_down(&mut self) -> JoinHandle<std::io::Result<()>> {
        self.stop
            .take()
            .expect("the app is running")
            .send(())
            .unwrap();
        self.server.take().expect("the app is running")
    }

    /// Creates a client and waits until the service knows its key.
    pub async fn key(&self, name: &str, scopes: &[Scope], account: Option<&str>) -> String {
        self.key_with(name, scopes, account, |_| {}).await
    }

    pub async fn key_expiring(
        &self,
        name: &str,
        scopes: &[Scope],
        account: Option<&str>,
        expires_in: Option<Duration>,
    ) -> String {
        self.key_with(name, scopes, account, |client| {
            client.expires_in = expires_in;
        })
        .await
    }

    /// As [`TestApp::key`], with the client's other fields (expiry, own limits) set by `adjust`.
    pub async fn key_with(
        &self,
        name: &str,
        scopes: &[Scope],
        account: Option<&str>,
        adjust: impl FnOnce(&mut NewClient<'_>),
    ) -> String {
        let mut client = NewClient {
            name,
            scopes: scopes.to_vec(),
            account: account.map(str::to_string),
            expires_in: None,
            rate_limit: None,
            upstream_per_minute: None,
        };
        adjust(&mut client);
        let (_, key) = api_clients::create(self.store.as_ref(), &self.settings, client)
            .await
            .unwrap();
        let key = key.expose().to_string();
        self.wait_until_known(&key).await;
        key
    }

    /// Returns once this app's key ring has re-read the clients table twice: a change made to
    /// the table before the call is in force by then.
    pub async fn wait_for_two_key_refreshes(&self) {
        let keys = Arc::clone(&self.state.keys);
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
}

impl<Z> AppBuilder<Z> {
    /// Appends `toml` to the config.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self
    }

    /// End-user sign-in with `idp`'s tokens, granting `scopes` (TOML strings: `"zak:read"`).
    pub fn end_users(self, idp: &Idp, scopes: &str) -> Self {
        self.config(&idp::end_users_config(idp, scopes))
    }

    /// Changes the settings in code, after they are read and before the start.
    pub fn adjust(mut self, adjust: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.adjustments.push(Box::new(adjust));
        self
    }

    /// The database at `url` instead of a fresh SQLite file, with a connection pool of its
    /// own: two apps on one URL are two replicas.
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.to_string());
        self
    }

    /// Reads the settings (`before` ahead of the added config), connects and serves.
    async fn start(self, before: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{before}{}", self.config);
        let mut settings =
            Settings::from_toml(&test_config(&dir.path().join("ztv.db"), &config)).unwrap();
        if let Some(url) = self.database {
            settings.database.url = SecretString::from(url);
        }
        for adjust in self.adjustments {
            adjust(&mut settings);
        }
        let store = store::connect(&settings.database.url).await.unwrap();
        serve(settings, store, dir, config).await
    }
}

impl AppBuilder<NoZoom> {
    /// Starts the emulator too (see [`start_emulator`]), with `prod`'s S2S credentials and
    /// short timeouts so that fault tests finish quickly ([`zoom_config`]).
    pub fn zoom(self) -> AppBuilder<WithZoom> {
        AppBuilder {
            config: self.config,
            adjustments: self.adjustments,
            database: self.database,
            zoom: WithZoom {
                keys: String::new(),
                grants: false,
            },
        }
    }

    pub async fn build(self) -> TestApp {
        self.start("").await
    }
}

impl AppBuilder<WithZoom> {
    /// Adds `keys` to the `[zoom]` section.
    pub fn zoom_keys(mut self, keys: &str) -> Self {
        self.zoom.keys.push_str(keys);
        self
    }

    /// `prod`'s user-managed OAuth app, grants and webhooks ([`oauth::grants_config`]), the
    /// emulator knowing the app, and Alice the user who consents there.
    pub fn grants(mut self) -> Self {
        self.zoom.grants = true;
        self.config(&oauth::grants_config())
    }

    pub async fn build(self) -> ZoomApp {
        let zoom = start_emulator().await;
        if self.zoom.grants {
            oauth::register(&zoom);
        }
        let section = zoom_config(&zoom, &self.zoom.keys);
        let app = self.start(&section).await;
        ZoomApp { app, zoom }
    }
}

/// Builds the application on `store` and serves it until the returned app is dropped.
async fn serve(
    settings: Settings,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    config: String,
) -> TestApp {
    let app = Application::build_with_store(settings.clone(), Arc::clone(&store))
        .await
        .unwrap();
    let addr = app.local_addr();
    let metrics_base = app.metrics_addr().map(|addr| format!("http://{addr}"));
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        store,
        settings,
        state,
        metrics_base,
        config,
        server: Some(server),
        stop: Some(stop),
        _dir: dir,
    }
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
