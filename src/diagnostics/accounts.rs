//! What can be known of each account's apps without a meeting or a user: the user OAuth app's
//! authorize URL, redirect URI and webhook secret, and whether client IDs, keys and secrets
//! are shaped as Zoom issues them and belong to one account only. (The S2S app is checked by
//! fetching a token: see `ztv config check --probe`.) Messages never quote a secret.

use secrecy::ExposeSecret;

use crate::config::{Account, Settings, UserOAuthApp, https_or_loopback};
use crate::grants::{CALLBACK_PATH, authorize_url};

/// Shortest client ID or SDK key ztv takes for one Zoom issued (Zoom's are about 22).
const ID_MIN_CHARS: usize = 10;
const ID_MAX_CHARS: usize = 64;
/// Shortest secret ztv takes for one Zoom issued (Zoom's are 32).
const SECRET_MIN_CHARS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, but most likely not as meant.
    Warning,
    /// Will fail when used.
    Problem,
}

/// One check of one app, named by the configuration key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCheck {
    /// `accounts.<name>.<app>[.<field>]`.
    pub key: String,
    pub level: Level,
    pub message: String,
}

/// The app kinds whose credentials are compared across accounts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    MeetingSdk,
    VideoSdk,
    UserOAuth,
}

impl App {
    const ALL: [App; 3] = [App::MeetingSdk, App::VideoSdk, App::UserOAuth];

    fn key(self) -> &'static str {
        match self {
            App::MeetingSdk => "meeting_sdk",
            App::VideoSdk => "video_sdk",
            App::UserOAuth => "user_oauth",
        }
    }

    fn label(self) -> &'static str {
        match self {
            App::MeetingSdk => "Meeting SDK app",
            App::VideoSdk => "Video SDK app",
            App::UserOAuth => "user OAuth app",
        }
    }

    /// What the configuration calls the app's ID and secret.
    fn fields(self) -> (&'static str, &'static str) {
        match self {
            App::VideoSdk => ("key", "secret"),
            App::MeetingSdk | App::UserOAuth => ("client_id", "client_secret"),
        }
    }

    /// The app's ID and secret in `account`, if it has the app.
    fn credentials(self, account: &Account) -> Option<(&str, &str)> {
        match self {
            App::MeetingSdk => account
                .meeting_sdk
                .as_ref()
                .map(|c| (c.client_id.as_str(), c.client_secret.expose_secret())),
            App::VideoSdk => account
                .video_sdk
                .as_ref()
                .map(|c| (c.key.as_str(), c.secret.expose_secret())),
            App::UserOAuth => account
                .user_oauth
                .as_ref()
                .map(|c| (c.client_id.as_str(), c.client_secret.expose_secret())),
        }
    }
}

/// Every check of every account, accounts in name order.
pub fn check_accounts(settings: &Settings) -> Vec<AccountCheck> {
    let mut out = Vec::new();
    for (name, account) in &settings.accounts {
        for app in App::ALL {
            if let Some((id, secret)) = app.credentials(account) {
                check_credentials(settings, name, app, id, secret, &mut out);
            }
        }
        if let Some(oauth) = &account.user_oauth {
            check_user_oauth(settings, name, account, oauth, &mut out);
        }
    }
    out
}

fn check(out: &mut Vec<AccountCheck>, key: String, problem: Option<(Level, String)>, ok: String) {
    let (level, message) = problem.unwrap_or((Level::Ok, ok));
    out.push(AccountCheck {
        key,
        level,
        message,
    });
}

/// Shape, and sharing with another account, of one app's ID and secret.
fn check_credentials(
    settings: &Settings,
    name: &str,
    app: App,
    id: &str,
    secret: &str,
    out: &mut Vec<AccountCheck>,
) {
    let (id_field, secret_field) = app.fields();
    let base = format!("accounts.{name}.{}", app.key());
    let shape = id_shape(id, id_field).or_else(|| secret_shape(secret, id, secret_field));
    let shared = settings
        .accounts
        .iter()
        .filter(|(other, _)| other.as_str() != name)
        .find_map(|(other, account)| {
            let (other_id, other_secret) = app.credentials(account)?;
            let same = match (other_id == id, other_secret == secret) {
                (true, true) => format!("{id_field} and {secret_field}"),
                (true, false) => id_field.to_string(),
                (false, true) => secret_field.to_string(),
                (false, false) => return None,
            };
            Some(format!(
                "the same {same} as account `{other}`'s {}: a token one signs cannot be \
                 told from the other's, and a change to one app is a change to both",
                app.label()
            ))
        });
    let problem = shape.or(shared).map(|message| (Level::Warning, message));
    check(
        out,
        base,
        problem,
        format!("{id_field} and {secret_field} shaped as Zoom issues them, and this account's own"),
    );
}

