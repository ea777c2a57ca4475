//! Users' own OAuth grants: stored sealed, and refreshed **exactly once** however many callers
//! and replicas need a fresh access token at the same moment, because Zoom's refresh tokens
//! are single-use.
//!
//! A refresh is a lease taken with a compare-and-swap on the grant's version (one process
//! wins; the others wait and read what it stored), and the new refresh token is committed
//! before the new access token is used. If the refresher dies between Zoom's answer and that
//! commit, the new refresh token is lost and the old one is spent: when its lease runs out the
//! next refresher gets `invalid_grant`, the grant is marked as needing re-authorisation, and
//! the user must authorise again. No lost write can produce a loop or a second spend.
//!
//! The authorization-code flow that makes a grant is in `flow`.
//!
//! May import: store, zoom, audit, config, sealing, flight, zoom_user, clock. Never the HTTP
//! layer or `tokens` (which imports this).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};

use crate::audit::AuditLog;
use crate::clock;
use crate::config::{Account, Settings, UserOAuthApp};
use crate::flight::SingleFlight;
use crate::sealing::Sealer;
use crate::store::{GrantKind, GrantRow, Store, StoreError, account_grant_id};
use crate::zoom::{UserGrantRequest, UserOAuthTokens, ZoomClient, ZoomError};
use crate::zoom_user::{ZoomAccountId, ZoomUser};

/// How long a refresher holds its lease, in seconds (longer than a Zoom call can take).
const LEASE_SECONDS: i64 = 30;
/// A user token is refreshed when less than this remains, in seconds.
const REFRESH_BEFORE_SECONDS: i64 = 60;
/// A grant's use is written down at most this often, in seconds.
const USE_NOTED_EVERY: i64 = 3600;
/// How often a waiting caller re-reads the grant while another refreshes it.
const POLL: Duration = Duration::from_millis(50);
/// How long a caller waits for another's refresh before giving up.
const WAIT_AT_MOST: Duration = Duration::from_secs(10);

mod flow;
mod health;

pub use flow::{Authorized, CALLBACK_PATH, PENDING_PER_CALLER, authorize_url};
pub use health::spawn_keep_warm;
use health::{Notifier, Refused};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantError {
    #[error("the user must authorise the app again (Zoom refused their grant)")]
    ReauthorizationRequired,
    /// The account has no user OAuth app (`accounts.<name>.user_oauth`).
    #[error("this account has no user OAuth app")]
    NoApp,
    /// Zoom refused the authorization code (`invalid_grant`).
    #[error("Zoom refused the authorization code ({0})")]
    CodeRefused(String),
    /// Zoom's `GET /users/me` named the user in a form ztv does not accept.
    #[error("Zoom's GET /users/me named the user in a form ztv does not accept")]
    ZoomIdentity,
    /// Someone else signed in at Zoom than the user the authorisation was for.
    #[error("signed in to Zoom as a different user than the one this authorisation was for")]
    OtherUser,
    #[error(transparent)]
    Zoom(#[from] ZoomError),
    #[error("store: {0}")]
    Store(String),
    #[error("a stored grant does not open with the configured grants.encryption_key")]
    Sealed,
    #[error("timed out waiting for another refresh of the same grant")]
    Busy,
}

impl From<StoreError> for GrantError {
    fn from(e: StoreError) -> Self {
        GrantError::Store(e.to_string())
    }
}

impl From<tokio::task::JoinError> for GrantError {
    fn from(e: tokio::task::JoinError) -> Self {
        GrantError::Store(format!("a refresh task failed: {e}"))
    }
}

impl From<GrantError> for ZoomError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::ReauthorizationRequired => ZoomError::ReauthorizationRequired,
            GrantError::Zoom(zoom) => zoom,
            other => ZoomError::Internal(other.to_string()),
        }
    }
}

/// What is known of a grant, without its tokens.
#[derive(Debug, Clone)]
pub struct GrantInfo {
    pub account: String,
    pub kind: GrantKind,
    /// The Zoom account of the user, or the installed one.
    pub zoom_account_id: Option<String>,
    /// The user's Zoom ID (of an account install: the installing admin's), folded.
    pub user: String,
    pub email: String,
    pub scopes: String,
    pub needs_reauthorization: bool,
    /// Unix seconds.
    pub access_expires_at: i64,
    pub refreshed_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// The key to list after it (`after` of [`UserGrants::list`]).
    pub key: String,
}

