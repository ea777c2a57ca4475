//! The S2S token cache and the routes that need Zoom, against the emulator over HTTP:
//! single flight, refresh ahead of expiry, recovery from a revoked token, and faults.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ztv::emulator::{Endpoint, Fault};
use ztv::scope::Scope;

use crate::helpers::*;

fn all_upstream() -> Vec<Scope> {
    vec![
        Scope::S2sToken,
        Scope::ZakRead,
        Scope::ObfRead,
        Scope::MeetingSdkSignature,
        Scope::MeetingSdkHost,
    ]
}

/// An app for a hundred callers with one key at once, with patient Zoom timeouts. Exactly the
/// default burst at once would leave no room for the cores' clocks disagreeing by a
/// microsecond, so the rate limits (tested elsewhere) are out of the way.
async fn hundred_caller_app() -> ZoomApp {
    TestApp::builder()
        .zoom()
        .zoom_keys(PATIENT)
        .config(NO_RATE_LIMIT)
        .build()
        .await
}

#[tokio::test]
async fn a_hundred_concurrent_callers_on_a_cold_cache_cause_one_token_request() {
    let app = hundred_caller_app().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    let calls = (0..100).map(|_| {
        let app = &app;
        let key = key.clone();
        async move { app.s2s_token(&key).await }
    });
    let responses = futures_util::future::join_all(calls).await;

    let mut tokens = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        tokens.insert(body["accessToken"].as_str().unwrap().to_string());
        assert_eq!(body["tokenType"], "bearer");
        assert!(body["scope"].as_str().unwrap().contains("zak"));
        humantime::parse_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    }
    assert_eq!(tokens.len(), 1, "everyone got the same token");
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);
}

#[tokio::test]
async fn a_hundred_concurrent_zak_callers_cause_one_token_and_one_zak_request() {
    let app = hundred_caller_app().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    let calls = (0..100).map(|_| {
        let app = &app;
        let key = key.clone();
        async move { app.zak(&key, ALICE_ID).await }
    });
    let responses = futures_util::future::join_all(calls).await;

    for response in responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.zoom.calls(Endpoint::Token), 1);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1);
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_ahead_and_every_call_succeeds() {
    // Without reuse every ZAK is a Zoom call: far more than one caller's default budget.
    let app = TestApp::builder()
        .zoom()
        .zoom_keys(NO_REUSE)
        .config(NO_RATE_LIMIT)
        .build()
        .await;
    app.zoom.set_token_lifetime(4);
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(9) {
        let (token, zak) = tokio::join!(app.s2s_token(&key), app.zak(&key, ALICE_ID));
        assert_eq!(token.status(), 200);
        assert_eq!(zak.status(), 200, "a ZAK call failed across a refresh");
        let body: Value = token.json().await.unwrap();
        seen.insert(body["accessToken"].as_str().unwrap().to_string());
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let requests = app.zoom.token_requests_for(S2S_ACCOUNT_ID);
    // A 4 s token is refreshed once half of it is gone: about every 2 s over 9 s.
    assert!(
        seen.len() >= 3,
        "tokens were refreshed: {} distinct",
        seen.len()
    );
    assert!(
        requests <= 7,
        "{requests} token requests for {calls} rounds"
    );
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_fetched_again_exactly_once() {
    let app = TestApp::builder().zoom().zoom_keys(NO_REUSE).build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    assert_eq!(app.zak(&key, ALICE_ID).await.status(), 200);

    app.zoom.revoke_all_tokens();
    let response = app.zak(&key, ALICE_ID).await;

    assert_eq!(response.status(), 200);
    assert_eq!(app.zoom.calls(Endpoint::Token), 2, "one re-fetch");
    assert_eq!(
        app.zoom.calls(Endpoint::Zak),
        3,
        "one refused call, one retry"
    );
}

#[tokio::test]
async fn a_token_refused_even_when_fresh_is_an_upstream_error_not_a_loop() {
    let app = TestApp::builder().zoom().zoom_keys(NO_REUSE).build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(Endpoint::Zak, Fault::Status(401), None);

    let response = app.zak(&key, ALICE_ID).await;

    assert_error(response, 502, "upstream_error", "refused the access token").await;
    assert_eq!(app.zoom.calls(Endpoint::Zak), 2);
    assert_eq!(app.zoom.calls(Endpoint::Token), 2);
}

#[tokio::test]
async fn a_failing_token_endpoint_without_a_cached_token_is_unavailable_after_bounded_retries() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(Endpoint::Token, Fault::Status(500), None);

    let response = app.s2s_token(&key).await;

    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "upstream_unavailable", "Zoom answered 500").await;
    assert_eq!(
        app.zoom.calls(Endpoint::Token),
        3,
        "the first try and two retries"
    );
}