/// Why `id` does not look like a client ID or SDK key Zoom issued: letters, digits, '_' or
/// '-', about 22 of them.
fn id_shape(id: &str, field: &str) -> Option<String> {
    if let Some(found) = stray(id) {
        return Some(format!(
            "{field} has {found}: pasted with what surrounded it?"
        ));
    }
    if placeholder(id) {
        return Some(format!(
            "{field} looks like a placeholder, not Zoom's value"
        ));
    }
    let chars = id.chars().count();
    let fits = (ID_MIN_CHARS..=ID_MAX_CHARS).contains(&chars)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (!fits).then(|| {
        format!(
            "{field} is not shaped as Zoom issues them ({ID_MIN_CHARS}–{ID_MAX_CHARS} letters, \
             digits, '_' or '-'): a placeholder, or another field's value?"
        )
    })
}

/// Why `secret` does not look like a secret Zoom issued (32 letters and digits), without
/// quoting it.
fn secret_shape(secret: &str, id: &str, field: &str) -> Option<String> {
    if secret == id {
        return Some(format!(
            "{field} is the app's ID: the ID was pasted into both fields"
        ));
    }
    if let Some(found) = stray(secret) {
        return Some(format!(
            "{field} has {found}: pasted with what surrounded it?"
        ));
    }
    if placeholder(secret) {
        return Some(format!(
            "{field} looks like a placeholder, not Zoom's value"
        ));
    }
    if secret.chars().count() < SECRET_MIN_CHARS {
        return Some(format!(
            "{field} is shorter than Zoom's secrets (32 letters and digits): a placeholder?"
        ));
    }
    None
}

/// Whether `value` is a sample's or template's stand-in for a credential.
fn placeholder(value: &str) -> bool {
    const WORDS: [&str; 5] = ["your", "changeme", "placeholder", "example", "xxxx"];
    let value = value.to_ascii_lowercase();
    WORDS.iter().any(|word| value.contains(word))
}

/// The first character no Zoom credential has and a copy-and-paste often brings, named.
fn stray(value: &str) -> Option<&'static str> {
    value.chars().find_map(|c| match c {
        c if c.is_whitespace() => Some("a space or line break"),
        '"' | '\'' | '`' => Some("a quote"),
        c if c.is_control() => Some("a control character"),
        c if !c.is_ascii() => Some("a character outside ASCII"),
        _ => None,
    })
}

/// The authorize URL users are sent to, the redirect URI Zoom sends them back to, and the
/// webhook secret that lets Zoom tell ztv a user removed the app.
fn check_user_oauth(
    settings: &Settings,
    name: &str,
    account: &Account,
    app: &UserOAuthApp,
    out: &mut Vec<AccountCheck>,
) {
    let base = format!("accounts.{name}.user_oauth");
    let oauth_url = account.oauth_url(&settings.zoom);
    let url = authorize_url(oauth_url, app, None);
    let carries = |name: &str, value: &str| url.query_pairs().any(|(k, v)| k == name && v == value);
    let problem = if !https_or_loopback(&url) {
        Some("is not https: Zoom's sign-in page must be".to_string())
    } else if !(carries("client_id", &app.client_id)
        && carries("redirect_uri", app.redirect_uri.as_str()))
    {
        Some("does not carry the client_id and redirect_uri as they are configured".to_string())
    } else {
        None
    };
    check(
        out,
        format!("{base}.authorize_url"),
        problem.map(|p| (Level::Problem, format!("the authorize URL {url} {p}"))),
        format!("users are sent to {url}&state=…"),
    );

    let redirect = &app.redirect_uri;
    let problem = if !redirect.path().ends_with(CALLBACK_PATH) {
        Some((
            Level::Problem,
            format!(
                "{redirect} is not ztv's callback: Zoom sends users back to {}, where ztv does \
                 not finish the grant; it must end in {CALLBACK_PATH}",
                redirect.path()
            ),
        ))
    } else if redirect.query().is_some() || redirect.fragment().is_some() {
        Some((
            Level::Problem,
            format!(
                "{redirect} has a query or fragment: Zoom compares redirect URIs exactly and \
                 ztv's callback takes only Zoom's code and state"
            ),
        ))
    } else if !https_or_loopback(redirect) {
        Some((
            Level::Warning,
            format!(
                "{redirect} is not https: Zoom takes plain http only for this machine's \
                 loopback"
            ),
        ))
    } else {
        None
    };
    check(
        out,
        format!("{base}.redirect_uri"),
        problem,
        format!("{redirect} is ztv's callback (it must also be in the app's allow list at Zoom)"),
    );

    let problem = (app.webhook_secret.is_none() && settings.webhook_secret.is_none()).then(|| {
        (
            Level::Warning,
            "no webhook secret token (neither this key nor webhooks.secret_token): ztv cannot \
             verify Zoom's app_deauthorized events, so a user who removes the app keeps a \
             grant here until its refresh fails"
                .to_string(),
        )
    });
    check(
        out,
        format!("{base}.webhook_secret_token"),
        problem,
        match &app.webhook_secret {
            Some(_) => "present: Zoom's events for this app are verified".to_string(),
            None => "webhooks.secret_token verifies Zoom's events for this app".to_string(),
        },
    );
}