impl GrantInfo {
    /// `active`, or `needs_reauthorization` once Zoom refused the refresh token.
    pub fn state(&self) -> &'static str {
        if self.needs_reauthorization {
            "needs_reauthorization"
        } else {
            "active"
        }
    }
}

impl From<GrantRow> for GrantInfo {
    fn from(row: GrantRow) -> Self {
        GrantInfo {
            key: row.zoom_user_id,
            account: row.account,
            kind: row.kind,
            zoom_account_id: row.zoom_account_id,
            user: row.user_key,
            email: row.email,
            scopes: row.scopes,
            needs_reauthorization: row.needs_reauth,
            access_expires_at: row.access_expires_at,
            refreshed_at: row.refreshed_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// Who authorised, as Zoom's `GET /users/me` named them (validated).
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    pub user: &'a ZoomUser,
    pub email: &'a ZoomUser,
    pub zoom_account: Option<&'a ZoomAccountId>,
}

/// A grant just deleted.
pub struct Deleted {
    /// The identities it was stored under (user ID, email).
    pub identities: [ZoomUser; 2],
    /// Zoom confirmed the revocation (the app is uninstalled for the user).
    pub revoked_at_zoom: bool,
}

/// A usable user access token.
#[derive(Clone)]
pub struct UserAccess {
    pub kind: GrantKind,
    pub zoom_user_id: String,
    pub access_token: SecretString,
    /// The grant's version this token was read at.
    pub version: i64,
}

pub struct UserGrants {
    store: Arc<dyn Store>,
    /// Grants created, refreshed and refused are audit events.
    audit: Arc<AuditLog>,
    zoom: Arc<ZoomClient>,
    sealer: Arc<Sealer>,
    /// Each account's user OAuth app; replaced by a reload.
    apps: ArcSwap<HashMap<String, Arc<UserOAuthApp>>>,
    flights: SingleFlight<(String, String), UserAccess, GrantError>,
    /// Announces grants Zoom refused, when `grants.notify_url` is set.
    notifier: Option<Arc<Notifier>>,
}

fn apps_of(accounts: &BTreeMap<String, Account>) -> HashMap<String, Arc<UserOAuthApp>> {
    accounts
        .iter()
        .filter_map(|(name, a)| Some((name.clone(), Arc::new(a.user_oauth.clone()?))))
        .collect()
}

/// The sealing context of a grant's tokens: the row they belong to.
fn context(account: &str, zoom_user_id: &str, what: &str) -> String {
    format!("ztv-grant/{account}/{zoom_user_id}/{what}")
}

impl UserGrants {
    /// `None` when no account has `user_oauth` (or no key is configured).
    pub fn new(
        settings: &Settings,
        store: Arc<dyn Store>,
        zoom: Arc<ZoomClient>,
        audit: Arc<AuditLog>,
    ) -> Option<Self> {
        let key = crate::config::decode_key(settings.grants_key.as_ref()?)?;
        let apps = apps_of(&settings.accounts);
        if apps.is_empty() {
            return None;
        }
        Some(Self {
            store,
            audit,
            zoom,
            sealer: Arc::new(Sealer::new(&key)),
            apps: ArcSwap::from_pointee(apps),
            flights: SingleFlight::default(),
            notifier: Notifier::start(&settings.grant_health),
        })
    }

    pub fn app(&self, account: &str) -> Option<Arc<UserOAuthApp>> {
        self.apps.load().get(account).cloned()
    }

    /// Puts reloaded user OAuth apps in force.
    pub fn replace_apps(&self, accounts: &BTreeMap<String, Account>) {
        self.apps.store(Arc::new(apps_of(accounts)));
    }

    /// Stores a grant just obtained with an authorization code (`by`: who started it): the
    /// user's own, or an account install, which needs the Zoom account Zoom named.
    pub async fn store_new(
        &self,
        account: &str,
        kind: GrantKind,
        who: Identity<'_>,
        tokens: &UserOAuthTokens,
        by: Option<Arc<str>>,
    ) -> Result<(), GrantError> {
        let Identity {
            user,
            email,
            zoom_account,
        } = who;
        let zoom_user_id = match (kind, zoom_account) {
            (GrantKind::User, _) => user.as_str().to_string(),
            (GrantKind::Account, Some(zoom_account)) => account_grant_id(zoom_account.as_str()),
            (GrantKind::Account, None) => return Err(GrantError::ZoomIdentity),
        };
        let row = GrantRow {
            account: account.to_string(),
            kind,
            zoom_user_id: zoom_user_id.clone(),
            zoom_account_id: zoom_account.map(|a| a.as_str().to_string()),
            user_key: user.key().to_string(),
            email: email.key().to_string(),
            refresh_token: self.seal(account, &zoom_user_id, "refresh", &tokens.refresh_token),
            access_token: self.seal(account, &zoom_user_id, "access", &tokens.access_token),
            access_expires_at: clock::now() + tokens.expires_in as i64,
            scopes: tokens.scope.clone(),
            version: 0,
            refreshing_until: None,
            needs_reauth: false,
            last_used_at: None,
            refreshed_at: None,
        };
        self.store.put_grant(&row, clock::now()).await?;
        let action = match kind {
            GrantKind::User => "created",
            GrantKind::Account => "installed",
        };
        self.audit
            .record(crate::audit::grant_event(action, account, user.key(), by));
        Ok(())
    }

    /// The user's own access token if they have a grant in `account` (by Zoom ID or email),
    /// refreshed first when it is about to expire.
    pub async fn access_for(
        &self,
        account: &str,
        user: &ZoomUser,
    ) -> Result<Option<UserAccess>, GrantError> {
        if !self.apps.load().contains_key(account) {
            return Ok(None);
        }
        let Some(row) = self.store.find_grant(account, user).await? else {
            return Ok(None);
        };
        self.usable(row).await.map(Some)
    }

    /// The access token of the account install for `zoom_account` in `account` (refreshed
    /// first when about to expire); `None` when no admin installed the app for it.
    pub async fn account_access(
        &self,
        account: &str,
        zoom_account: &ZoomAccountId,
    ) -> Result<Option<UserAccess>, GrantError> {
        if !self.apps.load().contains_key(account) {
            return Ok(None);
        }
        let found = self
            .store
            .find_account_grant(account, zoom_account.as_str())
            .await?;
        match found {
            Some(row) => self.usable(row).await.map(Some),
            None => Ok(None),
        }
    }

    /// Whether an admin installed the app for `zoom_account` in `account`.
    pub async fn is_installed(
        &self,
        account: &str,
        zoom_account: &ZoomAccountId,
    ) -> Result<bool, GrantError> {
        Ok(self.apps.load().contains_key(account)
            && self
                .store
                .find_account_grant(account, zoom_account.as_str())
                .await?
                .is_some())
    }

    /// The Zoom account `user`'s own grant in `account` says they belong to.
    pub async fn zoom_account_of(
        &self,
        account: &str,
        user: &ZoomUser,
    ) -> Result<Option<ZoomAccountId>, GrantError> {
        let row = self.store.find_grant(account, user).await?;
        Ok(row
            .and_then(|row| row.zoom_account_id)
            .and_then(|id| ZoomAccountId::parse(&id)))
    }

    /// A usable access token of `row`, refreshed first when it is about to expire; the grant
    /// is noted as used (for the background refresh), at most once per [`USE_NOTED_EVERY`].
    async fn usable(&self, row: GrantRow) -> Result<UserAccess, GrantError> {
        if row.needs_reauth {
            return Err(GrantError::ReauthorizationRequired);
        }
        let now = clock::now();
        if row.last_used_at.is_none_or(|at| at < now - USE_NOTED_EVERY)
            && let Err(error) = self
                .store
                .touch_grant(&row.account, &row.zoom_user_id, now, USE_NOTED_EVERY)
                .await
        {
            tracing::warn!(account = %row.account, %error, "could not note a grant's use");
        }
        if row.access_expires_at - REFRESH_BEFORE_SECONDS > now {
            return self.open_access(&row);
        }
        self.refreshed(&row.account, &row.zoom_user_id, row.version)
            .await
    }

    /// A fresh access token for the grant, refreshing it at most once (see the module docs):
    /// if the grant has moved past `seen_version` (someone refreshed it since the caller
    /// looked), their result is used instead of refreshing again.
    pub async fn refreshed(
        &self,
        account: &str,
        zoom_user_id: &str,
        seen_version: i64,
    ) -> Result<UserAccess, GrantError> {
        let key = (account.to_string(), zoom_user_id.to_string());
        let store = Arc::clone(&self.store);
        let zoom = Arc::clone(&self.zoom);
        let sealer = Arc::clone(&self.sealer);
        let audit = Arc::clone(&self.audit);
        let notifier = self.notifier.clone();
        let app = self.app(account);
        let (account, user) = key.clone();
        self.flights
            .join_or_start(&key, || async move {
                let app = app.ok_or(GrantError::ReauthorizationRequired)?;
                let upstream = Upstream {
                    store: &*store,
                    zoom: &zoom,
                    sealer: &sealer,
                    audit: &audit,
                    notifier: notifier.as_deref(),
                };
                refresh_once(&upstream, &app, &account, &user, seen_version).await
            })
            .await
    }

    /// Zoom refused `access`: refresh, unless someone already did.
    pub async fn replace_refused(
        &self,
        account: &str,
        access: &UserAccess,
    ) -> Result<UserAccess, GrantError> {
        self.refreshed(account, &access.zoom_user_id, access.version)
            .await
    }

    /// Deletes `user`'s grant in `account`, first revoking it at Zoom when `revoke` (a
    /// disconnect asked here; not when Zoom itself ended it). The row goes even when Zoom
    /// cannot be reached; `None` when there was no grant.
    pub async fn delete(
        &self,
        account: &str,
        user: &ZoomUser,
        revoke: bool,
        by: Option<Arc<str>>,
    ) -> Result<Option<Deleted>, GrantError> {
        let revoked_at_zoom = revoke && self.revoke_at_zoom(account, user).await;
        let Some((user_id, email)) = self.store.delete_grant(account, user).await? else {
            return Ok(None);
        };
        // Stored identities were validated when the grant was made.
        let stored = |text: &str| ZoomUser::parse(text).map_err(|_| GrantError::ZoomIdentity);
        let (user_id, email) = (stored(&user_id)?, stored(&email)?);
        let outcome = match (revoke, revoked_at_zoom) {
            (false, _) => "deleted",
            (true, true) => "revoked",
            (true, false) => "deleted_not_revoked",
        };
        tracing::info!(account, outcome, "deleted a user's grant");
        self.audit.record(crate::audit::grant_event(
            outcome,
            account,
            user_id.key(),
            by,
        ));
        Ok(Some(Deleted {
            identities: [user_id, email],
            revoked_at_zoom,
        }))
    }

    /// Deletes the account install of `zoom_account` in `account` that `installer` made (Zoom
    /// announced they removed the app); whether there was one.
    pub async fn delete_install(
        &self,
        account: &str,
        zoom_account: &ZoomAccountId,
        installer: &ZoomUser,
        by: Option<Arc<str>>,
    ) -> Result<bool, GrantError> {
        let id = account_grant_id(zoom_account.as_str());
        let Some(row) = self.store.get_grant(account, &id).await? else {
            return Ok(false);
        };
        if row.user_key != installer.key() {
            return Ok(false);
        }
        if !self.store.delete_grant_by_id(account, &id).await? {
            return Ok(false);
        }
        tracing::info!(account, "deleted an account install");
        self.audit.record(crate::audit::grant_event(
            "uninstalled",
            account,
            &row.user_key,
            by,
        ));
        Ok(true)
    }

    /// Revokes the user's access token at Zoom (refreshed first if it has expired); `false`
    /// when there is nothing to revoke or Zoom did not confirm it.
    async fn revoke_at_zoom(&self, account: &str, user: &ZoomUser) -> bool {
        let Some(app) = self.app(account) else {
            return false;
        };
        let access = match self.access_for(account, user).await {
            Ok(Some(access)) => access,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(account, %error, "no usable token to revoke a user's grant at Zoom");
                return false;
            }
        };
        match self
            .zoom
            .revoke_user_token(account, &app, &access.access_token)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(account, %error, "Zoom did not revoke a user's grant; deleting it here anyway");
                false
            }
        }
    }

    /// Grants of `account` (every account if `None`) in a stable order, after the grant whose
    /// key is `after`, at most `limit`.
    pub async fn list(
        &self,
        account: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<GrantInfo>, GrantError> {
        let rows = self
            .store
            .list_grants(account, after, i64::from(limit))
            .await?;
        Ok(rows.into_iter().map(GrantInfo::from).collect())
    }

    fn seal(&self, account: &str, user: &str, what: &str, token: &SecretString) -> Vec<u8> {
        self.sealer.seal(
            token.expose_secret().as_bytes(),
            &context(account, user, what),
        )
    }

    fn open_access(&self, row: &GrantRow) -> Result<UserAccess, GrantError> {
        open_access(&self.sealer, row)
    }
}