#[tokio::test]
async fn a_failing_token_endpoint_does_not_fail_callers_while_the_cached_token_is_valid() {
    let app = TestApp::builder().zoom().zoom_keys(NO_REUSE).build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    assert_eq!(app.s2s_token(&key).await.status(), 200);

    for fault in [
        Fault::Status(500),
        Fault::RateLimited {
            retry_after_seconds: 30,
        },
        Fault::Hang,
    ] {
        app.zoom.inject(Endpoint::Token, fault, None);
        assert_eq!(app.s2s_token(&key).await.status(), 200);
        assert_eq!(app.zak(&key, ALICE_ID).await.status(), 200);
        app.zoom.clear_faults();
    }
}

#[tokio::test]
async fn a_429_passes_its_retry_after_on_and_is_honoured() {
    let app = TestApp::builder().zoom().zoom_keys(NO_REUSE).build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(
        Endpoint::Zak,
        Fault::RateLimited {
            retry_after_seconds: 7,
        },
        None,
    );

    let first = app.zak(&key, ALICE_ID).await;
    assert_eq!(first.headers()["retry-after"], "7");
    assert_error(first, 503, "upstream_unavailable", "rate limiting").await;
    let zak_calls = app.zoom.calls(Endpoint::Zak);

    let second = app.zak(&key, ALICE_ID).await;
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=7).contains(&retry_after));
    assert_error(second, 503, "upstream_unavailable", "").await;
    assert_eq!(
        app.zoom.calls(Endpoint::Zak),
        zak_calls,
        "Zoom is not asked again before Retry-After"
    );
}

#[tokio::test]
async fn a_hung_zoom_opens_the_breaker_and_then_callers_are_answered_without_calling_it() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(Endpoint::Token, Fault::Hang, None);

    for _ in 0..3 {
        let response = app.s2s_token(&key).await;
        assert_error(response, 503, "upstream_unavailable", "").await;
    }
    let reached = app.zoom.calls(Endpoint::Token);
    assert_eq!(reached, 3, "timeouts are not retried");

    let response = app.s2s_token(&key).await;
    assert_error(
        response,
        503,
        "upstream_unavailable",
        "circuit breaker open",
    )
    .await;
    assert_eq!(app.zoom.calls(Endpoint::Token), reached);

    // After the cooldown one trial call goes through; Zoom is back, so the breaker closes.
    app.zoom.clear_faults();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.s2s_token(&key).await.status(), 200);
}

#[tokio::test]
async fn a_failing_api_is_retried_then_unavailable() {
    let app = TestApp::builder().zoom().zoom_keys(NO_REUSE).build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(Endpoint::Obf, Fault::Status(503), None);

    let response = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789"),
            &key,
        )
        .await;

    assert_error(response, 503, "upstream_unavailable", "Zoom answered 503").await;
    assert_eq!(app.zoom.calls(Endpoint::Obf), 3);
}

#[tokio::test]
async fn a_single_5xx_from_the_api_is_retried_away() {
    let app = TestApp::builder().zoom().zoom_keys(NO_REUSE).build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(Endpoint::Obf, Fault::Status(502), Some(1));
    let response = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789"),
            &key,
        )
        .await;
    assert_eq!(response.status(), 200, "one 5xx is retried away");
    assert_eq!(app.zoom.calls(Endpoint::Obf), 2);
}

#[tokio::test]
async fn wrong_client_credentials_are_an_upstream_error_naming_the_account() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.add_account(ztv::emulator::EmulatorAccount {
        account_id: S2S_ACCOUNT_ID.into(),
        client_id: S2S_CLIENT_ID.into(),
        client_secret: "rotated-at-zoom".into(),
    });

    let response = app.s2s_token(&key).await;

    let body = assert_error(response, 502, "upstream_error", "account `prod`").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains(S2S_SECRET));
}

