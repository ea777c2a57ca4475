//! The `ztv` binary itself: the clients commands, config errors, and a full run with known
//! secrets whose every printed byte is searched for them.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::helpers::oauth::{GRANTS_KEY, OAUTH_CLIENT, OAUTH_SECRET, WEBHOOK_SECRET};
use crate::helpers::*;

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

#[test]
fn clients_create_json_prints_the_key_once_with_its_grants() {
    let config = ConfigFile::standard("");

    let created = stdout_json(&config.run(&[
        "clients",
        "create",
        "--name",
        "web",
        "--scope",
        "meeting-sdk:signature",
        "--scope",
        "zak:read",
        "--account",
        "prod",
        "--expires-in",
        "90d",
        "--json",
    ]));

    assert_eq!(created["name"], "web");
    assert_eq!(created["account"], "prod");
    assert_eq!(
        created["scopes"],
        json!(["meeting-sdk:signature", "zak:read"])
    );
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("ztv_") && key.len() == 47, "{key}");
    let expires = humantime::parse_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    let in_days = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((89..=90).contains(&in_days), "{in_days}");

    let listed = stdout_json(&config.run(&["clients", "list", "--json"]));
    assert_eq!(listed[0]["name"], "web");
    assert_eq!(listed[0]["status"], "active");
    assert!(!listed.to_string().contains(key), "list never shows a key");
    assert!(key.starts_with(listed[0]["keyPrefix"].as_str().unwrap()));
    let db = std::fs::read(config.db()).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the store holds only a hash"
    );
}