fn open(sealer: &Sealer, row: &GrantRow, what: &str) -> Result<SecretString, GrantError> {
    let sealed = match what {
        "refresh" => &row.refresh_token,
        _ => &row.access_token,
    };
    let bytes = sealer
        .open(sealed, &context(&row.account, &row.zoom_user_id, what))
        .map_err(|_| GrantError::Sealed)?;
    String::from_utf8(bytes)
        .map(SecretString::from)
        .map_err(|_| GrantError::Sealed)
}

/// What a refresh works with.
struct Upstream<'a> {
    store: &'a dyn Store,
    zoom: &'a ZoomClient,
    sealer: &'a Sealer,
    audit: &'a AuditLog,
    notifier: Option<&'a Notifier>,
}

/// One refresh across every process: take the lease or wait for whoever holds it.
async fn refresh_once(
    upstream: &Upstream<'_>,
    app: &UserOAuthApp,
    account: &str,
    zoom_user_id: &str,
    seen_version: i64,
) -> Result<UserAccess, GrantError> {
    let Upstream { store, sealer, .. } = *upstream;
    let started = tokio::time::Instant::now();
    loop {
        let row = store
            .get_grant(account, zoom_user_id)
            .await?
            .ok_or(GrantError::ReauthorizationRequired)?;
        if row.needs_reauth {
            return Err(GrantError::ReauthorizationRequired);
        }
        // Someone else refreshed since this caller looked: use their result.
        if row.version > seen_version
            && row.refreshing_until.is_none()
            && row.access_expires_at - REFRESH_BEFORE_SECONDS > clock::now()
        {
            return open_access(sealer, &row);
        }
        let now = clock::now();
        if store
            .claim_refresh(account, zoom_user_id, row.version, now + LEASE_SECONDS, now)
            .await?
        {
            return refresh_with_lease(upstream, app, &row, row.version + 1).await;
        }
        if started.elapsed() > WAIT_AT_MOST {
            return Err(GrantError::Busy);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn open_access(sealer: &Sealer, row: &GrantRow) -> Result<UserAccess, GrantError> {
    Ok(UserAccess {
        kind: row.kind,
        zoom_user_id: row.zoom_user_id.clone(),
        access_token: open(sealer, row, "access")?,
        version: row.version,
    })
}

async fn refresh_with_lease(
    upstream: &Upstream<'_>,
    app: &UserOAuthApp,
    row: &GrantRow,
    claimed: i64,
) -> Result<UserAccess, GrantError> {
    let Upstream {
        store,
        zoom,
        sealer,
        audit,
        notifier,
    } = *upstream;
    let (account, user) = (row.account.as_str(), row.zoom_user_id.as_str());
    let refresh_token = open(sealer, row, "refresh")?;
    match zoom
        .user_oauth_grant(account, app, UserGrantRequest::Refresh(&refresh_token))
        .await
    {
        Ok(tokens) => {
            // The new refresh token is committed before the access token is handed out.
            let refresh = sealer.seal(
                tokens.refresh_token.expose_secret().as_bytes(),
                &context(account, user, "refresh"),
            );
            let access = sealer.seal(
                tokens.access_token.expose_secret().as_bytes(),
                &context(account, user, "access"),
            );
            let expires_at = clock::now() + tokens.expires_in as i64;
            let stored = store
                .store_refreshed(
                    account,
                    user,
                    claimed,
                    &refresh,
                    &access,
                    expires_at,
                    clock::now(),
                )
                .await?;
            if !stored {
                // The grant was replaced or deleted meanwhile (new authorisation, deletion):
                // what was just fetched belongs to nothing.
                return Err(GrantError::ReauthorizationRequired);
            }
            tracing::info!(account, "refreshed a user's grant");
            audit.record(crate::audit::grant_event(
                "refreshed",
                account,
                &row.user_key,
                None,
            ));
            Ok(UserAccess {
                kind: row.kind,
                zoom_user_id: user.to_string(),
                access_token: tokens.access_token,
                version: claimed + 1,
            })
        }
        Err(ZoomError::InvalidGrant(detail)) => {
            tracing::warn!(account, %detail, "Zoom refused a user's refresh token; re-authorisation needed");
            store.mark_needs_reauth(account, user, clock::now()).await?;
            audit.record(crate::audit::grant_event(
                "refused",
                account,
                &row.user_key,
                None,
            ));
            if let Some(notifier) = notifier {
                notifier.announce(Refused {
                    account: account.to_string(),
                    kind: row.kind,
                    user: row.user_key.clone(),
                    zoom_account: row.zoom_account_id.clone(),
                });
            }
            Err(GrantError::ReauthorizationRequired)
        }
        Err(other) => {
            store.release_refresh(account, user, claimed).await?;
            Err(GrantError::Zoom(other))
        }
    }
}
