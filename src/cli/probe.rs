//! `ztv config check --probe`: one S2S token fetched per account, and every check of the
//! other apps that needs no meeting ([`crate::diagnostics::check_accounts`]), one line each,
//! named by the configuration key it is about.

use crate::config::{Account, Settings, ZoomSettings};
use crate::diagnostics::{AccountCheck, Level, check_accounts};
use crate::zoom::{S2sToken, ZoomClient};

/// Prints every check; fails when any app will fail when used.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let zoom = ZoomClient::new(&settings.zoom, &settings.accounts)?;
    println!("probing Zoom at {}", settings.zoom.oauth_url);
    let mut checks = Vec::new();
    for (name, account) in &settings.accounts {
        if account.s2s.is_some() {
            checks.extend(probe_s2s(&zoom, settings, name, account).await);
        }
    }
    checks.extend(check_accounts(settings));
    // Accounts in name order, each account's lines in the order checked.
    checks.sort_by(|a, b| account_of(&a.key).cmp(account_of(&b.key)));
    for check in &checks {
        let level = match check.level {
            Level::Ok => "ok",
            Level::Warning => "WARNING",
            Level::Problem => "FAILED",
        };
        println!("  {}: {level}: {}", check.key, check.message);
    }
    let count = |level| checks.iter().filter(|c| c.level == level).count();
    let (problems, warnings) = (count(Level::Problem), count(Level::Warning));
    println!("{problems} failed, {warnings} warning(s)");
    match problems {
        0 => Ok(()),
        n => anyhow::bail!("{n} check(s) failed the probe"),
    }
}

fn account_of(key: &str) -> &str {
    key.split('.').nth(1).unwrap_or_default()
}

/// A token fetched with the account's S2S credentials, and whether Zoom named the API host
/// ztv calls.
async fn probe_s2s(
    zoom: &ZoomClient,
    settings: &Settings,
    name: &str,
    account: &Account,
) -> Vec<AccountCheck> {
    let key = format!("accounts.{name}.s2s");
    let Some(credentials) = &account.s2s else {
        return Vec::new();
    };
    let token = match zoom.fetch_s2s_token(name, credentials).await {
        Ok(token) => token,
        Err(error) => {
            return vec![AccountCheck {
                key,
                level: Level::Problem,
                message: error.to_string(),
            }];
        }
    };
    let scopes = match token.scope.is_empty() {
        true => "none listed",
        false => &token.scope,
    };
    let mut checks = vec![AccountCheck {
        key: key.clone(),
        level: Level::Ok,
        message: format!(
            "token valid for {} s; scopes: {scopes}",
            token.lifetime.as_secs()
        ),
    }];
    if let Some(warning) = api_url_mismatch(name, account, &settings.zoom, &token) {
        checks.push(AccountCheck {
            key,
            level: Level::Warning,
            message: warning,
        });
    }
    checks
}

/// Zoom named another API host for the account than the one ztv calls (a regional cluster).
fn api_url_mismatch(
    name: &str,
    account: &Account,
    zoom: &ZoomSettings,
    token: &S2sToken,
) -> Option<String> {
    let told = token.api_url.as_ref()?;
    let configured = account.api_url(zoom);
    let same = told.scheme() == configured.scheme()
        && told.host() == configured.host()
        && told.port_or_known_default() == configured.port_or_known_default();
    let told = told.as_str().trim_end_matches('/');
    (!same).then(|| {
        format!(
            "Zoom says this account's API is at {told}, but ztv calls {configured}; \
             set accounts.{name}.api_url = \"{told}/v2\""
        )
    })
}
