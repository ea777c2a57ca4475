//! `ztv dev`: the service with throw-away credentials and a throw-away store, a fresh API key
//! with every scope, and curl lines that work as printed. No Zoom account needed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rand::RngCore;
use secrecy::SecretString;

use crate::app::{self, Application};
use crate::clients::{self, NewClient};
use crate::scope::Scope;
use crate::settings::{
    Account, DatabaseSettings, LogFormat, MeetingSdkCredentials, Settings, VideoSdkCredentials,
};
use crate::store;
use crate::telemetry;

const ACCOUNT: &str = "dev";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The settings of a dev run: the loaded ones, with a throw-away store and one account whose
/// Meeting SDK and Video SDK credentials are made up on the spot.
pub fn dev_settings(mut settings: Settings, data_dir: &std::path::Path) -> Settings {
    settings.database = DatabaseSettings {
        url: SecretString::from(format!("sqlite://{}", data_dir.join("ztv.db").display())),
    };
    let account = Account {
        name: ACCOUNT.into(),
        s2s: None,
        meeting_sdk: Some(MeetingSdkCredentials {
            client_id: format!("devSdkKey{}", random_hex(6)),
            client_secret: SecretString::from(random_hex(24)),
        }),
        video_sdk: Some(VideoSdkCredentials {
            key: format!("devVideoKey{}", random_hex(6)),
            secret: SecretString::from(random_hex(24)),
        }),
    };
    settings.accounts = BTreeMap::from([(ACCOUNT.to_string(), account)]);
    settings
}

pub async fn run(settings: Settings, bind: Option<SocketAddr>) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    let data_dir = std::env::temp_dir().join(format!("ztv-dev-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data_dir)?;
    let mut settings = dev_settings(settings, &data_dir);
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }

    let store = store::connect(&settings.database.url).await?;
    let (_, key) = clients::create(
        store.as_ref(),
        &settings,
        NewClient {
            name: "dev",
            scopes: Scope::ALL.to_vec(),
            account: Some(ACCOUNT.into()),
            expires_in: None,
        },
    )
    .await?;
    let application = Application::build_with_store(settings, store).await?;
    print_banner(application.local_addr(), key.expose());
    let outcome = application.run(app::shutdown_signal()).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome?;
    Ok(())
}

fn print_banner(addr: SocketAddr, key: &str) {
    let base = format!("http://{addr}");
    println!(
        r#"
ztv dev is running at {base} with throw-away credentials (account `{ACCOUNT}`).
API key (every scope): {key}

Try:
  curl -s {base}/healthz
  curl -s -X POST {base}/v1/meeting-sdk/signature -H "Authorization: Bearer {key}" -H "Content-Type: application/json" -d '{{"meetingNumber":"123456789","role":0}}'
  curl -s -X POST {base}/v1/video-sdk/token -H "X-Api-Key: {key}" -H "Content-Type: application/json" -d '{{"sessionName":"demo","role":1}}'

Press Ctrl-C to stop; the store and credentials are deleted.
"#
    );
}
