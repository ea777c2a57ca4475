//! Secret reload without a restart: new credentials put in force on a running service, cached
//! tokens of changed accounts dropped, a broken configuration refused with the old one kept;
//! in process, and through a real `ztv serve` with SIGHUP and a changed secret file.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use ztv::auth::scope::Scope;
use ztv::config::{Settings, Sources};
use ztv::emulator::EmulatorAccount;

use crate::cli::{BIN, KillOnDrop, line_reader};
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
    let app = spawn_zoom_app("").await;
    let key = app
        .key(
            "svc",
            &[Scope::S2sToken, Scope::MeetingSdkSignature],
            Some("prod"),
        )
        .await;
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
    let done = ztv::config::reload::apply(&app.state, fresh).await.unwrap();
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
    let done = ztv::config::reload::apply(&app.state, same).await.unwrap();
    assert!(done.changed.is_empty() && done.tokens_dropped.is_empty());
    assert_eq!(access_token(&app, &key).await, tokens[0]);
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_only_sdk_secrets_keeps_the_s2s_token() {
    let app = spawn_zoom_app("").await;
    let key = app
        .key(
            "svc",
            &[Scope::S2sToken, Scope::MeetingSdkSignature],
            Some("prod"),
        )
        .await;
    let before = access_token(&app, &key).await;
    let mut fresh = (*app.state.settings()).clone();
    let prod = fresh.accounts.get_mut("prod").unwrap();
    prod.meeting_sdk.as_mut().unwrap().client_secret = SecretString::from(NEW_SDK_SECRET).into();
    fresh.accounts.remove("dev");
    let done = ztv::config::reload::apply(&app.state, fresh).await.unwrap();
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
    let app = spawn_zoom_app("").await;
    let key = app
        .key(
            "svc",
            &[Scope::S2sToken, Scope::MeetingSdkSignature],
            Some("prod"),
        )
        .await;
    let before = access_token(&app, &key).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ztv.toml");
    for (broken, named) in [
        (
            "[accounts.prod.meeting_sdk]\nclient_id = \"k\"\nclient_secret_file = \"/nonexistent/secret\"\n",
            "accounts.prod.meeting_sdk.client_secret_file",
        ),
        ("[accounts.prod.s2s]\naccount_id = 5\n", "accounts.prod.s2s"),
        ("this is not toml [", "config"),
    ] {
        std::fs::write(&path, broken).unwrap();
        let sources = Sources {
            file: Some(path.clone()),
            env: HashMap::new(),
        };
        let error = ztv::config::reload::reload(&app.state, &sources, "test")
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
    });
    let error = ztv::config::reload::apply(&app.state, fresh)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("accounts.prod.user_oauth"),
        "{error}"
    );
}

/// What a `ztv serve` printed so far, collected on a thread.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    async fn wait_for(&self, needle: &str) {
        let started = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no `{needle}` in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hang_up(child: &KillOnDrop) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_a_changed_secret_file_reload_a_running_process() {
    let (first, second, third) = (
        "file-secret-first-0a1b2c",
        "file-secret-second-3d4e5f",
        "file-secret-third-6a7b8c",
    );
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("sdk-secret");
    std::fs::write(&secret_file, format!("{first}\n")).unwrap();
    let config = dir.path().join("ztv.toml");
    let good = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nsecret_watch_seconds = 1\n\
         [database]\nurl = \"sqlite://{}\"\n[auth]\nkey_refresh_seconds = 1\n\
         [accounts.prod.meeting_sdk]\nclient_id = \"{SDK_KEY}\"\nclient_secret_file = \"{}\"\n",
        dir.path().join("ztv.db").display(),
        secret_file.display()
    );
    std::fs::write(&config, &good).unwrap();
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("ZTV_CONFIG")
            .output()
            .unwrap()
    };
    let created = cli(&[
        "clients",
        "create",
        "--name",
        "web",
        "--scope",
        "meeting-sdk:signature",
        "--json",
    ]);
    assert!(created.status.success());
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_string();

    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("ZTV_CONFIG")
        .env("ZTV_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let output = Output::default();
    for lines in [
        line_reader(child.stdout.take().unwrap()),
        line_reader(child.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in lines {
                output.0.lock().unwrap().push(line);
            }
        });
    }
    output.wait_for("ztv is listening").await;
    let listening = output
        .text()
        .lines()
        .find(|l| l.contains("ztv is listening"))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .unwrap();
    let base = format!("http://{}", listening["addr"].as_str().unwrap());
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
    output.wait_for("secret file changed").await;

    // A broken configuration and SIGHUP: refused, logged, the running secret kept.
    std::fs::write(
        &config,
        good.replace(
            &secret_file.display().to_string(),
            "/nonexistent/ztv-secret",
        ),
    )
    .unwrap();
    hang_up(&child);
    output.wait_for("configuration reload refused").await;
    assert!(
        output
            .text()
            .contains("accounts.prod.meeting_sdk.client_secret_file")
    );
    assert!(signed_with(&sign().await, second));

    // Repaired, with a third secret, and SIGHUP again.
    std::fs::write(&config, &good).unwrap();
    std::fs::write(&secret_file, third).unwrap();
    hang_up(&child);
    wait_signed_with(third).await;
    assert_eq!(child.try_wait().unwrap(), None, "the process is still up");

    child.kill().unwrap();
    let printed = output.text();
    for secret in [first, second, third, key.as_str()] {
        assert!(!printed.contains(secret), "a secret was printed");
    }
}
