//! Every secret ztv holds that could have signed a token, with the account and app it belongs
//! to, so a diagnosis can say whose secret signed it and whose key it carries.

use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::signing::SigningSecret;

/// Which of an account's apps a key or secret belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    MeetingSdk,
    VideoSdk,
    S2s,
    UserOAuth,
}

impl App {
    /// The app's secret, in words.
    pub fn secret(self) -> &'static str {
        match self {
            App::MeetingSdk => "Meeting SDK secret",
            App::VideoSdk => "Video SDK secret",
            App::S2s => "Server-to-Server OAuth client secret",
            App::UserOAuth => "user OAuth app's client secret",
        }
    }

    /// The app's key (client ID), in words.
    pub fn key(self) -> &'static str {
        match self {
            App::MeetingSdk => "Meeting SDK key",
            App::VideoSdk => "Video SDK key",
            App::S2s => "Server-to-Server OAuth client ID",
            App::UserOAuth => "user OAuth app's client ID",
        }
    }
}

/// One app's key and secret, of one account.
pub struct Known {
    pub account: String,
    pub app: App,
    pub key: String,
    secret: SigningSecret,
}

/// The configured secrets, and whose names a diagnosis may show.
pub struct Secrets {
    known: Vec<Known>,
    /// (ztv account, Zoom account ID) of each account with S2S credentials.
    zoom_accounts: Vec<(String, String)>,
    /// A caller bound to one account sees only that account's name.
    viewer: Option<String>,
}

impl Secrets {
    /// Every account's apps; `viewer`: the one account whose name may be shown (`None`: all).
    pub fn from_settings(settings: &Settings, viewer: Option<&str>) -> Self {
        let mut known = Vec::new();
        let mut zoom_accounts = Vec::new();
        for (name, account) in &settings.accounts {
            if let Some(s2s) = &account.s2s {
                zoom_accounts.push((name.clone(), s2s.account_id.clone()));
            }
            let mut add = |app, key: &str, secret: SigningSecret| {
                known.push(Known {
                    account: name.clone(),
                    app,
                    key: key.to_string(),
                    secret,
                });
            };
            if let Some(app) = &account.meeting_sdk {
                add(App::MeetingSdk, &app.client_id, app.client_secret.clone());
            }
            if let Some(app) = &account.video_sdk {
                add(App::VideoSdk, &app.key, app.secret.clone());
            }
            if let Some(app) = &account.s2s {
                let secret = SigningSecret::new(app.client_secret.expose_secret().into());
                add(App::S2s, &app.client_id, secret);
            }
            if let Some(app) = &account.user_oauth {
                let secret = SigningSecret::new(app.client_secret.expose_secret().into());
                add(App::UserOAuth, &app.client_id, secret);
            }
        }
        Self {
            known,
            zoom_accounts,
            viewer: viewer.map(str::to_string),
        }
    }

    /// The secret whose HMAC-SHA256 of `signed` is `signature`, if ztv holds it.
    pub fn signer(&self, signed: &[u8], signature: &[u8]) -> Option<&Known> {
        self.known
            .iter()
            .find(|known| known.secret.verifies(signed, signature))
    }

    /// The app whose key (client ID) is `key`, preferring one of `app`'s kind.
    pub fn owner_of_key(&self, key: &str, app: App) -> Option<&Known> {
        let mut owners = self.known.iter().filter(|known| known.key == key);
        let first = owners.clone().next();
        owners.find(|known| known.app == app).or(first)
    }

    /// The ztv account whose Zoom account ID is `zoom_account_id`.
    pub fn account_of_zoom_id(&self, zoom_account_id: &str) -> Option<&str> {
        self.zoom_accounts
            .iter()
            .find(|(_, id)| id == zoom_account_id)
            .map(|(name, _)| name.as_str())
    }

    /// Whether any account has an app of this kind.
    pub fn has(&self, app: App) -> bool {
        self.known.iter().any(|known| known.app == app)
    }

    /// The account as a message may name it: `account `prod``, or `another account`.
    pub fn name(&self, account: &str) -> String {
        match &self.viewer {
            Some(viewer) if viewer != account => "another account".into(),
            _ => format!("account `{account}`"),
        }
    }

    /// The account's name when the viewer may see it.
    pub fn visible(&self, account: &str) -> Option<String> {
        match &self.viewer {
            Some(viewer) if viewer != account => None,
            _ => Some(account.to_string()),
        }
    }
}
