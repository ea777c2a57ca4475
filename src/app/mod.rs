//! The application: shared state, start-up (store, key ring, router, listener) and a serve
//! loop with graceful shutdown. Tests build the same thing on port 0.
//!
//! Reloading settings in force is [`reload`]'s.
//!
//! May import every layer: it wires them.

pub mod reload;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::auth::caller::KeyRing;
use crate::auth::end_users::{SignInError, Verifier};
use crate::auth::rate_limit::RateLimiter;
use crate::config::Settings;
use crate::grants::UserGrants;
use crate::http::{middleware, routes};
use crate::server;
use crate::store::{self, Store, StoreError};
use crate::tokens::s2s::TokenCache;
use crate::tokens::shared::SharedTokens;
use crate::tokens::user::UserTokens;
use crate::zoom::{ZoomClient, ZoomError};

/// Everything a request handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    /// The settings; `accounts` is replaced by a reload.
    settings: ArcSwap<Settings>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub zoom: Arc<ZoomClient>,
    /// S2S access tokens, one per account.
    pub s2s: Arc<TokenCache>,
    /// ZAK and OBF tokens.
    pub user_tokens: Arc<UserTokens>,
    /// Users' own OAuth grants, when any account has `user_oauth`.
    pub grants: Option<Arc<UserGrants>>,
    /// End-user sign-in, when configured.
    pub end_users: Option<Arc<Verifier>>,
    /// Per-caller request limits.
    pub rate_limiter: Arc<RateLimiter>,
    /// Audit events, written in batches off the hot path.
    pub audit: Arc<AuditLog>,
}

impl App {
    /// The settings now in force. Take it once per request: a reload swaps in new accounts.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Puts reloaded settings in force for requests that start from now on.
    pub(crate) fn replace_settings(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }
}

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("end-user sign-in: {0}")]
    SignIn(#[from] SignInError),
    #[error("redis: {0}")]
    RateLimit(String),
    #[error("zoom client: {0}")]
    Zoom(#[from] ZoomError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A built application, bound to its port, ready to serve.
pub struct Application {
    listener: TcpListener,
    /// `server.metrics_bind`, when set.
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Opens the store, loads the API keys, binds `server.bind` (port 0 picks a free one).
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let store = store::connect(&settings.database.url).await?;
        Self::build_with_store(settings, store).await
    }

    pub async fn build_with_store(
        settings: Settings,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        // Installed before anything is counted.
        crate::telemetry::metrics::handle();
        let keys = Arc::new(KeyRing::load(store.as_ref()).await?);
        keys.spawn_refresher(Arc::clone(&store), settings.key_refresh);
        let addr = settings.server.bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let metrics_listener = match settings.server.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let zoom = Arc::new(ZoomClient::new(&settings.zoom, &settings.accounts)?);
        let shared_tokens = match (&settings.cache.redis_url, &settings.cache.encryption_key) {
            (Some(url), Some(key)) => {
                let key = crate::config::decode_key(key).ok_or_else(|| {
                    StartError::RateLimit("cache.encryption_key is not 32 bytes".into())
                })?;
                Some(Arc::new(
                    SharedTokens::open(url.expose_secret(), &key, &settings.cache.key_prefix)
                        .await
                        .map_err(|e| StartError::RateLimit(format!("cache.redis_url: {e}")))?,
                ))
            }
            _ => None,
        };
        let s2s = Arc::new(TokenCache::new(Arc::clone(&zoom), &settings, shared_tokens));
        let audit = AuditLog::start(Arc::clone(&store), settings.audit_retention);
        let grants = UserGrants::new(
            &settings,
            Arc::clone(&store),
            Arc::clone(&zoom),
            Arc::clone(&audit),
        )
        .map(Arc::new);
        if let Some(grants) = &grants {
            crate::grants::spawn_keep_warm(grants, Arc::clone(&store), &settings.grant_health);
        }
        let rate_limiter = Arc::new(match &settings.cache.redis_url {
            Some(url) => RateLimiter::redis(url.expose_secret(), &settings.cache.key_prefix)
                .await
                .map_err(|e| StartError::RateLimit(e.to_string()))?,
            None => RateLimiter::in_process(),
        });
        let user_tokens = Arc::new(UserTokens::new(
            Arc::clone(&zoom),
            Arc::clone(&s2s),
            grants.clone(),
            Arc::clone(&rate_limiter),
            settings.zoom.user_token_cache,
            settings.zoom.user_token_cache_entries,
        ));
        let end_users = match &settings.end_users {
            Some(end_users) => Some(Arc::new(Verifier::new(end_users.clone())?)),
            None => None,
        };
        let state = AppState(Arc::new(App {
            settings: ArcSwap::from_pointee(settings),
            store,
            keys,
            zoom,
            s2s,
            user_tokens,
            grants,
            end_users,
            rate_limiter,
            audit,
        }));
        let router = middleware::apply(routes::router(state.clone()), &state);
        Ok(Self {
            listener,
            metrics_listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served when `server.metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for up to
    /// `server.shutdown_grace_seconds`. Both listeners apply the limits of [`server`].
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let settings = self.state.settings();
        let grace = settings.server.shutdown_grace;
        let limits = server::Limits::from_settings(&settings.server);
        server::warn_if_few_open_files(&limits);
        let audit = Arc::clone(&self.state.audit);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let (metrics_stop_tx, metrics_stop_rx) = tokio::sync::watch::channel(false);
        if let Some(listener) = self.metrics_listener {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics are served on their own listener");
            }
            let mut stop = metrics_stop_rx;
            tokio::spawn(server::serve(
                listener,
                crate::http::metrics_only_router(),
                limits.clone(),
                "metrics",
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            ));
        }
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(());
        };
        let serve = server::serve(self.listener, self.router, limits, "main", signal);
        tokio::select! {
            () = serve => {}
            _ = async {
                if stopping_rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests outlived the shutdown grace; stopping");
            }
        };
        let _ = metrics_stop_tx.send(true);
        // Every queued audit event is written before the process exits.
        audit.flush_and_stop().await;
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