#[tokio::test]
async fn zak_and_obf_tokens_come_with_their_expiry() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    let zak: Value = app.zak(&key, ALICE_EMAIL).await.json().await.unwrap();
    let obf_response = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789"),
            &key,
        )
        .await;
    assert_eq!(obf_response.status(), 200);
    let obf: Value = obf_response.json().await.unwrap();

    assert!(!zak["zak"].as_str().unwrap().is_empty());
    assert!(!obf["obfToken"].as_str().unwrap().is_empty());
    // Zoom: ZAKs and OBF tokens both live two hours.
    for (body, life) in [(&zak, 7200), (&obf, 7200)] {
        let at = humantime::parse_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap()
            .as_secs() as i64;
        assert!((life - 5..=life).contains(&left), "{left}");
    }
}

#[tokio::test]
async fn a_zak_is_reused_for_the_same_user_and_fetched_for_another() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    let first: Value = app.zak(&key, ALICE_ID).await.json().await.unwrap();
    let again: Value = app.zak(&key, ALICE_ID).await.json().await.unwrap();
    assert_eq!(app.zak(&key, BOB_ID).await.status(), 200);

    assert_eq!(first["zak"], again["zak"]);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_arriving_as_a_zak_fetch_ends_never_cause_a_second_fetch() {
    // Found by `bash bench/soak.sh`: the waiters of a fetch cached its ZAK only after the
    // fetch had ended, so a caller slipping in between started another one. Many users whose
    // reuse ends at once, under steady load, make that window likely to be hit.
    const USERS: usize = 20;
    let app = TestApp::builder()
        .zoom()
        .zoom_keys("user_token_cache_seconds = 1\n")
        .zoom_keys(PATIENT)
        .config(NO_RATE_LIMIT)
        .build()
        .await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    let users: Vec<String> = (0..USERS)
        .map(|n| format!("load{n:02}@example.com"))
        .collect();
    for (n, email) in users.iter().enumerate() {
        app.zoom
            .add_user(S2S_ACCOUNT_ID, &format!("uLoad{n:02}"), email);
    }

    let started = Instant::now();
    let run_for = Duration::from_millis(3500);
    let callers = (0..64).map(|caller| {
        let (app, key, users) = (&app, key.clone(), &users);
        async move {
            let mut n = caller;
            while started.elapsed() < run_for {
                let response = app.zak(&key, &users[n % USERS]).await;
                assert_eq!(response.status(), 200);
                n += 7;
            }
        }
    });
    futures_util::future::join_all(callers).await;
    let elapsed = started.elapsed();

    // Each ZAK is reused for 1 s from the end of its fetch, and the next fetch starts only
    // once it has lapsed: at most 1 + ⌊elapsed / 1 s⌋ fetches per user.
    let most = USERS as u64 * (1 + elapsed.as_secs());
    let calls = app.zoom.calls(Endpoint::Zak);
    assert!(
        calls <= most,
        "{calls} ZAK calls for {USERS} users in {elapsed:?}"
    );
}

#[tokio::test]
async fn unknown_users_and_users_of_other_accounts_are_not_found() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    assert_error(
        app.zak(&key, "nobody@example.com").await,
        404,
        "not_found",
        "User does not exist",
    )
    .await;
    assert_error(
        app.zak(&key, "uCarol03").await,
        404,
        "not_found",
        "User does not exist",
    )
    .await;
}

#[tokio::test]
async fn bad_user_ids_and_meeting_numbers_are_refused_before_zoom_is_asked() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    let long = "a".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        ("/v1/users/a%20b/zak".into(), "userId: must be"),
        (
            format!("/v1/users/{long}/zak"),
            "userId: must be 1 to 128 characters",
        ),
        ("/v1/users/a%2Fb/zak".into(), "userId: must be"),
        ("/v1/users/%FF/zak".into(), "userId:"),
        ("/v1/users/alice/zak?foo=1".into(), "foo: unknown field"),
        (
            "/v1/users/alice/obf-token".into(),
            "meetingNumber: required",
        ),
        (
            "/v1/users/alice/obf-token?meetingNumber=abc".into(),
            "meetingNumber: must contain digits only",
        ),
        (
            "/v1/users/alice/obf-token?meetingNumber=123".into(),
            "meetingNumber: must be 9 to 12 digits",
        ),
        (
            "/v1/users/alice/obf-token?meetingNumber=123456789&meetingNumber=123456789".into(),
            "meetingNumber: given more than once",
        ),
    ];
    for (path, expected) in cases {
        let response = app.get_with(&path, &key).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{path}: {message:?}");
    }
    assert_eq!(
        app.zoom.calls(Endpoint::Zak) + app.zoom.calls(Endpoint::Obf),
        0
    );
}

