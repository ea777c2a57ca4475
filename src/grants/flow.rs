//! The authorization-code flow that makes a grant: a single-use `state` bound to the caller,
//! the account and the user it is for; Zoom's authorize URL; and the callback's trade of the
//! code for tokens and the user's identity. Nothing is stored unless every step succeeds.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use url::Url;

use super::{GrantError, UserGrants};
use crate::clock;
use crate::config::UserOAuthApp;
use crate::store::{GrantKind, OAuthState};
use crate::zoom::{UserGrantRequest, ZoomError};
use crate::zoom_user::{ZoomAccountId, ZoomUser};

/// How long a pending authorisation may be completed, in seconds.
const STATE_LIFETIME: i64 = 600;
/// Pending authorisations one caller may hold; a new one beyond drops the oldest.
pub const PENDING_PER_CALLER: u32 = 10;

/// Where Zoom sends the browser back with the code: ztv's route, at the end of every
/// `user_oauth.redirect_uri`.
pub const CALLBACK_PATH: &str = "/v1/oauth/callback";

/// Zoom's page (under `oauth_url`) where a user grants `app`, carrying `state` when given.
pub fn authorize_url(oauth_url: &Url, app: &UserOAuthApp, state: Option<&str>) -> Url {
    let mut url = oauth_url.clone();
    let path = format!("{}/oauth/authorize", url.path().trim_end_matches('/'));
    url.set_path(&path);
    let mut query = url.query_pairs_mut();
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", app.redirect_uri.as_str());
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    drop(query);
    url
}

/// Who completed an authorisation, and what it installed.
pub struct Authorized {
    pub user: ZoomUser,
    pub email: ZoomUser,
    pub install: GrantKind,
    /// The Zoom account of the user, when Zoom named one.
    pub zoom_account: Option<ZoomAccountId>,
}

impl UserGrants {
    /// Records a pending authorisation in `account`, asked for by `caller`: of `user`'s own
    /// grant, or of an account install (`install`) by `user` if named; returns the Zoom page
    /// (under `oauth_url`) where the user grants it.
    pub async fn start_authorization(
        &self,
        oauth_url: &Url,
        account: &str,
        caller: &str,
        install: GrantKind,
        user: Option<&ZoomUser>,
    ) -> Result<Url, GrantError> {
        let app = self.app(account).ok_or(GrantError::NoApp)?;
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let state = URL_SAFE_NO_PAD.encode(random);
        let pending = OAuthState {
            account: account.to_string(),
            caller: caller.to_string(),
            user_hint: user.map(|u| u.as_str().to_string()),
            install,
            created_ms: creation_order(),
            expires_at: clock::now() + STATE_LIFETIME,
        };
        self.store
            .insert_oauth_state(&state_hash(&state), &pending, PENDING_PER_CALLER)
            .await?;
        Ok(authorize_url(oauth_url, &app, Some(&state)))
    }

    /// The pending authorisation `state` names, taken (single use); `None` when it is unknown,
    /// already used or expired.
    pub async fn take_pending(&self, state: &str) -> Result<Option<OAuthState>, GrantError> {
        let pending = self.store.take_oauth_state(&state_hash(state)).await?;
        Ok(pending.filter(|p| p.expires_at > clock::now()))
    }

    /// Trades `code`, learns the Zoom user, checks they are the one `pending` was for, and
    /// stores their grant.
    pub async fn complete_authorization(
        &self,
        pending: &OAuthState,
        code: &str,
    ) -> Result<Authorized, GrantError> {
        let account = pending.account.as_str();
        let app = self.app(account).ok_or(GrantError::NoApp)?;
        let tokens = self
            .zoom
            .user_oauth_grant(account, &app, UserGrantRequest::Code(code))
            .await
            .map_err(|e| match e {
                ZoomError::InvalidGrant(detail) => GrantError::CodeRefused(detail),
                other => GrantError::Zoom(other),
            })?;
        let (user_id, email, zoom_account) =
            self.zoom.users_me(account, &tokens.access_token).await?;
        // Zoom's answer crosses the boundary too: identities are validated like any other.
        let identity = |text: &str| ZoomUser::parse(text).map_err(|_| GrantError::ZoomIdentity);
        let (user, email) = (identity(&user_id)?, identity(&email)?);
        let zoom_account = match zoom_account {
            Some(text) => Some(ZoomAccountId::parse(&text).ok_or(GrantError::ZoomIdentity)?),
            None => None,
        };
        if let Some(hint) = pending.user_hint.as_deref().map(ZoomUser::parse)
            && !hint.is_ok_and(|hint| hint == email || hint == user)
        {
            return Err(GrantError::OtherUser);
        }
        let by = Some(pending.caller.as_str().into());
        let identity = super::Identity {
            user: &user,
            email: &email,
            zoom_account: zoom_account.as_ref(),
        };
        self.store_new(account, pending.install, identity, &tokens, by)
            .await?;
        tracing::info!(account, caller = %pending.caller, install = pending.install.as_str(), "stored a grant");
        Ok(Authorized {
            user,
            email,
            install: pending.install,
            zoom_account,
        })
    }
}

/// Unix milliseconds, but strictly increasing within the process, so a caller's states made
/// in the same millisecond still have an order to drop the oldest by.
fn creation_order() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = crate::audit::now_ms();
    let next = |last: i64| last.max(now - 1) + 1;
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or(now);
    next(previous)
}

/// `state` is stored only as its SHA-256.
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}
