//! The Zoom emulator the tests start: its accounts and users, and the config that points the
//! service at it.

use ztv::emulator::{Emulator, EmulatorAccount};

pub const ALICE_ID: &str = "uAlice01";
pub const ALICE_EMAIL: &str = "alice@example.com";
pub const BOB_ID: &str = "uBob0002";

/// The emulator with account `acc-prod` (users Alice and Bob) and `acc-other` (user Carol).
pub async fn start_emulator() -> Emulator {
    let zoom = Emulator::start().await.unwrap();
    zoom.add_account(EmulatorAccount {
        account_id: S2S_ACCOUNT_ID.into(),
        client_id: S2S_CLIENT_ID.into(),
        client_secret: S2S_SECRET.into(),
    });
    zoom.add_user(S2S_ACCOUNT_ID, ALICE_ID, ALICE_EMAIL);
    zoom.add_user(S2S_ACCOUNT_ID, BOB_ID, "bob@example.com");
    zoom.add_account(EmulatorAccount {
        account_id: "acc-other".into(),
        client_id: "s2s-client-other".into(),
        client_secret: "s2s-secret-other".into(),
    });
    zoom.add_user("acc-other", "uCarol03", "carol@example.org");
    zoom
}

/// A `[zoom]` key: ZAKs and OBF tokens are fetched for every request, never reused.
pub const NO_REUSE: &str = "user_token_cache_seconds = 0";

/// The S2S credentials of `prod` (Zoom account `acc-prod`).
pub const S2S_ACCOUNT_ID: &str = "acc-prod";
pub const S2S_CLIENT_ID: &str = "s2s-client-prod";
pub const S2S_SECRET: &str = "s2s-secret-prod-5c4b3a";

/// Zoom timeouts for tests that count Zoom calls under load, not fault tests: a retry after
/// a timeout on a busy machine would count as a second call.
pub const PATIENT: &str = "request_timeout_ms = 10000\ncall_deadline_ms = 20000\n";

/// `[zoom]` pointing at `zoom` (short timeouts so fault tests finish quickly, unless
/// `zoom_keys`, added to the section, sets them) and `prod`'s S2S credentials.
pub fn zoom_config(zoom: &Emulator, zoom_keys: &str) -> String {
    let defaults: String = [
        "connect_timeout_ms = 500",
        "request_timeout_ms = 800",
        "call_deadline_ms = 2000",
        "retries = 2",
        "breaker_failures = 3",
        "breaker_cooldown_seconds = 2",
    ]
    .iter()
    .filter(|line| {
        let key = line.split(' ').next().unwrap_or_default();
        !zoom_keys
            .lines()
            .any(|set| set.trim_start().starts_with(key))
    })
    .map(|line| format!("{line}\n"))
    .collect();
    format!(
        r#"
[zoom]
oauth_url = "{oauth}"
api_url = "{api}"
{defaults}{zoom_keys}
[accounts.prod.s2s]
account_id = "{S2S_ACCOUNT_ID}"
client_id = "{S2S_CLIENT_ID}"
client_secret = "{S2S_SECRET}"
"#,
        oauth = zoom.base_url(),
        api = zoom.api_url(),
    )
}