#[tokio::test]
async fn every_upstream_route_needs_its_scope() {
    let app = TestApp::builder().zoom().build().await;
    let signer = app
        .key(
            "signer",
            &[Scope::MeetingSdkSignature, Scope::MeetingSdkHost],
            Some("prod"),
        )
        .await;
    let zak_only = app.key("zak-only", &[Scope::ZakRead], Some("prod")).await;

    assert_error(
        app.zak(&signer, ALICE_ID).await,
        403,
        "forbidden",
        "zak:read",
    )
    .await;
    let obf = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789"),
            &zak_only,
        )
        .await;
    assert_error(obf, 403, "forbidden", "obf:read").await;
    assert_error(
        app.s2s_token(&zak_only).await,
        403,
        "forbidden",
        "s2s:token",
    )
    .await;
    let join = app
        .join(
            &signer,
            json!({"meetingNumber": "123456789", "role": 1, "userId": ALICE_ID}),
        )
        .await;
    assert_error(join, 403, "forbidden", "zak:read").await;
    let join = app
        .join(&zak_only, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    assert_error(join, 403, "forbidden", "meeting-sdk:signature").await;
    assert_eq!(app.zoom.calls(Endpoint::Token), 0, "nothing reached Zoom");
}

#[tokio::test]
async fn join_returns_a_hosts_signature_and_zak_in_one_round_trip() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("mobile", &all_upstream(), Some("prod")).await;

    let response = app
        .join(
            &key,
            json!({"meetingNumber": 123456789012_u64, "role": 1, "userId": ALICE_EMAIL}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sdkKey"], SDK_KEY);
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(claims["mn"], 123456789012_u64);
    assert_eq!(claims["role"], 1);
    assert!(body["zak"].is_string());
    assert!(body.get("obfToken").is_none());
    // Every part lives about two hours; the bundle expires with the first of them.
    let at = humantime::parse_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((7190..=7200).contains(&left), "{left}");
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1);
}

#[tokio::test]
async fn join_returns_a_participants_signature_and_obf_token_in_one_round_trip() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("bot", &all_upstream(), Some("prod")).await;

    let response = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "userId": ALICE_EMAIL, "withObf": true}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(claims["role"], 0);
    assert!(body["obfToken"].is_string());
    assert!(body.get("zak").is_none());
    assert_eq!(app.zoom.calls(Endpoint::Obf), 1);
}

#[tokio::test]
async fn join_refuses_an_obf_token_for_a_host_or_beside_a_zak_before_zoom_is_asked() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("bot", &all_upstream(), Some("prod")).await;

    let host = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 1, "userId": ALICE_EMAIL, "withObf": true}),
        )
        .await;
    assert_error(
        host,
        400,
        "invalid_request",
        "withObf: an OBF token only joins",
    )
    .await;
    let both = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "userId": ALICE_EMAIL,
                   "withZak": true, "withObf": true}),
        )
        .await;
    assert_error(
        both,
        400,
        "invalid_request",
        "withObf: give withZak or withObf",
    )
    .await;
    assert_eq!(app.zoom.calls(Endpoint::Obf), 0);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 0);
}

#[tokio::test]
async fn a_participant_join_is_the_signature_alone_unless_a_zak_is_asked_for() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("mobile", &all_upstream(), Some("prod")).await;

    let plain: Value = app
        .join(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        plain.get("zak").is_none() && plain.get("obfToken").is_none(),
        "{plain}"
    );
    assert_eq!(app.zoom.calls(Endpoint::Token), 0);

    let with_zak: Value = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "userId": BOB_ID, "withZak": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(with_zak["zak"].is_string());

    let bad = app.join(&key, json!({"role": 0})).await;
    assert_error(bad, 400, "invalid_request", "meetingNumber: required").await;
    let bad = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "withZak": "yes"}),
        )
        .await;
    assert_error(
        bad,
        400,
        "invalid_request",
        "withZak: must be true or false",
    )
    .await;
}

