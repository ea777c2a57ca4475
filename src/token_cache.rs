//! The S2S token cache, the heart of ztv: one access token per account, fetched at most once
//! however many callers ask at once, refreshed in the background when less than the refresh
//! margin remains, so no caller waits while a valid token exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::flight::SingleFlight;
use crate::settings::{S2sCredentials, Settings};
use crate::zoom::{S2sToken, ZoomClient, ZoomError};

/// After a background refresh fails, the next one waits this long (the token in hand is
/// still served meanwhile).
const REFRESH_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One account's token and refresh state.
#[derive(Default)]
struct Slot {
    token: Option<Arc<S2sToken>>,
    /// No background refresh before this.
    quiet_until: Option<Instant>,
}

/// What a readiness report says of one account's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Never fetched, or dropped.
    Empty,
    /// Valid for this many more seconds.
    Valid {
        seconds_left: u64,
    },
    Expired,
}

pub struct TokenCache {
    zoom: Arc<ZoomClient>,
    credentials: HashMap<String, S2sCredentials>,
    margin: Duration,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    flights: SingleFlight<String, Arc<S2sToken>, ZoomError>,
}

impl TokenCache {
    pub fn new(zoom: Arc<ZoomClient>, settings: &Settings) -> Self {
        let credentials = settings
            .accounts
            .iter()
            .filter_map(|(name, account)| Some((name.clone(), account.s2s.clone()?)))
            .collect();
        Self {
            zoom,
            credentials,
            margin: settings.zoom.refresh_margin,
            slots: Arc::default(),
            flights: SingleFlight::default(),
        }
    }

    /// A valid access token for `account`: the cached one, or one fetched now (once for all
    /// concurrent callers).
    pub async fn get(&self, account: &str) -> Result<Arc<S2sToken>, ZoomError> {
        let now = Instant::now();
        let (cached, refresh) = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(account.to_string()).or_default();
            match &slot.token {
                Some(token) if usable(token, now) => {
                    let due = now + self.margin_for(token) >= token.expires
                        && slot.quiet_until.is_none_or(|t| t <= now);
                    if due {
                        slot.quiet_until = Some(now + REFRESH_RETRY_PAUSE);
                    }
                    (Some(Arc::clone(token)), due)
                }
                _ => (None, false),
            }
        };
        if let Some(token) = cached {
            if refresh {
                // Not awaited: the caller goes on with the token in hand.
                drop(self.fetch(account));
            }
            return Ok(token);
        }
        self.fetch(account).await
    }

    /// Drops `token` if it is still the cached one (Zoom refused it); a newer token that
    /// another caller already fetched is kept.
    pub fn invalidate(&self, account: &str, token: &Arc<S2sToken>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(account)
            && slot.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token))
        {
            tracing::warn!(account, "Zoom refused the cached access token; dropping it");
            slot.token = None;
        }
    }

    /// Drops every cached token (credentials changed).
    pub fn clear(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn state(&self, account: &str) -> TokenState {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(account).and_then(|s| s.token.as_ref()) {
            None => TokenState::Empty,
            Some(token) => match token.expires.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => TokenState::Valid {
                    seconds_left: left.as_secs(),
                },
                _ => TokenState::Expired,
            },
        }
    }

    /// Refresh when less than the margin remains, but never more than half the token's life
    /// (short-lived tokens would otherwise be refreshed on every call).
    fn margin_for(&self, token: &S2sToken) -> Duration {
        self.margin.min(token.lifetime / 2)
    }

    /// Joins or starts the one fetch for `account`; its result lands in the slot before the
    /// flight ends, so later callers find it there.
    fn fetch(
        &self,
        account: &str,
    ) -> futures_util::future::Shared<
        futures_util::future::BoxFuture<'static, Result<Arc<S2sToken>, ZoomError>>,
    > {
        let key = account.to_string();
        self.flights.join_or_start(&key, || {
            let zoom = Arc::clone(&self.zoom);
            let credentials = self.credentials.get(account).cloned();
            let slots = Arc::clone(&self.slots);
            let account = account.to_string();
            async move {
                let credentials =
                    credentials.ok_or_else(|| ZoomError::NoS2sCredentials(account.clone()))?;
                let result = zoom.fetch_s2s_token(&account, &credentials).await;
                let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
                let slot = slots.entry(account.clone()).or_default();
                match result {
                    Ok(token) => {
                        let token = Arc::new(token);
                        tracing::info!(account, expires_in_s = token.lifetime.as_secs(), "fetched a Server-to-Server access token");
                        slot.token = Some(Arc::clone(&token));
                        slot.quiet_until = None;
                        Ok(token)
                    }
                    Err(error) => {
                        tracing::warn!(account, %error, "cannot fetch a Server-to-Server access token");
                        slot.quiet_until = Some(Instant::now() + REFRESH_RETRY_PAUSE);
                        Err(error)
                    }
                }
            }
        })
    }
}

/// A token is handed out only while a little of it remains, so it does not expire on its way
/// to Zoom: 5 s, or an eighth of its life when that is shorter.
fn usable(token: &S2sToken, now: Instant) -> bool {
    let safety = Duration::from_secs(5).min(token.lifetime / 8);
    now + safety < token.expires
}
