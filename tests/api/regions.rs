//! Accounts on a regional Zoom cluster: `accounts.<name>.oauth_url` / `api_url` send each
//! account's calls to its own cluster, `POST /v1/s2s/token` tells callers the API host Zoom
//! named (never used by ztv to send a token), and `ztv config check --probe` warns when Zoom
//! names another host than the one configured.

use serde_json::Value;
use ztv::emulator::{Emulator, EmulatorAccount, Endpoint};
use ztv::scope::Scope;

use crate::helpers::*;

const EU_ACCOUNT_ID: &str = "acc-eu";
const EVE_ID: &str = "uEve00005";

/// A second emulator, standing for Zoom's EU cluster, with account `acc-eu` and user Eve.
async fn eu_cluster() -> Emulator {
    let eu = Emulator::start().await.unwrap();
    eu.add_account(EmulatorAccount {
        account_id: EU_ACCOUNT_ID.into(),
        client_id: "s2s-client-eu".into(),
        client_secret: "s2s-secret-eu".into(),
    });
    eu.add_user(EU_ACCOUNT_ID, EVE_ID, "eve@example.eu");
    eu
}

/// Account `eu` on the cluster `eu`.
fn eu_account(eu: &Emulator) -> String {
    format!(
        "[accounts.eu]\noauth_url = \"{}\"\napi_url = \"{}\"\n\
         [accounts.eu.s2s]\naccount_id = \"{EU_ACCOUNT_ID}\"\nclient_id = \"s2s-client-eu\"\n\
         client_secret = \"s2s-secret-eu\"\n",
        eu.base_url(),
        eu.api_url()
    )
}

#[tokio::test]
async fn each_account_calls_its_own_cluster() {
    let eu = eu_cluster().await;
    let app = TestApp::builder()
        .zoom()
        .config(&eu_account(&eu))
        .build()
        .await;
    let eu_key = app.key("eu-bot", &[Scope::ZakRead], Some("eu")).await;
    let prod_key = app.key("prod-bot", &[Scope::ZakRead], Some("prod")).await;

    let response = app.zak(&eu_key, EVE_ID).await;
    assert_eq!(response.status(), 200);
    assert_eq!((eu.calls(Endpoint::Token), eu.calls(Endpoint::Zak)), (1, 1));
    assert_eq!(
        app.zoom.calls(Endpoint::Token),
        0,
        "nothing of eu's went to the default"
    );

    let response = app.zak(&prod_key, ALICE_ID).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        (
            app.zoom.calls(Endpoint::Token),
            app.zoom.calls(Endpoint::Zak)
        ),
        (1, 1)
    );
    assert_eq!(eu.calls(Endpoint::Zak), 1, "nothing of prod's went to eu");
}

#[tokio::test]
async fn the_s2s_token_comes_with_the_api_host_zoom_named_which_ztv_never_calls() {
    let eu = eu_cluster().await;
    let app = TestApp::builder()
        .zoom()
        .config(&eu_account(&eu))
        .build()
        .await;
    app.zoom
        .report_api_url(S2S_ACCOUNT_ID, "https://api-eu.zoom.us");
    eu.report_api_url(EU_ACCOUNT_ID, "javascript:alert(1)");
    let scopes = [Scope::S2sToken, Scope::ZakRead];
    let prod_key = app.key("prod-service", &scopes, Some("prod")).await;
    let eu_key = app.key("eu-service", &scopes, Some("eu")).await;

    let token: Value = app.s2s_token(&prod_key).await.json().await.unwrap();
    assert_eq!(token["apiUrl"], "https://api-eu.zoom.us");
    // ztv keeps calling the configured URL: the ZAK comes from the emulator, not api-eu.
    assert_eq!(app.zak(&prod_key, ALICE_ID).await.status(), 200);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1);

    // An api_url that is not a bare http(s) host is not passed on: the configured one is.
    let token: Value = app.s2s_token(&eu_key).await.json().await.unwrap();
    assert_eq!(token["apiUrl"], eu.base_url());
    assert!(!token.to_string().contains("javascript"));
}

#[tokio::test]
async fn config_check_probe_warns_when_zoom_names_another_api_host() {
    let zoom = start_emulator().await;
    zoom.report_api_url(S2S_ACCOUNT_ID, "https://api-eu.zoom.us");
    let config = ConfigFile::standard(&zoom_config(&zoom, ""));

    let output = tokio::task::spawn_blocking(move || config.run(&["config", "check", "--probe"]))
        .await
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a warning is not a failure: {stdout}"
    );
    assert!(stdout.contains("accounts.prod.s2s: ok"), "{stdout}");
    assert!(
        stdout.contains(
            "accounts.prod.s2s: WARNING: Zoom says this account's API is at https://api-eu.zoom.us"
        ) && stdout.contains("accounts.prod.api_url = \"https://api-eu.zoom.us/v2\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn config_check_probe_is_quiet_when_the_hosts_agree() {
    let zoom = start_emulator().await;
    let config = ConfigFile::standard(&zoom_config(&zoom, ""));
    let output = tokio::task::spawn_blocking(move || config.run(&["config", "check", "--probe"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains("WARNING"), "{stdout}");
}
