//! Grant health: a background refresh keeps every grant used within `grants.keep_warm_days`
//! alive (so its refresh token never ages out at Zoom), `ztv_grants{state}` counts grants by
//! state, and a grant Zoom refuses is announced to `grants.notify_url` with a POST signed as
//! Zoom signs its webhooks, retried, from a bounded queue.

use std::sync::{Arc, Weak};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use url::Url;

use super::{GrantError, UserGrants};
use crate::clock;
use crate::config::GrantHealth;
use crate::store::{GrantKind, Store};

/// Grants whose access token expires within this many seconds are refreshed ahead.
const AHEAD_SECONDS: i64 = 600;
/// Grants refreshed in one pass at most; the rest wait for the next.
const PER_PASS: i64 = 100;
/// Announcements waiting to be sent at most; more are dropped (and counted).
const QUEUE: usize = 256;
/// Attempts per announcement, the first included; waits of 1, 2, 4 … s between them.
const ATTEMPTS: u32 = 4;

/// Starts the background refresh; it ends when `grants` is dropped.
pub fn spawn_keep_warm(grants: &Arc<UserGrants>, store: Arc<dyn Store>, health: &GrantHealth) {
    let grants = Arc::downgrade(grants);
    let (keep_warm, every) = (health.keep_warm, health.check_every);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(grants) = Weak::upgrade(&grants) else {
                return;
            };
            count_by_state(store.as_ref()).await;
            if !keep_warm.is_zero() {
                keep_warm_pass(&grants, store.as_ref(), keep_warm).await;
            }
        }
    });
}

/// `ztv_grants{state}`: grants `active` and `needs_reauthorization`.
async fn count_by_state(store: &dyn Store) {
    match store.count_grants().await {
        Ok((active, needing)) => {
            metrics::gauge!("ztv_grants", "state" => "active").set(active as f64);
            metrics::gauge!("ztv_grants", "state" => "needs_reauthorization").set(needing as f64);
        }
        Err(error) => tracing::warn!(%error, "cannot count grants"),
    }
}

/// Refreshes, exactly once across replicas, each grant used within `keep_warm` whose access
/// token expires soon.
async fn keep_warm_pass(grants: &UserGrants, store: &dyn Store, keep_warm: Duration) {
    let now = clock::now();
    let used_since = now - keep_warm.as_secs() as i64;
    let due = match store
        .grants_to_keep_warm(now + AHEAD_SECONDS, used_since, PER_PASS)
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot read the grants to keep warm");
            return;
        }
    };
    for row in due {
        // A grant of an account whose app is gone cannot be refreshed; it is left alone.
        if grants.app(&row.account).is_none() {
            continue;
        }
        let outcome = match grants
            .refreshed(&row.account, &row.zoom_user_id, row.version)
            .await
        {
            Ok(_) => "refreshed",
            // Marked, logged, audited and announced where Zoom's refusal was read.
            Err(GrantError::ReauthorizationRequired) => "refused",
            Err(error) => {
                tracing::warn!(account = %row.account, %error, "background refresh of a grant failed; retried next pass");
                "failed"
            }
        };
        metrics::counter!("ztv_grant_background_refreshes_total", "outcome" => outcome)
            .increment(1);
    }
}

/// A grant Zoom refused, as announced.
pub struct Refused {
    pub account: String,
    pub kind: GrantKind,
    /// The user's folded identity (of an install: the installer's).
    pub user: String,
    pub zoom_account: Option<String>,
}

/// Sends announcements of refused grants to `grants.notify_url`, one at a time.
pub struct Notifier {
    queue: mpsc::Sender<Refused>,
}

impl Notifier {
    /// Starts the sender; `None` without `grants.notify_url`.
    pub fn start(health: &GrantHealth) -> Option<Arc<Self>> {
        let url = health.notify_url.clone()?;
        let secret = health.notify_secret.clone()?;
        let (queue, mut pending) = mpsc::channel::<Refused>(QUEUE);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ztv/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        tokio::spawn(async move {
            while let Some(refused) = pending.recv().await {
                let outcome = match deliver(&http, &url, &secret, &refused).await {
                    true => "sent",
                    false => "failed",
                };
                metrics::counter!("ztv_grant_notifications_total", "outcome" => outcome)
                    .increment(1);
            }
        });
        Some(Arc::new(Self { queue }))
    }

    /// Queues an announcement; a full queue drops it (counted and logged), never waits.
    pub fn announce(&self, refused: Refused) {
        if self.queue.try_send(refused).is_err() {
            metrics::counter!("ztv_grant_notifications_total", "outcome" => "dropped").increment(1);
            tracing::warn!("the grant announcement queue is full; one announcement dropped");
        }
    }
}

/// POSTs one announcement, retrying on a connect error, a timeout or a non-2xx answer.
async fn deliver(
    http: &reqwest::Client,
    url: &Url,
    secret: &SecretString,
    refused: &Refused,
) -> bool {
    let timestamp = clock::now();
    let body = json!({
        "event": "grant.needs_reauthorization",
        "event_ts": timestamp * 1000,
        "payload": {
            "account": refused.account,
            "kind": refused.kind.as_str(),
            "user": refused.user,
            "zoom_account": refused.zoom_account,
        },
    })
    .to_string();
    let signature = sign(secret, timestamp, &body);
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        let sent = http
            .post(url.clone())
            .header("content-type", "application/json")
            .header("x-zm-request-timestamp", timestamp.to_string())
            .header("x-zm-signature", &signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => return true,
            Ok(answer) => tracing::warn!(
                status = answer.status().as_u16(),
                attempt,
                "grants.notify_url refused an announcement"
            ),
            Err(error) => {
                tracing::warn!(error = %error.without_url(), attempt, "grants.notify_url did not answer")
            }
        }
    }
    false
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`, as Zoom signs its webhooks.
fn sign(secret: &SecretString, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}
