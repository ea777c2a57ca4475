//! Secret reload without a restart: new credentials put in force on a running service, cached
//! tokens of changed accounts dropped, a broken configuration refused with the old one kept;
//! in process, and through a real `ztv serve` with SIGHUP and a changed secret file.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use ztv::config::{Settings, Sources};
use ztv::emulator::EmulatorAccount;
use ztv::scope::Scope;

use crate::helpers::*;

const NEW_SDK_SECRET: &str = "reloaded-meeting-sdk-secret-31f";
const NEW_S2S_SECRET: &str = "reloaded-s2s-secret-8e2";

async fn access_token(app: &TestApp, key: &str) -> String {
    let response = app.s2s_token(key).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["accessToken"].as_str().unwrap().to_string()
}

async fn signature(app: &TestApp, key: &str) -> String {
    let response = app
        .signature(key, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["signature"].as_str().unwrap().to_string()
}

/// The service with the emulator, and a key of `prod` for S2S tokens and signatures.
async fn app_and_key() -> (ZoomApp, String) {
    let app = TestApp::builder().zoom().build().await;
    let scopes = [Scope::S2sToken, Scope::MeetingSdkSignature];
    let key = app.key("svc", &scopes, Some("prod")).await;
    (app, key)
}

/// Whether `jwt` is signed with `secret`.
fn signed_with(jwt: &str, secret: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_puts_new_secrets_in_force_and_drops_only_changed_tokens() {
    let (app, key) = app_and_key().await;
    let before = access_token(&app, &key).await;
    assert!(signed_with(&signature(&app, &key).await, SDK_SECRET));
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);

    // Zoom now only knows the new secret; the operator puts it (and a new SDK secret) in force.
    app.zoom.add_account(EmulatorAccount {
        account_id: S2S_ACCOUNT_ID.into(),
        client_id: S2S_CLIENT_ID.into(),
        client_secret: NEW_S2S_SECRET.into(),
    });
    let mut fresh = (*app.state.settings()).clone();
    let prod = fresh.accounts.get_mut("prod").unwrap();
    prod.s2s.as_mut().unwrap().client_secret = SecretString::from(NEW_S2S_SECRET);
    prod.meeting_sdk.as_mut().unwrap().client_secret = SecretString::from(NEW_SDK_SECRET).into();
    let done = ztv::app::reload::apply(&app.state, fresh).await.unwrap();
    assert_eq!(done.changed, vec!["prod".to_string()]);
    assert_eq!(done.tokens_dropped, vec!["prod".to_string()]);

    // Many callers at once: the dropped token is fetched again once, with the new secret.
    let tokens = futures_util::future::join_all((0..50).map(|_| access_token(&app, &key))).await;
    let distinct: std::collections::BTreeSet<&String> = tokens.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "{} distinct tokens, the old one among them: {}; Zoom was asked {} times",
        distinct.len(),
        distinct.contains(&before),
        app.zoom.token_requests_for(S2S_ACCOUNT_ID)
    );
    assert_ne!(
        tokens[0], before,
        "the old token is not served after a reload"
    );
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 2);
    let jwt = signature(&app, &key).await;
    assert!(signed_with(&jwt, NEW_SDK_SECRET));
    assert!(!signed_with(&jwt, SDK_SECRET));

    // Reloading the same configuration changes nothing and drops nothing.
    let same = (*app.state.settings()).clone();
    let done = ztv::app::reload::apply(&app.state, same).await.unwrap();
    assert!(done.changed.is_empty() && done.tokens_dropped.is_empty());
    assert_eq!(access_token(&app, &key).await, tokens[0]);
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_only_sdk_secrets_keeps_the_s2s_token() {
    let (app, key) = app_and_key().await;
    let before = access_token(&app, &key).await;
    let mut fresh = (*app.state.settings()).clone();
    let prod = fresh.accounts.get_mut("prod").unwrap();
    prod.meeting_sdk.as_mut().unwrap().client_secret = SecretString::from(NEW_SDK_SECRET).into();
    fresh.accounts.remove("dev");
    let done = ztv::app::reload::apply(&app.state, fresh).await.unwrap();
    assert_eq!(done.changed, vec!["dev".to_string(), "prod".to_string()]);
    assert!(done.tokens_dropped.is_empty());
    assert_eq!(access_token(&app, &key).await, before);
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);
    assert!(signed_with(&signature(&app, &key).await, NEW_SDK_SECRET));

    // The removed account is gone for callers.
    let dev = app.key("dev", &[Scope::MeetingSdkSignature], None).await;
    let response = app
        .signature(
            &dev,
            json!({"meetingNumber": "123456789", "role": 0, "account": "dev"}),
        )
        .await;
    assert_error(
        response,
        404,
        "not_found",
        "account `dev` is not configured",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_configuration_is_refused_and_the_running_one_kept() {
    let (app, key) = app_and_key().await;
    let before = access_token(&app, &key).await;
    let config = ConfigFile::empty();
    for (broken, named) in [
        (
            "[accounts.prod.meeting_sdk]\nclient_id = \"k\"\nclient_secret_file = \"/nonexistent/secret\"\n",
            "accounts.prod.meeting_sdk.client_secret_file",
        ),
        ("[accounts.prod.s2s]\naccount_id = 5\n", "accounts.prod.s2s"),
        ("this is not toml [", "config"),
    ] {
        config.write(broken);
        let sources = Sources {
            file: Some(config.path().to_path_buf()),
            env: HashMap::new(),
        };
        let error = ztv::app::reload::reload(&app.state, &sources, "test")
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains(named),
            "{named} not in `{error}`"
        );
        assert!(signed_with(&signature(&app, &key).await, SDK_SECRET));
        assert_eq!(access_token(&app, &key).await, before);
    }
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);

    // Turning user OAuth on needs a restart (its encryption key is read at start).
    let mut fresh: Settings = (*app.state.settings()).clone();
    fresh.accounts.get_mut("prod").unwrap().user_oauth = Some(ztv::config::UserOAuthApp {
        client_id: "c".into(),
        client_secret: SecretString::from("s"),
        redirect_uri: "http://127.0.0.1/v1/oauth/callback".parse().unwrap(),
        done_url: None,
        webhook_secret: None,
    });
    let error = ztv::app::reload::apply(&app.state, fresh)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("accounts.prod.user_oauth"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_a_changed_secret_file_reload_a_running_process() {
    let (first, second, third) = (
        "file-secret-first-0a1b2c",
        "file-secret-second-3d4e5f",
        "file-secret-third-6a7b8c",
    );
    let config = ConfigFile::empty();
    let secret_file = config.dir().join("sdk-secret");
    std::fs::write(&secret_file, format!("{first}\n")).unwrap();
    let good = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nsecret_watch_seconds = 1\n\
         [database]\nurl = \"sqlite://{}\"\n[auth]\nkey_refresh_seconds = 1\n\
         [accounts.prod.meeting_sdk]\nclient_id = \"{SDK_KEY}\"\nclient_secret_file = \"{}\"\n",
        config.db().display(),
        secret_file.display()
    );
    config.write(&good);
    let key = config.create_key(&["--name", "web", "--scope", "meeting-sdk:signature"]);

    let mut child = config.serve(&[]);
    let base = child.base();
    let http = reqwest::Client::new();
    let sign = || async {
        let response = http
            .post(format!("{base}/v1/meeting-sdk/signature"))
            .bearer_auth(&key)
            .json(&json!({"meetingNumber": 123456789, "role": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["signature"].as_str().unwrap().to_string()
    };
    let wait_signed_with = |secret: &'static str| {
        let sign = &sign;
        async move {
            let started = Instant::now();
            while !signed_with(&sign().await, secret) {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "not signed with the new secret after 10 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_signed_with(first).await;

    // The secret file changes: the watcher puts it in force, no signal needed.
    std::fs::write(&secret_file, format!("{second}\n")).unwrap();
    wait_signed_with(second).await;
    child.wait_for("secret file changed").await;

    // A broken configuration and SIGHUP: refused, logged, the running secret kept.
    config.write(&good.replace(
        &secret_file.display().to_string(),
        "/nonexistent/ztv-secret",
    ));
    child.signal("HUP");
    child.wait_for("configuration reload refused").await;
    assert!(
        child
            .text()
            .contains("accounts.prod.meeting_sdk.client_secret_file")
    );
    assert!(signed_with(&sign().await, second));

    // Repaired, with a third secret, and SIGHUP again.
    config.write(&good);
    std::fs::write(&secret_file, third).unwrap();
    child.signal("HUP");
    wait_signed_with(third).await;
    assert_eq!(child.try_wait().unwrap(), None, "the process is still up");

    child.kill().unwrap();
    let printed = child.text();
    for secret in [first, second, third, key.as_str()] {
        assert!(!printed.contains(secret), "a secret was printed");
    }
}
