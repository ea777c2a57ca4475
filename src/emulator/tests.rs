//! The emulator against its own HTTP API: every endpoint, error and counter Zoom-like.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{
    Emulator, EmulatorAccount, EmulatorOAuthApp, Endpoint, Fault, parse_user_spec, rfc3339_millis,
    unix_now,
};

const ACCOUNT: &str = "acct-1";
const CLIENT: &str = "client-1";
const SECRET: &str = "secret-1";
const OTHER_ACCOUNT: &str = "acct-2";
const OTHER_CLIENT: &str = "client-2";
const OTHER_SECRET: &str = "secret-2";

/// An emulator with two accounts: `acct-1` (users `u1` = me, `u2`) and `acct-2` (`v1`).
async fn emulator() -> Emulator {
    let emu = Emulator::start().await.expect("the emulator starts");
    emu.add_account(EmulatorAccount {
        account_id: ACCOUNT.into(),
        client_id: CLIENT.into(),
        client_secret: SECRET.into(),
    });
    emu.add_account(EmulatorAccount {
        account_id: OTHER_ACCOUNT.into(),
        client_id: OTHER_CLIENT.into(),
        client_secret: OTHER_SECRET.into(),
    });
    emu.add_user(ACCOUNT, "u1", "first@example.com");
    emu.add_user(ACCOUNT, "u2", "Second.User@Example.com");
    emu.add_user(OTHER_ACCOUNT, "v1", "other@example.org");
    emu
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client builds")
}

fn token_url(emu: &Emulator, account_id: &str) -> String {
    format!(
        "{}/oauth/token?grant_type=account_credentials&account_id={account_id}",
        emu.base_url()
    )
}

async fn request_token(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    http.post(url)
        .basic_auth(id, Some(secret))
        .send()
        .await
        .expect("the emulator answers")
}

/// Status, content type (asserted JSON) and body.
async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/json", "status {status}");
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

async fn access_token(emu: &Emulator, http: &reqwest::Client) -> String {
    let response = request_token(http, &token_url(emu, ACCOUNT), CLIENT, SECRET).await;
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("an access token")
        .to_string()
}

async fn user_token(
    emu: &Emulator,
    http: &reqwest::Client,
    token: &str,
    user: &str,
    query: &str,
) -> (u16, Value) {
    let response = http
        .get(format!("{}/users/{user}/token?{query}", emu.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the emulator answers");
    read(response).await
}

fn jwt_part(token: &str, index: usize) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[index])
        .expect("base64url without padding");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn issues_access_tokens() {
    let emu = emulator().await;
    let http = http();
    assert_eq!(emu.api_url(), format!("{}/v2", emu.base_url()));
    assert!(emu.base_url().starts_with("http://127.0.0.1:"));

    let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["scope"], "user:read:token:admin user:read:zak:admin");
    assert_eq!(body["api_url"], emu.base_url().as_str());
    let token = body["access_token"].as_str().expect("a token");
    assert_eq!(jwt_part(token, 0)["alg"], "HS512");
    let payload = jwt_part(token, 1);
    assert_eq!(payload["aid"], ACCOUNT);
    let exp = payload["exp"].as_i64().expect("integer exp");
    assert!((exp - unix_now() - 3599).abs() <= 2);

    // Every issue is a different token.
    let again = access_token(&emu, &http).await;
    assert_ne!(again, token);

    // The parameters may also come as a form body.
    let response = http
        .post(format!("{}/oauth/token", emu.base_url()))
        .basic_auth(CLIENT, Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=account_credentials&account_id={ACCOUNT}"
        ))
        .send()
        .await
        .expect("an answer");
    assert_eq!(read(response).await.0, 200);

    emu.set_token_lifetime(120);
    let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
    assert_eq!(read(response).await.1["expires_in"], 120);
}

#[tokio::test]
async fn token_endpoint_refusals_have_zoom_shapes() {
    let emu = emulator().await;
    let http = http();
    let url = token_url(&emu, ACCOUNT);
    let invalid_client = json!({
        "reason": "Invalid client_id or client_secret",
        "error": "invalid_client",
    });

    let no_auth = http.post(&url).send().await.expect("an answer");
    assert_eq!(read(no_auth).await, (400, invalid_client.clone()));
    for header in [
        "Bearer abc",
        "Basic !!!not-base64!!!",
        &format!("Basic {}", STANDARD.encode("no-colon")),
    ] {
        let response = http
            .post(&url)
            .header("authorization", header)
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            read(response).await,
            (400, invalid_client.clone()),
            "{header}"
        );
    }
    let unknown = request_token(&http, &url, "nobody", SECRET).await;
    assert_eq!(read(unknown).await, (400, invalid_client.clone()));
    let wrong_secret = request_token(&http, &url, CLIENT, "wrong").await;
    assert_eq!(read(wrong_secret).await, (400, invalid_client.clone()));
    let others_secret = request_token(&http, &url, CLIENT, OTHER_SECRET).await;
    assert_eq!(read(others_secret).await, (400, invalid_client));

    let unsupported = json!({
        "reason": "unsupported grant type",
        "error": "unsupported_grant_type",
    });
    for query in [
        format!("grant_type=client_credentials&account_id={ACCOUNT}"),
        format!("account_id={ACCOUNT}"),
    ] {
        let url = format!("{}/oauth/token?{query}", emu.base_url());
        let response = request_token(&http, &url, CLIENT, SECRET).await;
        assert_eq!(read(response).await, (400, unsupported.clone()), "{query}");
    }

    let invalid_request = json!({
        "reason": "Invalid request : Bad Request",
        "error": "invalid_request",
    });
    let url = format!(
        "{}/oauth/token?grant_type=account_credentials",
        emu.base_url()
    );
    let missing = request_token(&http, &url, CLIENT, SECRET).await;
    assert_eq!(read(missing).await, (400, invalid_request.clone()));
    let foreign = request_token(&http, &token_url(&emu, OTHER_ACCOUNT), CLIENT, SECRET).await;
    assert_eq!(read(foreign).await, (400, invalid_request));

    // Every call is counted, and by the account it named.
    assert_eq!(emu.calls(Endpoint::Token), 11);
    assert_eq!(emu.token_requests_for(ACCOUNT), 9);
    assert_eq!(emu.token_requests_for(OTHER_ACCOUNT), 1);
    assert_eq!(emu.calls(Endpoint::Zak), 0);
}

