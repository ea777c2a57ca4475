//! Secret reload without a restart. On SIGHUP, and when a file named by a `*_file` secret
//! changes, the configuration is read again from the same sources (`--config`/`ZTV_CONFIG`,
//! the environment, the secret files). A configuration that does not validate is refused
//! with one log line and the running one is kept. Otherwise the new `accounts` are put in
//! force: requests that start from then on use them, and the cached S2S tokens (in Redis
//! too) and ZAK/OBF tokens of every account whose S2S credentials changed are dropped.
//! Settings outside `accounts` are read at start only.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::config::{ConfigError, Settings, Sources};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Accounts added, removed, or with changed credentials.
    pub changed: Vec<String>,
    /// Of those, the accounts whose cached tokens were dropped (S2S credentials changed).
    pub tokens_dropped: Vec<String>,
}

/// Reads the configuration again and, if it is valid, puts its accounts in force.
pub async fn reload(
    state: &AppState,
    sources: &Sources,
    why: &str,
) -> Result<Reloaded, ConfigError> {
    let outcome = match Settings::load(sources) {
        Ok(fresh) => apply(state, fresh).await,
        Err(error) => Err(error),
    };
    match &outcome {
        Ok(done) => {
            metrics::counter!("ztv_config_reloads_total", "outcome" => "applied").increment(1);
            tracing::info!(
                trigger = why,
                changed = ?done.changed,
                tokens_dropped = ?done.tokens_dropped,
                "configuration reloaded: accounts put in force (other settings are read at start only)"
            );
        }
        Err(error) => {
            metrics::counter!("ztv_config_reloads_total", "outcome" => "refused").increment(1);
            tracing::error!(trigger = why, %error, "configuration reload refused; the running configuration is kept");
        }
    }
    outcome
}

/// Puts the accounts of `fresh` in force.
pub async fn apply(state: &AppState, fresh: Settings) -> Result<Reloaded, ConfigError> {
    if state.grants.is_none()
        && let Some(name) = fresh
            .accounts
            .iter()
            .find_map(|(name, account)| account.user_oauth.as_ref().map(|_| name))
    {
        return Err(ConfigError(format!(
            "accounts.{name}.user_oauth: user OAuth was off when ztv started; restart ztv to turn it on"
        )));
    }
    let current = state.settings();
    let changed: Vec<String> = current
        .accounts
        .keys()
        .chain(fresh.accounts.keys())
        .filter(
            |name| match (current.accounts.get(*name), fresh.accounts.get(*name)) {
                (Some(old), Some(new)) => !old.same_as(new),
                _ => true,
            },
        )
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut next = (*current).clone();
    next.accounts = fresh.accounts;
    next.secret_files = fresh.secret_files;
    let tokens_dropped = state.s2s.replace_credentials(&next.accounts).await;
    for name in &tokens_dropped {
        state.user_tokens.forget_account(name);
    }
    state.zoom.replace_accounts(&next.accounts);
    if let Some(grants) = &state.grants {
        grants.replace_apps(&next.accounts);
    }
    state.replace_settings(next);
    Ok(Reloaded {
        changed,
        tokens_dropped,
    })
}

/// Reloads on SIGHUP, and when a secret file changes (checked every `server.secret_watch_seconds`),
/// for as long as the process runs.
pub fn spawn(state: AppState, sources: Sources) {
    let sources = std::sync::Arc::new(sources);
    #[cfg(unix)]
    {
        let (state, sources) = (state.clone(), std::sync::Arc::clone(&sources));
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::warn!(
                    "cannot listen for SIGHUP; secrets reload only when their files change"
                );
                return;
            };
            while hangups.recv().await.is_some() {
                let _ = reload(&state, &sources, "SIGHUP").await;
            }
        });
    }
    let Some(every) = state.settings().server.secret_watch else {
        return;
    };
    tokio::spawn(async move {
        let mut seen = fingerprint(&state.settings().secret_files);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let files = state.settings().secret_files.clone();
            let now = tokio::task::spawn_blocking(move || fingerprint(&files))
                .await
                .unwrap_or_default();
            if now != seen {
                let _ = reload(&state, &sources, "secret file changed").await;
                // Files named by the new configuration may differ.
                seen = fingerprint(&state.settings().secret_files);
            }
        }
    });
}

/// A digest of the secret files' names and contents (a file that cannot be read counts as
/// empty); equal digests mean nothing changed.
fn fingerprint(files: &[PathBuf]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for path in files {
        hash.update(path.as_os_str().as_encoded_bytes());
        hash.update([0]);
        hash.update(std::fs::read(path).unwrap_or_default());
        hash.update([0]);
    }
    hash.finalize().to_vec()
}
