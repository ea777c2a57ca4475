//! `ztv dev`: the service against the built-in Zoom emulator, with throw-away credentials and
//! a throw-away store, a fresh API key with every scope, and curl lines that work as printed.
//! No Zoom account needed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::app::{self, Application};
use crate::auth::api_clients::{self, NewClient};
use crate::config::{
    Account, DatabaseSettings, LogFormat, MeetingSdkCredentials, S2sCredentials, Settings,
    UserOAuthApp, VideoSdkCredentials,
};
use crate::emulator::{Emulator, EmulatorAccount, EmulatorOAuthApp};
use crate::scope::Scope;
use crate::store;
use crate::telemetry;

const ACCOUNT: &str = "dev";
/// The emulated Zoom user the printed examples act for.
const DEV_USER_ID: &str = "devUser0001";
const DEV_USER_EMAIL: &str = "dev@example.com";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The settings of a dev run: the loaded ones, with a throw-away store, Zoom played by
/// `zoom`, and one account whose credentials are made up on the spot (its S2S app is
/// registered with the emulator).
pub fn dev_settings(
    mut settings: Settings,
    data_dir: &std::path::Path,
    zoom: &Emulator,
) -> Settings {
    let s2s = S2sCredentials {
        account_id: format!("devAccount{}", random_hex(4)),
        client_id: format!("devS2sClient{}", random_hex(4)),
        client_secret: SecretString::from(random_hex(24)),
    };
    zoom.add_account(EmulatorAccount {
        account_id: s2s.account_id.clone(),
        client_id: s2s.client_id.clone(),
        client_secret: s2s.client_secret.expose_secret().to_string(),
    });
    zoom.add_user(&s2s.account_id, DEV_USER_ID, DEV_USER_EMAIL);
    settings.zoom.oauth_url = url::Url::parse(&zoom.base_url()).expect("emulator URL parses");
    settings.zoom.api_url = url::Url::parse(&zoom.api_url()).expect("emulator URL parses");
    settings.database = DatabaseSettings {
        url: SecretString::from(format!("sqlite://{}", data_dir.join("ztv.db").display())),
    };
    let account = Account {
        name: ACCOUNT.into(),
        oauth_url: None,
        api_url: None,
        s2s: Some(s2s),
        meeting_sdk: Some(MeetingSdkCredentials {
            client_id: format!("devSdkKey{}", random_hex(6)),
            client_secret: SecretString::from(random_hex(24)).into(),
        }),
        video_sdk: Some(VideoSdkCredentials {
            key: format!("devVideoKey{}", random_hex(6)),
            secret: SecretString::from(random_hex(24)).into(),
        }),
        user_oauth: Some(UserOAuthApp {
            client_id: format!("devOAuthClient{}", random_hex(4)),
            client_secret: SecretString::from(random_hex(24)),
            redirect_uri: url::Url::parse(&format!(
                "http://{}{}",
                settings.server.bind,
                crate::grants::CALLBACK_PATH
            ))
            .expect("a socket address makes a URL"),
            done_url: None,
            webhook_secret: None,
        }),
    };
    if let Some(app) = &account.user_oauth {
        zoom.add_oauth_app(EmulatorOAuthApp {
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.expose_secret().to_string(),
            redirect_uri: app.redirect_uri.to_string(),
        });
    }
    zoom.set_consenting_user(DEV_USER_ID);
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    settings.grants_key = Some(SecretString::from(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key,
    )));
    settings.accounts = BTreeMap::from([(ACCOUNT.to_string(), account)]);
    settings
}

pub async fn run(settings: Settings, bind: Option<SocketAddr>) -> anyhow::Result<()> {
    telemetry::logs::init(LogFormat::Text, &settings.telemetry)?;
    let data_dir = std::env::temp_dir().join(format!("ztv-dev-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data_dir)?;
    let zoom = Emulator::start().await?;
    let mut settings = settings;
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    // The OAuth app's redirect URI names ztv's own port, so a port 0 is resolved first.
    if settings.server.bind.port() == 0 {
        let probe = std::net::TcpListener::bind(settings.server.bind)?;
        settings.server.bind = probe.local_addr()?;
    }
    let settings = dev_settings(settings, &data_dir, &zoom);

    let store = store::connect(&settings.database.url).await?;
    let (_, key) = api_clients::create(
        store.as_ref(),
        &settings,
        NewClient {
            name: "dev",
            scopes: Scope::ALL.to_vec(),
            account: Some(ACCOUNT.into()),
            expires_in: None,
            rate_limit: None,
            upstream_per_minute: None,
        },
    )
    .await?;
    let application = Application::build_with_store(settings, store).await?;
    print_banner(application.local_addr(), key.expose(), &zoom.base_url());
    let outcome = application.run(app::shutdown_signal()).await;
    zoom.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome?;
    Ok(())
}

fn print_banner(addr: SocketAddr, key: &str, zoom: &str) {
    let base = format!("http://{addr}");
    let auth = format!("-H \"Authorization: Bearer {key}\"");
    let json = "-H \"Content-Type: application/json\"";
    println!(
        r#"
ztv dev is running at {base}, with Zoom played by the built-in emulator at {zoom}.
Account `{ACCOUNT}` has throw-away Meeting SDK, Video SDK and Server-to-Server credentials;
its Zoom user is {DEV_USER_EMAIL} (ID {DEV_USER_ID}).
API key (every scope): {key}

Try:
  curl -s {base}/healthz
  curl -s -X POST {base}/v1/meeting-sdk/signature {auth} {json} -d '{{"meetingNumber":"123456789","role":0}}'
  curl -s -X POST {base}/v1/video-sdk/token -H "X-Api-Key: {key}" {json} -d '{{"sessionName":"demo","role":1}}'
  curl -s {base}/v1/users/{DEV_USER_EMAIL}/zak {auth}
  curl -s "{base}/v1/users/{DEV_USER_ID}/obf-token?meetingNumber=123456789" {auth}
  curl -s -X POST {base}/v1/join {auth} {json} -d '{{"meetingNumber":"123456789","role":1,"userId":"{DEV_USER_EMAIL}"}}'
  curl -s -X POST {base}/v1/s2s/token {auth}
  curl -s -X POST {base}/v1/meeting-sdk/signature {auth} {json} -d '{{"meetingNumber":"123456789","role":0}}' | sed 's/.*"signature":"\([^"]*\)".*/{{"token":"\1"}}/' | curl -s -X POST {base}/v1/diagnostics/token {auth} {json} -d @-

The user authorises the app themselves (the emulator consents at once as {DEV_USER_EMAIL}):
  URL=$(curl -s -X POST {base}/v1/oauth/authorize {auth} {json} -d '{{"userHint":"{DEV_USER_EMAIL}"}}' | sed 's/.*"authorizeUrl":"\([^"]*\)".*/\1/')
  BACK=$(curl -s -o /dev/null -w '%{{redirect_url}}' "$URL")
  curl -s "$BACK"
  curl -s {base}/v1/users/{DEV_USER_EMAIL}/zak {auth}

Press Ctrl-C to stop; the store and credentials are deleted.
"#
    );
}