#[tokio::test]
async fn issues_zaks_for_users_by_id_email_and_me() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;

    for (user, uid) in [
        ("u2", "u2"),
        ("second.user@example.com", "u2"),
        ("SECOND.USER@EXAMPLE.COM", "u2"),
        ("me", "u1"),
    ] {
        let (status, body) = user_token(&emu, &http, &token, user, "type=zak").await;
        assert_eq!(status, 200, "{user}: {body}");
        let zak = body["token"].as_str().expect("a token");
        assert_eq!(jwt_part(zak, 0)["alg"], "HS256");
        let payload = jwt_part(zak, 1);
        assert_eq!(payload["uid"], uid);
        assert_eq!(payload["type"], "zak");
        let exp = payload["exp"].as_i64().expect("integer exp");
        assert!((exp - unix_now() - 7200).abs() <= 2, "{exp}");
    }
    assert_eq!(emu.calls(Endpoint::Zak), 4);
    assert_eq!(emu.calls(Endpoint::Obf), 0);
}

#[tokio::test]
async fn issues_obf_tokens_with_a_meeting_id() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;

    let (status, body) = user_token(
        &emu,
        &http,
        &token,
        "u1",
        "type=onbehalf&meeting_id=123456789",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let payload = jwt_part(body["token"].as_str().expect("a token"), 1);
    assert_eq!(payload["uid"], "u1");
    assert_eq!(payload["type"], "onbehalf");
    let exp = payload["exp"].as_i64().expect("integer exp");
    assert!(
        (exp - unix_now() - super::OBF_LIFETIME_SECONDS).abs() <= 2,
        "{exp}"
    );

    let required = json!({
        "code": 300,
        "message": "The meeting_id is required for onbehalf token.",
    });
    for query in ["type=onbehalf", "type=onbehalf&meeting_id="] {
        let answer = user_token(&emu, &http, &token, "u1", query).await;
        assert_eq!(answer, (400, required.clone()), "{query}");
    }
    let invalid_type = json!({ "code": 300, "message": "Invalid type." });
    for query in ["", "type=token", "type=ZAK"] {
        let answer = user_token(&emu, &http, &token, "u1", query).await;
        assert_eq!(answer, (400, invalid_type.clone()), "{query}");
    }
    // A bad type without a valid token is still a 401.
    let answer = user_token(&emu, &http, "nope", "u1", "type=token").await;
    assert_eq!(answer.0, 401);
    assert_eq!(emu.calls(Endpoint::Obf), 3);
    assert_eq!(emu.calls(Endpoint::Zak), 0);
}