#[test]
fn clients_rotate_and_revoke_change_what_list_reports() {
    let config = ConfigFile::standard("");
    let first = stdout_json(&config.run(&[
        "clients",
        "create",
        "--name",
        "svc",
        "--scope",
        "s2s:token",
        "--json",
    ]));
    assert_eq!(first["account"], Value::Null);

    let rotated = stdout_json(&config.run(&["clients", "rotate", "svc", "--json"]));
    assert_ne!(rotated["key"], first["key"]);

    let updated = config.run(&["clients", "update", "svc", "--rate-limit", "5/10"]);
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    let listed = stdout_json(&config.run(&["clients", "list", "--json"]));
    assert_eq!(
        listed[0]["rateLimit"],
        json!({"requestsPerSecond": 5, "burst": 10})
    );
    let bad = config.run(&["clients", "update", "svc", "--rate-limit", "0/x"]);
    assert!(!bad.status.success());

    let revoke = config.run(&["clients", "revoke", "svc"]);
    assert!(revoke.status.success());
    let listed = stdout_json(&config.run(&["clients", "list", "--json"]));
    assert_eq!(listed[0]["status"], "revoked");

    let again = config.run(&["clients", "revoke", "svc"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live client named `svc`"));
}

#[test]
fn clients_create_refuses_unknown_scopes_accounts_and_duplicates() {
    let config = ConfigFile::standard("");

    let scope = config.run(&["clients", "create", "--name", "a", "--scope", "zak:write"]);
    assert!(!scope.status.success());
    assert!(String::from_utf8_lossy(&scope.stderr).contains("unknown scope `zak:write`"));

    let account = config.run(&[
        "clients",
        "create",
        "--name",
        "a",
        "--scope",
        "zak:read",
        "--account",
        "nope",
    ]);
    assert_eq!(account.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&account.stderr).contains("account `nope` is not configured"));

    assert!(
        config
            .run(&["clients", "create", "--name", "a", "--scope", "zak:read"])
            .status
            .success()
    );
    let dup = config.run(&["clients", "create", "--name", "a", "--scope", "zak:read"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}

#[test]
fn config_errors_exit_2_with_one_line_naming_the_key() {
    let config = ConfigFile::standard("");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("ZTV_ACCOUNTS__EXTRA__MEETING_SDK__CLIENT_ID", "id")],
            "accounts.extra.meeting_sdk.client_secret: missing",
        ),
        (
            &[("ZTV_SERVER__BIND", "nowhere")],
            "server.bind: must be an address and port",
        ),
        (
            &[("ZTV_DATABASE__URL", "mysql://x")],
            "database.url: must start with sqlite:",
        ),
        (
            &[("ZTV_SIGNING__IAT_BACKDATE_SECONDS", "9999")],
            "signing.iat_backdate_seconds: must be between 0 and 300",
        ),
        (
            &[("ZTV_ZOOM__OAUTH_URL", "zoom")],
            "zoom.oauth_url: must be an http(s) URL",
        ),
        (
            &[(
                "ZTV_ACCOUNTS__PROD__VIDEO_SDK__SECRET_FILE",
                "/nonexistent/secret",
            )],
            "accounts.prod.video_sdk.secret: set accounts.prod.video_sdk.secret or",
        ),
    ];
    for (env, expected) in cases {
        let mut command = config.command();
        command.arg("config").arg("check");
        for (k, v) in *env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(expected),
            "{env:?}: {stderr:?} lacks {expected:?}"
        );
    }

    let missing = ztv_command()
        .args(["--config", "/nonexistent/ztv.toml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/ztv.toml: not found"));

    let ok = config.run(&["config", "check"]);
    assert!(ok.status.success());
    let summary = String::from_utf8_lossy(&ok.stdout);
    assert!(
        summary.contains("prod: meeting_sdk, video_sdk"),
        "{summary}"
    );
    assert!(!summary.contains(SDK_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_with_known_secrets_never_prints_them() {
    // Secrets come from both the file and the environment; the key and the tokens issued
    // are searched for too.
    let s2s_secret = "s2s-client-secret-never-printed-77";
    let zoom = ztv::emulator::Emulator::start().await.unwrap();
    zoom.add_account(ztv::emulator::EmulatorAccount {
        account_id: "acc".into(),
        client_id: "cid".into(),
        client_secret: s2s_secret.into(),
    });
    zoom.add_user("acc", "uAlice01", "alice@example.com");
    let config = ConfigFile::standard(&format!(
        "[zoom]\noauth_url = \"{}\"\napi_url = \"{}\"\nuser_token_cache_seconds = 0\n\
         [accounts.prod.s2s]\naccount_id = \"acc\"\nclient_id = \"cid\"\nclient_secret = \"{s2s_secret}\"\n",
        zoom.base_url(),
        zoom.api_url()
    ));
    let env_secret = "env-given-dev-secret-never-printed-88";
    let created = stdout_json(&config.run(&[
        "clients",
        "create",
        "--name",
        "web",
        "--scope",
        "meeting-sdk:signature",
        "--scope",
        "video-sdk:token",
        "--json",
    ]));
    let key = created["key"].as_str().unwrap().to_string();

    let mut child = config.serve(&[
        ("ZTV_ACCOUNTS__DEV__MEETING_SDK__CLIENT_SECRET", env_secret),
        ("RUST_LOG", "debug"),
    ]);
    let base = child.base();
    let http = reqwest::Client::new();

    let mut tokens = Vec::new();
    let mut request_ids = Vec::new();
    for (path, body) in [
        (
            "/v1/meeting-sdk/signature",
            json!({"meetingNumber": "123456789", "role": 0, "account": "prod"}),
        ),
        ("/v1/meeting-sdk/signature", json!({"account": "dev"})),
        (
            "/v1/video-sdk/token",
            json!({"sessionName": "s", "role": 0, "account": "prod"}),
        ),
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        request_ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        let body: Value = response.json().await.unwrap();
        tokens.push(body["signature"].as_str().unwrap().to_string());
    }
    for (path, body) in [
        (
            "/v1/meeting-sdk/signature",
            json!({"meetingNumber": "1abc", "role": 0, "account": "prod"}),
        ),
        (
            "/v1/meeting-sdk/signature",
            json!({"meetingNumber": "123456789", "role": 1, "account": "prod"}),
        ),
        (
            "/v1/video-sdk/token",
            json!({"sessionName": "s", "role": 9}),
        ),
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let forged = format!("{}x", &key[..key.len() - 1]);
    let response = http
        .post(format!("{base}/v1/meeting-sdk/signature"))
        .header("x-api-key", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    child.signal("TERM");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM ends the service with exit code 0: {status:?}"
    );
    let printed = child.printed_to_the_end();

    let all = printed.join("\n");
    assert!(
        all.contains("\"caller\":\"web\""),
        "request lines name the caller"
    );
    assert!(
        all.contains("\"status\":400"),
        "request lines carry the status"
    );
    // One access line per request, with the request's own fields.
    let served: Vec<Value> = printed
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "served" && line["request_id"] == request_ids[0])
        .collect();
    assert_eq!(served.len(), 1, "one access line for the request");
    let line = &served[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/v1/meeting-sdk/signature");
    assert_eq!(line["status"], 200);
    assert_eq!(line["caller"], "web");
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    for needle in [
        SDK_SECRET,
        VIDEO_SECRET,
        OTHER_SDK_SECRET,
        s2s_secret,
        env_secret,
        &key,
        &forged,
    ] {
        assert!(!all.contains(needle), "output contains a secret: {needle}");
    }
    for token in &tokens {
        assert!(
            !all.contains(token.as_str()),
            "output contains an issued token"
        );
        let signature_part = token.rsplit('.').next().unwrap();
        assert!(!all.contains(signature_part));
    }
}

#[test]
fn ztv_dev_prints_curl_lines_that_work_as_printed() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: curl is not installed, so the printed curl lines cannot be run");
        return;
    }
    let mut child = Process::start(
        ztv_command()
            .args(["dev", "--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "warn"),
        "Press Ctrl-C",
    );
    let mut curls = Vec::new();
    let mut flow = Vec::new();
    let mut in_flow = false;
    for line in child.stdout() {
        if line.starts_with("The user authorises") {
            in_flow = true;
        } else if line.starts_with("Press Ctrl-C") {
            break;
        } else if in_flow && !line.trim().is_empty() {
            flow.push(line.trim().to_string());
        } else if line.trim_start().starts_with("curl ") {
            curls.push(line.trim().to_string());
        }
    }
    assert_eq!(curls.len(), 8, "{curls:#?}");
    assert_eq!(flow.len(), 4, "{flow:#?}");

    for curl in &curls {
        let output = Command::new("sh").arg("-c").arg(curl).output().unwrap();
        let body: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{curl}: {}", String::from_utf8_lossy(&output.stdout)));
        assert!(body.get("error").is_none(), "{curl}: {body}");
    }

    // The user-authorisation block runs as one script, as a developer would paste it.
    let output = Command::new("sh")
        .arg("-ec")
        .arg(flow.join("\n"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("{stdout}"));
    assert_eq!(last["source"], "user_grant", "{stdout}");

    child.signal("INT");
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn config_check_probe_reports_a_refused_account_without_its_secret() {
    let zoom = ztv::emulator::Emulator::start().await.unwrap();
    zoom.add_account(ztv::emulator::EmulatorAccount {
        account_id: "acc".into(),
        client_id: "cid".into(),
        client_secret: "the-real-secret".into(),
    });
    let wrong = "a-wrong-secret-never-printed";
    let config = ConfigFile::standard(&format!(
        "[zoom]\noauth_url = \"{}\"\napi_url = \"{}\"\n\
         [accounts.prod.s2s]\naccount_id = \"acc\"\nclient_id = \"cid\"\nclient_secret = \"{wrong}\"\n",
        zoom.base_url(),
        zoom.api_url()
    ));

    let output = tokio::task::spawn_blocking(move || config.run(&["config", "check", "--probe"]))
        .await
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("accounts.prod.s2s: FAILED"), "{stdout}");
    assert!(stdout.contains("invalid_client"), "{stdout}");
    assert!(!stdout.contains(wrong) && !stderr.contains(wrong));
}

/// Runs `ztv config check --probe` on the standard config with `extra`: exit code and stdout,
/// which must quote none of `secrets` (nor stderr).
async fn probe(extra: String, secrets: &[&str]) -> (Option<i32>, String) {
    let config = ConfigFile::standard(&extra);
    let output = tokio::task::spawn_blocking(move || config.run(&["config", "check", "--probe"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for secret in secrets {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}{stderr}"
        );
    }
    (output.status.code(), stdout)
}

#[tokio::test]
async fn config_check_probe_checks_every_app_of_every_account() {
    let zoom = start_emulator().await;
    let secrets = [
        S2S_SECRET,
        SDK_SECRET,
        VIDEO_SECRET,
        "the-oauth-secret-of-prod-9a8b",
        "staging-meeting-sdk-secret-31f0",
        GRANTS_KEY,
    ];
    let extra = format!(
        "{zoom_section}\n\
         [accounts.prod.user_oauth]\nclient_id = \"prodOAuthClient01\"\n\
         client_secret = \"{oauth_secret}\"\nredirect_uri = \"https://ztv.example.org/oauth/done\"\n\
         [grants]\nencryption_key = \"{GRANTS_KEY}\"\n\
         [accounts.staging.meeting_sdk]\nclient_id = \"{SDK_KEY}\"\nclient_secret = \"{staging}\"\n\
         [accounts.qa.video_sdk]\nkey = \"qa video key\"\nsecret = \"short\"\n",
        zoom_section = zoom_config(&zoom, ""),
        oauth_secret = secrets[3],
        staging = secrets[4],
    );

    let (code, stdout) = probe(extra, &secrets).await;

    assert_eq!(code, Some(1), "{stdout}");
    let authorize = format!(
        "accounts.prod.user_oauth.authorize_url: ok: users are sent to {}/oauth/authorize?\
         response_type=code&client_id=prodOAuthClient01&redirect_uri=https%3A%2F%2F\
         ztv.example.org%2Foauth%2Fdone&state=…",
        zoom.base_url()
    );
    for line in [
        "accounts.prod.s2s: ok: token valid for ",
        &authorize,
        "accounts.prod.user_oauth.redirect_uri: FAILED: https://ztv.example.org/oauth/done \
         is not ztv's callback",
        "accounts.prod.user_oauth.webhook_secret_token: WARNING: no webhook secret token",
        "accounts.prod.user_oauth: ok: client_id and client_secret shaped as Zoom issues them",
        "accounts.prod.meeting_sdk: WARNING: the same client_id as account `staging`'s \
         Meeting SDK app",
        "accounts.staging.meeting_sdk: WARNING: the same client_id as account `prod`'s \
         Meeting SDK app",
        "accounts.prod.video_sdk: ok",
        "accounts.dev.meeting_sdk: ok",
        "accounts.qa.video_sdk: WARNING: key has a space or line break",
        "1 failed, 4 warning(s)",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
}

#[tokio::test]
async fn config_check_probe_passes_apps_configured_as_zoom_issues_them() {
    let zoom = start_emulator().await;
    let extra = format!(
        "{zoom_section}\n\
         [accounts.prod.user_oauth]\nclient_id = \"{OAUTH_CLIENT}\"\n\
         client_secret = \"{OAUTH_SECRET}\"\n\
         redirect_uri = \"https://ztv.example.org/zoom/v1/oauth/callback\"\n\
         [grants]\nencryption_key = \"{GRANTS_KEY}\"\n\
         [webhooks]\nsecret_token = \"{WEBHOOK_SECRET}\"\n",
        zoom_section = zoom_config(&zoom, ""),
    );

    let (code, stdout) = probe(extra, &[S2S_SECRET, OAUTH_SECRET, WEBHOOK_SECRET]).await;

    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("0 failed, 0 warning(s)"), "{stdout}");
    assert!(
        stdout.contains(
            "accounts.prod.user_oauth.redirect_uri: ok: \
             https://ztv.example.org/zoom/v1/oauth/callback is ztv's callback"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "accounts.prod.user_oauth.webhook_secret_token: ok: webhooks.secret_token verifies"
        ),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_logged_while_serving_a_request_carries_its_method_route_and_id() {
    // The first end user's request fetches the identity provider's keys, and says so.
    let (provider, key) = idp::Idp::start_with_rsa_key().await;
    let config = ConfigFile::standard(&idp::end_users_config(
        &provider,
        "\"meeting-sdk:signature\"",
    ));
    let child = config.serve(&[]);

    let response = reqwest::Client::new()
        .post(format!("{}/v1/meeting-sdk/signature", child.base()))
        .bearer_auth(provider.token(&key, ALICE_EMAIL))
        .header("x-request-id", "a-line-inside")
        .json(&json!({"meetingNumber": "123456789", "role": 0}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    child.wait_for("fetched the identity provider's keys").await;
    let line: Value = child
        .stdout()
        .iter()
        .find(|line| line.contains("fetched the identity provider's keys"))
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .unwrap();
    assert_eq!(
        line["span"],
        json!({
            "method": "POST",
            "route": "/v1/meeting-sdk/signature",
            "request_id": "a-line-inside",
            "name": "request",
        }),
        "{line}"
    );
    assert_eq!(line["level"], "INFO");
}