#[tokio::test]
async fn an_account_without_s2s_credentials_cannot_vend_user_tokens() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("dev-svc", &all_upstream(), Some("dev")).await;

    assert_error(
        app.zak(&key, ALICE_ID).await,
        404,
        "not_found",
        "no Server-to-Server",
    )
    .await;
    assert_error(
        app.s2s_token(&key).await,
        404,
        "not_found",
        "no Server-to-Server",
    )
    .await;
}

#[tokio::test]
async fn concurrent_callers_on_a_failing_cold_cache_share_one_failed_fetch() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(Endpoint::Token, Fault::Status(500), None);

    let calls = (0..50).map(|_| {
        let app = &app;
        let key = key.clone();
        async move { app.s2s_token(&key).await.status() }
    });
    let statuses = futures_util::future::join_all(calls).await;

    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert_eq!(
        app.zoom.calls(Endpoint::Token),
        3,
        "one fetch (a try and two retries) for all fifty callers"
    );
}

#[tokio::test]
async fn a_429_from_the_token_endpoint_without_a_cached_token_passes_retry_after_on() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    app.zoom.inject(
        Endpoint::Token,
        Fault::RateLimited {
            retry_after_seconds: 12,
        },
        Some(1),
    );

    let response = app.s2s_token(&key).await;

    assert_eq!(response.headers()["retry-after"], "12");
    assert_error(response, 503, "upstream_unavailable", "rate limiting").await;
    assert_eq!(app.zoom.calls(Endpoint::Token), 1, "a 429 is not retried");
}

/// Seconds from now until an answer's `expiresAt`.
fn seconds_left(body: &Value) -> i64 {
    let at = humantime::parse_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    at.duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn zak_and_obf_tokens_live_as_long_as_asked_and_a_cached_zak_serves_only_what_it_covers() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;
    let zak = |query: &'static str| {
        let (app, key) = (&app, key.clone());
        async move {
            let response = app
                .get_with(&format!("/v1/users/{ALICE_ID}/zak{query}"), &key)
                .await;
            let status = response.status();
            let body = response.json::<Value>().await.unwrap();
            assert_eq!(status, 200, "{body}");
            body
        }
    };

    let short = zak("?ttlSeconds=600").await;
    assert!((590..=600).contains(&seconds_left(&short)), "{short}");
    // Reused while it covers what is asked: no life asked, or less than it has left.
    assert_eq!(zak("").await["zak"], short["zak"]);
    assert_eq!(zak("?ttlSeconds=300").await["zak"], short["zak"]);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1);
    // Asked for more than it has left: a new one, as long as asked.
    let long = zak("?ttlSeconds=3600").await;
    assert_ne!(long["zak"], short["zak"]);
    assert!((3590..=3600).contains(&seconds_left(&long)), "{long}");
    assert_eq!(app.zoom.calls(Endpoint::Zak), 2);

    let obf = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789&ttlSeconds=900"),
            &key,
        )
        .await;
    assert_eq!(obf.status(), 200);
    let obf: Value = obf.json().await.unwrap();
    assert!((890..=900).contains(&seconds_left(&obf)), "{obf}");

    let bundle = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "userId": ALICE_ID,
                   "withObf": true, "ttlSeconds": 1200}),
        )
        .await;
    assert_eq!(bundle.status(), 200);
    let bundle: Value = bundle.json().await.unwrap();
    assert!((1190..=1200).contains(&seconds_left(&bundle)), "{bundle}");
}

#[tokio::test]
async fn a_ttl_outside_a_minute_to_a_year_is_refused_before_zoom_is_asked() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &all_upstream(), Some("prod")).await;

    for ttl in ["59", "31536001", "1.5", "x"] {
        let response = app
            .get_with(&format!("/v1/users/{ALICE_ID}/zak?ttlSeconds={ttl}"), &key)
            .await;
        assert_error(response, 400, "invalid_request", "ttlSeconds").await;
    }
    let join = app
        .join(
            &key,
            json!({"meetingNumber": "123456789", "role": 1, "userId": ALICE_ID, "ttlSeconds": 30}),
        )
        .await;
    assert_error(
        join,
        400,
        "invalid_request",
        "ttlSeconds: must be between 60 and 31536000",
    )
    .await;
    assert_eq!(app.zoom.calls(Endpoint::Zak), 0);
}