#[tokio::test]
async fn refuses_missing_unknown_revoked_and_expired_access_tokens() {
    let emu = emulator().await;
    let http = http();
    let invalid = json!({ "code": 124, "message": "Invalid access token." });

    let response = http
        .get(format!("{}/users/me/token?type=zak", emu.api_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(read(response).await, (401, invalid.clone()));
    let answer = user_token(&emu, &http, "a.b.c", "me", "type=zak").await;
    assert_eq!(answer, (401, invalid.clone()));

    let first = access_token(&emu, &http).await;
    let second = access_token(&emu, &http).await;
    assert_eq!(
        user_token(&emu, &http, &first, "me", "type=zak").await.0,
        200
    );
    emu.revoke_all_tokens();
    for token in [&first, &second] {
        let answer = user_token(&emu, &http, token, "me", "type=zak").await;
        assert_eq!(answer, (401, invalid.clone()));
    }
    // A token issued after the revocation works.
    let fresh = access_token(&emu, &http).await;
    assert_eq!(
        user_token(&emu, &http, &fresh, "me", "type=zak").await.0,
        200
    );

    emu.set_token_lifetime(1);
    let short = access_token(&emu, &http).await;
    assert_eq!(
        user_token(&emu, &http, &short, "me", "type=zak").await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answer = user_token(&emu, &http, &short, "me", "type=onbehalf&meeting_id=1").await;
    assert_eq!(answer, (401, invalid));
    // Tokens issued before the lifetime changed keep theirs.
    assert_eq!(
        user_token(&emu, &http, &fresh, "me", "type=zak").await.0,
        200
    );
}

#[tokio::test]
async fn revokes_the_tokens_of_one_account() {
    let emu = emulator().await;
    let http = http();
    let mine = access_token(&emu, &http).await;
    let response = request_token(
        &http,
        &token_url(&emu, OTHER_ACCOUNT),
        OTHER_CLIENT,
        OTHER_SECRET,
    )
    .await;
    let theirs = read(response).await.1["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    emu.revoke_tokens_of(ACCOUNT);
    assert_eq!(
        user_token(&emu, &http, &mine, "me", "type=zak").await.0,
        401
    );
    assert_eq!(
        user_token(&emu, &http, &theirs, "me", "type=zak").await.0,
        200
    );
}

#[tokio::test]
async fn users_outside_the_tokens_account_do_not_exist() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;

    for user in ["nobody", "v1", "other@example.org"] {
        let answer = user_token(&emu, &http, &token, user, "type=zak").await;
        let expected = json!({
            "code": 1001,
            "message": format!("User does not exist: {user}."),
        });
        assert_eq!(answer, (404, expected), "{user}");
    }
    // An account without users has no `me`.
    emu.add_account(EmulatorAccount {
        account_id: "empty".into(),
        client_id: "client-empty".into(),
        client_secret: "s".into(),
    });
    let response = request_token(&http, &token_url(&emu, "empty"), "client-empty", "s").await;
    let empty = read(response).await.1["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    let answer = user_token(&emu, &http, &empty, "me", "type=zak").await;
    assert_eq!(answer.0, 404);
    assert_eq!(answer.1["message"], "User does not exist: me.");

    assert_eq!(emu.users_of(ACCOUNT).len(), 2);
    assert_eq!(emu.users_of(ACCOUNT)[0].user_id, "u1");
    assert!(emu.users_of("empty").is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let emu = emulator().await;
    let http = http();
    let response = http
        .get(format!("{}/v2/meetings/1", emu.base_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        read(response).await,
        (404, json!({ "code": 404, "message": "Not found" }))
    );
    let response = http
        .get(format!("{}/oauth/token", emu.base_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(read(response).await.0, 405);
}

#[tokio::test]
async fn status_faults_answer_in_each_endpoints_shape() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;

    emu.inject(Endpoint::Token, Fault::Status(503), Some(1));
    let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
    assert_eq!(
        read(response).await,
        (
            503,
            json!({ "reason": "Service Unavailable", "error": "server_error" })
        )
    );

    emu.inject(Endpoint::Zak, Fault::Status(500), Some(1));
    let answer = user_token(&emu, &http, &token, "me", "type=zak").await;
    assert_eq!(
        answer,
        (
            500,
            json!({ "code": 500, "message": "Internal Server Error" })
        )
    );

    // A fault of one endpoint leaves the others alone.
    emu.inject(Endpoint::Obf, Fault::Status(502), None);
    assert_eq!(
        user_token(&emu, &http, &token, "me", "type=zak").await.0,
        200
    );
    assert!(access_token(&emu, &http).await.len() > 10);
    let query = "type=onbehalf&meeting_id=9";
    assert_eq!(user_token(&emu, &http, &token, "me", query).await.0, 502);
    assert_eq!(user_token(&emu, &http, &token, "me", query).await.0, 502);
    emu.clear_faults();
    assert_eq!(user_token(&emu, &http, &token, "me", query).await.0, 200);

    // Faulted requests are counted too.
    assert_eq!(emu.calls(Endpoint::Token), 3);
    assert_eq!(emu.calls(Endpoint::Zak), 2);
    assert_eq!(emu.calls(Endpoint::Obf), 3);
}

#[tokio::test]
async fn rate_limit_faults_carry_retry_after() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;
    let body = json!({
        "code": 429,
        "message": "You have reached the maximum per-second rate limit for this API. Try again later.",
    });

    for endpoint in [Endpoint::Zak, Endpoint::Token] {
        emu.inject(
            endpoint,
            Fault::RateLimited {
                retry_after_seconds: 7,
            },
            Some(1),
        );
    }
    let response = http
        .get(format!("{}/users/me/token?type=zak", emu.api_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(read(response).await, (429, body.clone()));

    let response = request_token(&http, &token_url(&emu, ACCOUNT), CLIENT, SECRET).await;
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(read(response).await, (429, body));
}

#[tokio::test]
async fn delay_faults_answer_normally_late() {
    let emu = emulator().await;
    let http = http();
    emu.inject(
        Endpoint::Token,
        Fault::Delay(Duration::from_millis(300)),
        Some(1),
    );
    let started = Instant::now();
    let token = access_token(&emu, &http).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!token.is_empty());

    // Injected for one request: used up, so the next one is answered without a delay.
    let queued = emu
        .shared
        .lock()
        .faults
        .get(&Endpoint::Token)
        .map_or(0, std::collections::VecDeque::len);
    assert_eq!(queued, 0);
    assert!(!access_token(&emu, &http).await.is_empty());
}

#[tokio::test]
async fn hang_faults_never_answer_and_do_not_block_shutdown() {
    let emu = emulator().await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("a client builds");
    emu.inject(Endpoint::Token, Fault::Hang, None);
    let error = quick
        .post(token_url(&emu, ACCOUNT))
        .basic_auth(CLIENT, Some(SECRET))
        .send()
        .await
        .expect_err("a hung request times out");
    assert!(error.is_timeout(), "{error}");

    // A request still held when the emulator stops is released and the server goes away.
    let url = token_url(&emu, ACCOUNT);
    let held = tokio::spawn(async move {
        http()
            .post(url)
            .basic_auth(CLIENT, Some(SECRET))
            .send()
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.calls(Endpoint::Token) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(emu.calls(Endpoint::Token), 2);
    let base_url = emu.base_url();
    // A shutdown that waited on the hung request would never end.
    tokio::time::timeout(Duration::from_secs(30), emu.shutdown())
        .await
        .expect("the shutdown does not wait for a hung request");
    let held = held.await.expect("the task completes");
    if let Ok(response) = held {
        assert_eq!(response.status().as_u16(), 503);
    }
    let after = http().post(format!("{base_url}/oauth/token")).send().await;
    assert!(after.is_err(), "the port is closed after shutdown");
}

#[tokio::test]
async fn dropping_the_emulator_stops_it() {
    let emu = emulator().await;
    emu.inject(Endpoint::Token, Fault::Hang, None);
    let url = token_url(&emu, ACCOUNT);
    let held = tokio::spawn(async move {
        http()
            .post(url)
            .basic_auth(CLIENT, Some(SECRET))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base_url = emu.base_url();
    drop(emu);
    tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .expect("the held request is released")
        .expect("the task completes")
        .ok();
    let mut closed = false;
    for _ in 0..20 {
        if http().get(&base_url).send().await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "the port is closed after drop");
}

#[tokio::test]
async fn faults_are_used_up_in_order() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;
    emu.inject(Endpoint::Zak, Fault::Status(500), Some(2));
    emu.inject(Endpoint::Zak, Fault::Status(0), Some(0));
    emu.inject(
        Endpoint::Zak,
        Fault::RateLimited {
            retry_after_seconds: 1,
        },
        Some(1),
    );
    emu.inject(Endpoint::Zak, Fault::Status(503), Some(1));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(user_token(&emu, &http, &token, "me", "type=zak").await.0);
    }
    assert_eq!(statuses, [500, 500, 429, 503, 200]);

    // An endless fault shadows the ones after it until cleared.
    emu.inject(Endpoint::Zak, Fault::Status(502), None);
    emu.inject(Endpoint::Zak, Fault::Status(504), Some(1));
    for _ in 0..3 {
        assert_eq!(
            user_token(&emu, &http, &token, "me", "type=zak").await.0,
            502
        );
    }
    emu.clear_faults();
    assert_eq!(
        user_token(&emu, &http, &token, "me", "type=zak").await.0,
        200
    );
    assert_eq!(emu.calls(Endpoint::Zak), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_concurrent_calls_exactly() {
    let emu = emulator().await;
    let http = http();
    let token = access_token(&emu, &http).await;
    emu.reset_calls();
    assert_eq!(emu.calls(Endpoint::Token), 0);
    assert_eq!(emu.token_requests_for(ACCOUNT), 0);
    emu.inject(Endpoint::Token, Fault::Status(500), Some(10));

    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = http.clone();
        let token_url = token_url(&emu, ACCOUNT);
        let api = format!("{}/users/me/token", emu.api_url());
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let token_status = http
                .post(token_url)
                .basic_auth(CLIENT, Some(SECRET))
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16();
            let query = if i % 2 == 0 {
                "type=zak".to_string()
            } else {
                format!("type=onbehalf&meeting_id={i}")
            };
            let user_status = http
                .get(format!("{api}?{query}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16();
            (token_status, user_status)
        }));
    }
    let mut token_statuses = Vec::new();
    for task in tasks {
        let (token_status, user_status) = task.await.expect("the task completes");
        token_statuses.push(token_status);
        assert_eq!(user_status, 200);
    }
    assert_eq!(token_statuses.iter().filter(|s| **s == 500).count(), 10);
    assert_eq!(token_statuses.iter().filter(|s| **s == 200).count(), 40);
    assert_eq!(emu.calls(Endpoint::Token), 50);
    assert_eq!(emu.token_requests_for(ACCOUNT), 50);
    assert_eq!(emu.calls(Endpoint::Zak), 25);
    assert_eq!(emu.calls(Endpoint::Obf), 25);
    emu.shutdown().await;
}

/// `GET /_emulator/stats` as (status, body).
async fn stats(emu: &Emulator, http: &reqwest::Client) -> (u16, Value) {
    let response = http
        .get(format!("{}/_emulator/stats", emu.base_url()))
        .send()
        .await
        .expect("an answer");
    read(response).await
}

#[tokio::test]
async fn stats_route_reports_the_call_counts() {
    let emu = emulator().await;
    let http = http();
    let zero = json!({
        "token": 0,
        "zak": 0,
        "obf": 0,
        "tokenRequestsByAccount": {},
        "refusedTokens": 0,
    });
    assert_eq!(stats(&emu, &http).await, (200, zero.clone()));

    let token = access_token(&emu, &http).await;
    access_token(&emu, &http).await;
    // Refused requests count, by the account they named.
    let foreign = request_token(&http, &token_url(&emu, OTHER_ACCOUNT), CLIENT, "wrong").await;
    assert_eq!(foreign.status().as_u16(), 400);
    for _ in 0..3 {
        assert_eq!(
            user_token(&emu, &http, &token, "me", "type=zak").await.0,
            200
        );
    }
    let query = "type=onbehalf&meeting_id=123456789";
    assert_eq!(user_token(&emu, &http, &token, "u2", query).await.0, 200);
    // Neither ZAK nor OBF.
    assert_eq!(
        user_token(&emu, &http, &token, "me", "type=token").await.0,
        400
    );
    // Refused tokens: an unknown one, and an expired one (on a ZAK and a profile call).
    assert_eq!(
        user_token(&emu, &http, "not-a-token", "me", "type=zak")
            .await
            .0,
        401
    );
    emu.set_token_lifetime(1);
    let short = access_token(&emu, &http).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        user_token(&emu, &http, &short, "me", "type=zak").await.0,
        401
    );
    assert_eq!(api_get(&emu, &http, &short, "users/me").await.0, 401);
    assert_eq!(emu.refused_tokens(), 3);

    let expected = json!({
        "token": 4,
        "zak": 5,
        "obf": 1,
        "tokenRequestsByAccount": { ACCOUNT: 3, OTHER_ACCOUNT: 1 },
        "refusedTokens": 3,
    });
    assert_eq!(stats(&emu, &http).await, (200, expected.clone()));
    // The same figures as the in-process API.
    assert_eq!(emu.calls(Endpoint::Token), 4);
    assert_eq!(emu.calls(Endpoint::Zak), 5);
    assert_eq!(emu.calls(Endpoint::Obf), 1);
    assert_eq!(emu.token_requests_for(ACCOUNT), 3);
    assert_eq!(emu.token_requests_for(OTHER_ACCOUNT), 1);

    // The route is not counted, takes no faults and answers only GET.
    for endpoint in [Endpoint::Token, Endpoint::Zak, Endpoint::Obf] {
        emu.inject(endpoint, Fault::Status(503), None);
    }
    assert_eq!(stats(&emu, &http).await, (200, expected.clone()));
    assert_eq!(stats(&emu, &http).await, (200, expected));
    let response = http
        .post(format!("{}/_emulator/stats", emu.base_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(read(response).await.0, 405);
    assert_eq!(emu.calls(Endpoint::Token), 4);

    emu.reset_calls();
    assert_eq!(stats(&emu, &http).await, (200, zero));
    assert_eq!(emu.refused_tokens(), 0);
}

#[test]
fn parses_the_command_line_forms_of_accounts_and_users() {
    let account: EmulatorAccount = "acct:client:sec:ret".parse().expect("an account");
    assert_eq!(
        (
            account.account_id.as_str(),
            account.client_id.as_str(),
            account.client_secret.as_str()
        ),
        ("acct", "client", "sec:ret")
    );
    // The error is always the same words: it never shows the input, which holds a secret.
    for bad in [
        "",
        "acct",
        "acct:client",
        "acct::secret",
        ":client:secret",
        "a:c:",
    ] {
        assert_eq!(
            bad.parse::<EmulatorAccount>().map(|_| ()),
            Err("expected ACCOUNT_ID:CLIENT_ID:SECRET, none of them empty".to_string()),
            "{bad:?}"
        );
    }

    assert_eq!(
        parse_user_spec("u1:one@example.com"),
        Some((None, "u1", "one@example.com"))
    );
    assert_eq!(
        parse_user_spec("acct-2:v1:v@example.org"),
        Some((Some("acct-2"), "v1", "v@example.org"))
    );
    for bad in ["", "u1", "u1:", ":e@x", "a:u1:", ":u1:e@x", "a:b:c:d"] {
        assert_eq!(parse_user_spec(bad), None, "{bad:?}");
    }
}

const APP: &str = "oauth-client";
const APP_SECRET: &str = "oauth-secret";
const REDIRECT: &str = "https://ztv.example.com/v1/oauth/callback";
const OTHER_APP: &str = "oauth-client-2";
const OTHER_APP_SECRET: &str = "oauth-secret-2";

/// [`emulator`] with two user-managed OAuth apps of the same redirect URI.
async fn oauth_emulator() -> Emulator {
    let emu = emulator().await;
    for (client_id, client_secret) in [(APP, APP_SECRET), (OTHER_APP, OTHER_APP_SECRET)] {
        emu.add_oauth_app(EmulatorOAuthApp {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: REDIRECT.into(),
        });
    }
    emu
}

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client builds")
}

/// `GET /oauth/authorize` with this query.
async fn authorize_raw(emu: &Emulator, query: &str) -> reqwest::Response {
    browser()
        .get(format!("{}/oauth/authorize?{query}", emu.base_url()))
        .send()
        .await
        .expect("an answer")
}

/// The query pairs of a 302's `Location`, asserted to be under `REDIRECT`.
fn redirected(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"]
        .to_str()
        .expect("an ASCII location");
    let (base, query) = location.split_once('?').expect("a query");
    assert_eq!(base, REDIRECT);
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// A fresh authorization code of `client_id` for the consenting user.
async fn code_for(emu: &Emulator, client_id: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st")
        .finish();
    let response = authorize_raw(emu, &query).await;
    let pairs = redirected(&response);
    assert_eq!(pairs[0].0, "code", "{pairs:?}");
    assert_eq!(pairs[1], ("state".to_string(), "st".to_string()));
    pairs[0].1.clone()
}

/// `POST /oauth/token` with a form body, authenticated as `client_id`.
async fn grant(
    emu: &Emulator,
    http: &reqwest::Client,
    (client_id, secret): (&str, &str),
    params: &[(&str, &str)],
) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let response = http
        .post(format!("{}/oauth/token", emu.base_url()))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("an answer");
    read(response).await
}

async fn exchange(emu: &Emulator, http: &reqwest::Client, code: &str) -> (u16, Value) {
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    grant(emu, http, (APP, APP_SECRET), &params).await
}

async fn refresh(emu: &Emulator, http: &reqwest::Client, token: &str) -> (u16, Value) {
    let params = [("grant_type", "refresh_token"), ("refresh_token", token)];
    grant(emu, http, (APP, APP_SECRET), &params).await
}

/// The access and refresh tokens of a successful grant.
fn tokens(answer: (u16, Value)) -> (String, String) {
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    let field = |name: &str| body[name].as_str().expect("a token").to_string();
    (field("access_token"), field("refresh_token"))
}

/// `GET {api_url}/{path}` with a Bearer token.
async fn api_get(emu: &Emulator, http: &reqwest::Client, token: &str, path: &str) -> (u16, Value) {
    let response = http
        .get(format!("{}/{path}", emu.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer");
    read(response).await
}

fn invalid_code() -> Value {
    json!({ "reason": "Invalid authorization code", "error": "invalid_grant" })
}

fn invalid_refresh_token() -> Value {
    json!({ "reason": "Invalid Token!", "error": "invalid_grant" })
}

#[tokio::test]
async fn runs_the_authorization_code_flow() {
    let emu = oauth_emulator().await;
    let http = http();

    // The state comes back exactly as given, however it has to be encoded.
    let state = "a b&c=d/é";
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", APP)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", state)
        .finish();
    let response = authorize_raw(&emu, &query).await;
    let pairs = redirected(&response);
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    assert_eq!(pairs[0].0, "code");
    assert_eq!(pairs[1], ("state".to_string(), state.to_string()));
    let code = &pairs[0].1;
    assert!(code.len() >= 32, "{code}");

    let (status, body) = exchange(&emu, &http, code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["scope"], "user:read:zak user:read:token");
    let access = body["access_token"].as_str().expect("a token");
    let refresh_token = body["refresh_token"].as_str().expect("a refresh token");
    assert_ne!(access, refresh_token);
    let payload = jwt_part(access, 1);
    assert_eq!(payload["uid"], "u1");
    assert_eq!(payload["aid"], ACCOUNT);
    let exp = payload["exp"].as_i64().expect("integer exp");
    assert!((exp - unix_now() - 3599).abs() <= 2);

    // The token is bound to the consenting user: by default the first user ever added.
    let me = json!({
        "id": "u1",
        "email": "first@example.com",
        "account_id": ACCOUNT,
        "first_name": "First",
        "last_name": "",
        "type": 1,
    });
    assert_eq!(
        api_get(&emu, &http, access, "users/me").await,
        (200, me.clone())
    );
    assert_eq!(api_get(&emu, &http, access, "users/u1").await, (200, me));
    let (status, body) = api_get(&emu, &http, access, "users/me/zak").await;
    assert_eq!(status, 200, "{body}");
    let zak = jwt_part(body["token"].as_str().expect("a ZAK"), 1);
    assert_eq!(zak["uid"], "u1");
    assert_eq!(zak["type"], "zak");
    let exp = zak["exp"].as_i64().expect("integer exp");
    assert!((exp - unix_now() - 7200).abs() <= 2, "{exp}");
    let query = "type=onbehalf&meeting_id=123456789";
    let (status, body) = user_token(&emu, &http, access, "me", query).await;
    assert_eq!(status, 200, "{body}");
    let obf = jwt_part(body["token"].as_str().expect("an OBF token"), 1);
    assert_eq!(
        (&obf["uid"], &obf["type"]),
        (&json!("u1"), &json!("onbehalf"))
    );
    for user in ["u1", "FIRST@example.com"] {
        assert_eq!(
            user_token(&emu, &http, access, user, "type=zak").await.0,
            200
        );
    }
    // A user token reaches only its own user, even within its account.
    for user in ["u2", "second.user@example.com", "v1"] {
        let expected = json!({ "code": 1001, "message": format!("User does not exist: {user}.") });
        assert_eq!(
            user_token(&emu, &http, access, user, "type=zak").await,
            (404, expected.clone())
        );
        assert_eq!(
            api_get(&emu, &http, access, &format!("users/{user}")).await,
            (404, expected)
        );
    }

    // A user of another account, with a shorter token lifetime.
    emu.set_consenting_user("other@example.org");
    emu.set_user_token_lifetime(60);
    let (status, body) = exchange(&emu, &http, &code_for(&emu, APP).await).await;
    assert_eq!((status, &body["expires_in"]), (200, &json!(60)), "{body}");
    let theirs = body["access_token"].as_str().expect("a token");
    let (status, body) = api_get(&emu, &http, theirs, "users/me").await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["id"], &body["account_id"]),
        (&json!("v1"), &json!(OTHER_ACCOUNT))
    );
    assert_eq!(body["first_name"], "Other");
    let (status, body) = api_get(&emu, &http, theirs, "users/me/zak").await;
    assert_eq!(status, 200);
    assert_eq!(
        jwt_part(body["token"].as_str().expect("a ZAK"), 1)["uid"],
        "v1"
    );

    // S2S tokens keep working, `me` being the account's first user; the profile route
    // reaches every user of the account.
    let s2s = access_token(&emu, &http).await;
    let (status, body) = api_get(&emu, &http, &s2s, "users/me").await;
    assert_eq!((status, &body["id"]), (200, &json!("u1")));
    let (status, body) = api_get(&emu, &http, &s2s, "users/second.user@example.com").await;
    assert_eq!((status, &body["id"]), (200, &json!("u2")));
    assert_eq!(
        (&body["first_name"], &body["last_name"]),
        (&json!("Second"), &json!("User"))
    );
    assert_eq!(api_get(&emu, &http, &s2s, "users/v1").await.0, 404);
    let (status, body) = api_get(&emu, &http, &s2s, "users/me/zak").await;
    assert_eq!(status, 200);
    assert_eq!(
        jwt_part(body["token"].as_str().expect("a ZAK"), 1)["uid"],
        "u1"
    );
    assert_eq!(user_token(&emu, &http, &s2s, "u2", "type=zak").await.0, 200);

    assert_eq!(emu.calls(Endpoint::Code), 2);
    assert_eq!(emu.calls(Endpoint::Refresh), 0);
    assert_eq!(emu.calls(Endpoint::Token), 3);
    assert_eq!(emu.calls(Endpoint::User), 9);
    assert_eq!(emu.calls(Endpoint::Zak), 9);
    assert_eq!(emu.calls(Endpoint::Obf), 1);
}

#[tokio::test]
async fn authorize_refuses_unknown_apps_and_foreign_redirect_uris() {
    let emu = oauth_emulator().await;
    let invalid_redirect = json!({ "reason": "Invalid redirect uri", "error": "invalid_request" });
    let with = |client_id: &str, redirect_uri: Option<&str>| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id);
        if let Some(uri) = redirect_uri {
            query.append_pair("redirect_uri", uri);
        }
        query.append_pair("state", "s").finish()
    };
    for query in [
        with(APP, Some("https://evil.example.com/cb")),
        with(APP, Some(&format!("{REDIRECT}/"))),
        with(APP, None),
    ] {
        let answer = read(authorize_raw(&emu, &query).await).await;
        assert_eq!(answer, (400, invalid_redirect.clone()), "{query}");
    }
    let unknown = json!({ "reason": "Invalid client_id", "error": "invalid_client" });
    for query in [with("nobody", Some(REDIRECT)), with(CLIENT, Some(REDIRECT))] {
        assert_eq!(
            read(authorize_raw(&emu, &query).await).await,
            (400, unknown.clone())
        );
    }
    let query = format!("response_type=code&redirect_uri={REDIRECT}");
    assert_eq!(
        read(authorize_raw(&emu, &query).await).await,
        (400, unknown)
    );

    // Errors the app may hear go back to it, with the state.
    let query = format!("response_type=token&client_id={APP}&redirect_uri={REDIRECT}&state=s");
    let pairs = redirected(&authorize_raw(&emu, &query).await);
    assert_eq!(
        pairs,
        [
            ("error".into(), "unsupported_response_type".into()),
            ("state".into(), "s".into())
        ]
    );
    emu.set_consenting_user("nobody");
    let query = format!("response_type=code&client_id={APP}&redirect_uri={REDIRECT}");
    let pairs = redirected(&authorize_raw(&emu, &query).await);
    assert_eq!(pairs, [("error".to_string(), "access_denied".to_string())]);

    // Without a state, none comes back.
    emu.set_consenting_user("u2");
    let pairs = redirected(&authorize_raw(&emu, &query).await);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0, "code");
    let http = http();
    let (access, _) = tokens(exchange(&emu, &http, &pairs[0].1).await);
    let (status, body) = api_get(&emu, &http, &access, "users/me").await;
    assert_eq!((status, &body["id"]), (200, &json!("u2")));

    // Only GET.
    let response = browser()
        .post(format!("{}/oauth/authorize?{query}", emu.base_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(read(response).await.0, 405);
}

#[tokio::test]
async fn authorization_codes_are_single_use_and_bound_to_app_and_redirect_uri() {
    let emu = oauth_emulator().await;
    let http = http();
    let code = code_for(&emu, APP).await;

    // Refused exchanges leave the code as it was.
    let wrong_redirect = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://evil.example.com/cb"),
    ];
    let answer = grant(&emu, &http, (APP, APP_SECRET), &wrong_redirect).await;
    assert_eq!(answer, (400, invalid_code()));
    let no_redirect = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ];
    let answer = grant(&emu, &http, (APP, APP_SECRET), &no_redirect).await;
    assert_eq!(answer, (400, invalid_code()));
    let right = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let answer = grant(&emu, &http, (OTHER_APP, OTHER_APP_SECRET), &right).await;
    assert_eq!(answer, (400, invalid_code()), "another app's code");
    let invalid_client = json!({
        "reason": "Invalid client_id or client_secret",
        "error": "invalid_client",
    });
    let answer = grant(&emu, &http, (APP, "wrong"), &right).await;
    assert_eq!(answer, (400, invalid_client));
    let unsupported =
        json!({ "reason": "unsupported grant type", "error": "unsupported_grant_type" });
    let answer = grant(&emu, &http, (CLIENT, SECRET), &right).await;
    assert_eq!(
        answer,
        (400, unsupported.clone()),
        "an S2S app has no codes"
    );

    // The parameters may also come in the query string.
    let url = url::Url::parse_with_params(&format!("{}/oauth/token", emu.base_url()), right)
        .expect("a URL");
    let response = http
        .post(url.as_str())
        .basic_auth(APP, Some(APP_SECRET))
        .send()
        .await
        .expect("an answer");
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");

    // Used once, never again.
    assert_eq!(exchange(&emu, &http, &code).await, (400, invalid_code()));
    assert_eq!(
        exchange(&emu, &http, "made-up").await,
        (400, invalid_code())
    );
    let missing = [
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
    ];
    let answer = grant(&emu, &http, (APP, APP_SECRET), &missing).await;
    assert_eq!(answer, (400, invalid_code()));
    // An OAuth app cannot use the S2S grant.
    let s2s = [
        ("grant_type", "account_credentials"),
        ("account_id", ACCOUNT),
    ];
    let answer = grant(&emu, &http, (APP, APP_SECRET), &s2s).await;
    assert_eq!(answer, (400, unsupported));

    // Each code of an app works once, whichever app.
    let theirs = code_for(&emu, OTHER_APP).await;
    let params = [
        ("grant_type", "authorization_code"),
        ("code", theirs.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    assert_eq!(
        grant(&emu, &http, (OTHER_APP, OTHER_APP_SECRET), &params)
            .await
            .0,
        200
    );
    assert_eq!(exchange(&emu, &http, &theirs).await, (400, invalid_code()));

    assert_eq!(emu.calls(Endpoint::Code), 11);
    assert_eq!(emu.calls(Endpoint::Token), 12);
    assert_eq!(emu.calls(Endpoint::Refresh), 0);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_are_single_use() {
    let emu = oauth_emulator().await;
    let http = http();
    let (first_access, first_refresh) =
        tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);

    let (status, body) = refresh(&emu, &http, &first_refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["scope"], "user:read:zak user:read:token");
    let (second_access, second_refresh) = tokens((status, body));
    assert_ne!(second_access, first_access);
    assert_ne!(second_refresh, first_refresh);
    let (status, me) = api_get(&emu, &http, &second_access, "users/me").await;
    assert_eq!((status, &me["id"]), (200, &json!("u1")));
    // The access token issued before a refresh lives out its life.
    assert_eq!(api_get(&emu, &http, &first_access, "users/me").await.0, 200);

    // The used refresh token is gone; the new one works once.
    assert_eq!(
        refresh(&emu, &http, &first_refresh).await,
        (400, invalid_refresh_token())
    );
    let other_app = [
        ("grant_type", "refresh_token"),
        ("refresh_token", second_refresh.as_str()),
    ];
    let answer = grant(&emu, &http, (OTHER_APP, OTHER_APP_SECRET), &other_app).await;
    assert_eq!(
        answer,
        (400, invalid_refresh_token()),
        "another app's refresh token"
    );
    let (_, third_refresh) = tokens(refresh(&emu, &http, &second_refresh).await);
    assert_eq!(
        refresh(&emu, &http, &second_refresh).await,
        (400, invalid_refresh_token())
    );
    let missing = [("grant_type", "refresh_token")];
    let answer = grant(&emu, &http, (APP, APP_SECRET), &missing).await;
    assert_eq!(answer, (400, invalid_refresh_token()));

    // In the query string too.
    let url = format!(
        "{}/oauth/token?grant_type=refresh_token&refresh_token={third_refresh}",
        emu.base_url()
    );
    let answer = read(request_token(&http, &url, APP, APP_SECRET).await).await;
    assert_eq!(answer.0, 200, "{}", answer.1);

    assert_eq!(emu.calls(Endpoint::Refresh), 7);
    assert_eq!(emu.calls(Endpoint::Code), 1);
    assert_eq!(emu.calls(Endpoint::Token), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let emu = oauth_emulator().await;
    let http = http();
    let (_, refresh_token) = tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
    emu.reset_calls();

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = http.clone();
        let url = format!("{}/oauth/token", emu.base_url());
        let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .basic_auth(APP, Some(APP_SECRET))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("an answer");
            read(response).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, body) = task.await.expect("the task completes");
        match status {
            200 => winners.push(body),
            _ => assert_eq!((status, body), (400, invalid_refresh_token())),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(emu.calls(Endpoint::Refresh), 50);
    assert_eq!(emu.calls(Endpoint::Token), 50);
    assert_eq!(emu.calls(Endpoint::Code), 0);

    // The winner's refresh token carries on.
    let next = winners[0]["refresh_token"]
        .as_str()
        .expect("a refresh token");
    assert_eq!(refresh(&emu, &http, next).await.0, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn user_tokens_are_revoked_expire_and_end_with_deauthorization() {
    let emu = oauth_emulator().await;
    let http = http();
    let invalid = json!({ "code": 124, "message": "Invalid access token." });
    let (access, refresh_token) = tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
    let s2s = access_token(&emu, &http).await;

    // Revoking all access tokens spares the refresh tokens.
    emu.revoke_all_tokens();
    for path in ["users/me", "users/me/zak", "users/me/token?type=zak"] {
        assert_eq!(
            api_get(&emu, &http, &access, path).await,
            (401, invalid.clone()),
            "{path}"
        );
        assert_eq!(
            api_get(&emu, &http, &s2s, path).await,
            (401, invalid.clone()),
            "{path}"
        );
    }
    let (access, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
    assert_eq!(api_get(&emu, &http, &access, "users/me/zak").await.0, 200);
    // So does revoking an account's.
    emu.revoke_tokens_of(ACCOUNT);
    assert_eq!(
        api_get(&emu, &http, &access, "users/me").await,
        (401, invalid.clone())
    );
    let (_, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);

    emu.set_user_token_lifetime(1);
    let (short, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
    assert_eq!(api_get(&emu, &http, &short, "users/me").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        api_get(&emu, &http, &short, "users/me").await,
        (401, invalid.clone())
    );
    let response = http
        .get(format!("{}/users/me", emu.api_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(read(response).await, (401, invalid.clone()));

    // Deauthorization ends the user's grant of that app, and only that one.
    emu.set_user_token_lifetime(3599);
    let (access, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
    let unused = code_for(&emu, APP).await;
    let others_code = code_for(&emu, OTHER_APP).await;
    let params = [
        ("grant_type", "authorization_code"),
        ("code", others_code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let other_app = (OTHER_APP, OTHER_APP_SECRET);
    let (other_access, _) = tokens(grant(&emu, &http, other_app, &params).await);
    emu.deauthorize("u1", APP);
    assert_eq!(
        api_get(&emu, &http, &access, "users/me").await,
        (401, invalid)
    );
    assert_eq!(
        refresh(&emu, &http, &refresh_token).await,
        (400, invalid_refresh_token())
    );
    assert_eq!(exchange(&emu, &http, &unused).await, (400, invalid_code()));
    assert_eq!(api_get(&emu, &http, &other_access, "users/me").await.0, 200);
    // Authorising again works.
    tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
}

#[tokio::test]
async fn grant_faults_apply_to_their_grant_only() {
    let emu = oauth_emulator().await;
    let http = http();
    let (access, refresh_token) = tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);

    emu.inject(Endpoint::Refresh, Fault::Status(503), Some(1));
    let unavailable = json!({ "reason": "Service Unavailable", "error": "server_error" });
    assert_eq!(
        refresh(&emu, &http, &refresh_token).await,
        (503, unavailable)
    );
    // Other grants are untouched, and the faulted refresh did not use the token up.
    assert!(!access_token(&emu, &http).await.is_empty());
    tokens(exchange(&emu, &http, &code_for(&emu, APP).await).await);
    let (_, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);

    emu.inject(Endpoint::Code, Fault::Status(500), Some(1));
    assert_eq!(
        exchange(&emu, &http, &code_for(&emu, APP).await).await.0,
        500
    );
    // A fault of the whole endpoint reaches every grant.
    emu.inject(
        Endpoint::Token,
        Fault::RateLimited {
            retry_after_seconds: 3,
        },
        Some(1),
    );
    assert_eq!(refresh(&emu, &http, &refresh_token).await.0, 429);
    let (_, refresh_token) = tokens(refresh(&emu, &http, &refresh_token).await);
    // The grant's fault first; the endpoint's waits for the next request.
    emu.inject(Endpoint::Token, Fault::Status(502), Some(1));
    emu.inject(Endpoint::Refresh, Fault::Status(504), Some(1));
    assert_eq!(refresh(&emu, &http, &refresh_token).await.0, 504);
    assert_eq!(refresh(&emu, &http, &refresh_token).await.0, 502);
    tokens(refresh(&emu, &http, &refresh_token).await);

    emu.inject(Endpoint::User, Fault::Status(500), Some(1));
    emu.inject(Endpoint::Zak, Fault::Status(503), Some(1));
    assert_eq!(api_get(&emu, &http, &access, "users/me").await.0, 500);
    assert_eq!(api_get(&emu, &http, &access, "users/me").await.0, 200);
    assert_eq!(api_get(&emu, &http, &access, "users/me/zak").await.0, 503);
    assert_eq!(api_get(&emu, &http, &access, "users/me/zak").await.0, 200);

    assert_eq!(emu.calls(Endpoint::Refresh), 7);
    assert_eq!(emu.calls(Endpoint::Code), 3);
    assert_eq!(emu.calls(Endpoint::Token), 11);
    assert_eq!(emu.calls(Endpoint::User), 2);
    assert_eq!(emu.calls(Endpoint::Zak), 2);
    emu.reset_calls();
    for endpoint in [Endpoint::Refresh, Endpoint::Code, Endpoint::User] {
        assert_eq!(emu.calls(endpoint), 0);
    }
}

#[tokio::test]
async fn builds_signed_deauthorization_webhooks() {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    let emu = oauth_emulator().await;
    let timestamp = unix_now();
    let (body, headers) = emu.deauthorization_webhook("whsec", "v1", APP, timestamp);

    let event: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(event["event"], "app_deauthorized");
    assert_eq!(event["event_ts"], timestamp * 1000);
    let payload = &event["payload"];
    assert_eq!(payload["account_id"], OTHER_ACCOUNT);
    assert_eq!(payload["user_id"], "v1");
    assert_eq!(payload["client_id"], APP);
    assert_eq!(
        payload["deauthorization_time"],
        rfc3339_millis(timestamp * 1000)
    );
    assert_eq!(
        payload["signature"].as_str().expect("a signature").len(),
        64
    );

    let header = |name: &str| {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(values.len(), 1, "{name}: {headers:?}");
        values[0].to_string()
    };
    assert_eq!(header("x-zm-request-timestamp"), timestamp.to_string());
    assert_eq!(header("content-type"), "application/json");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").expect("any key length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let signature = header("x-zm-signature");
    let hex = signature.strip_prefix("v0=").expect("the v0= prefix");
    mac.verify_slice(&hex::decode(hex).expect("hex"))
        .expect("the signature verifies");
    // Under another secret it does not.
    let mut other = Hmac::<Sha256>::new_from_slice(b"other").expect("any key length");
    other.update(format!("v0:{timestamp}:{body}").as_bytes());
    assert!(other.verify_slice(&hex::decode(hex).expect("hex")).is_err());

    // A stale one is signed for its own timestamp.
    let stale = timestamp - 600;
    let (body, headers) = emu.deauthorization_webhook("whsec", "u2", APP, stale);
    let event: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(event["payload"]["account_id"], ACCOUNT);
    assert!(headers.contains(&("x-zm-request-timestamp".to_string(), stale.to_string())));
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").expect("any key length");
    mac.update(format!("v0:{stale}:{body}").as_bytes());
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    assert!(headers.contains(&("x-zm-signature".to_string(), expected)));
}

#[test]
fn formats_rfc3339_times() {
    assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        rfc3339_millis(1_560_779_548_632),
        "2019-06-17T13:52:28.632Z"
    );
    assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(
        rfc3339_millis(4_102_444_799_999),
        "2099-12-31T23:59:59.999Z"
    );
    assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
}

#[test]
fn oauth_app_debug_hides_the_secret() {
    let app = EmulatorOAuthApp {
        client_id: "c".into(),
        client_secret: "very-secret".into(),
        redirect_uri: REDIRECT.into(),
    };
    assert!(!format!("{app:?}").contains("very-secret"));
}

#[test]
fn account_debug_hides_the_secret() {
    let account = EmulatorAccount {
        account_id: "a".into(),
        client_id: "c".into(),
        client_secret: "very-secret".into(),
    };
    assert!(!format!("{account:?}").contains("very-secret"));
}
