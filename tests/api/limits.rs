//! CORS for browser front ends, and per-caller rate limits, in-process and across two
//! replicas sharing Redis.

use serde_json::json;
use ztv::scope::Scope;

use crate::helpers::*;

const SIGN: &[Scope] = &[Scope::MeetingSdkSignature];

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(
            reqwest::Method::OPTIONS,
            app.url("/v1/meeting-sdk/signature"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_headers_and_another_gets_none() {
    let app = TestApp::builder()
        .config("[cors]\nallowed_origins = [\"https://app.example.com\"]\nmax_age_seconds = 900\n")
        .build()
        .await;

    let allowed = preflight(&app, "https://app.example.com").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allow_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for needed in ["authorization", "content-type", "x-api-key"] {
        assert!(allow_headers.contains(needed), "{allow_headers}");
    }
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(headers["access-control-max-age"], "900");

    let other = preflight(&app, "https://evil.example.com").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let key = app.key("web", SIGN, Some("prod")).await;
    let actual = app
        .post("/v1/meeting-sdk/signature", &key)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let error = app
        .http
        .post(app.url("/v1/meeting-sdk/signature"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 401);
    assert_eq!(
        error.headers()["access-control-allow-origin"],
        "https://app.example.com",
        "errors are readable by the allowed front end too"
    );
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = TestApp::builder().build().await;

    let response = preflight(&app, "https://app.example.com").await;

    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

async fn key_with_limit(app: &TestApp, name: &str, limit: (u32, u32)) -> String {
    app.key_with(name, SIGN, Some("prod"), |client| {
        client.rate_limit = Some(limit);
    })
    .await
}

#[tokio::test]
async fn a_caller_over_its_limit_gets_429_with_retry_after_and_others_are_untouched() {
    let app = TestApp::builder().build().await;
    let other = app.key("other", SIGN, Some("prod")).await;
    let name = format!("slow-{}", uuid::Uuid::new_v4());
    // wait_until_known spends one request of the burst.
    let slow = key_with_limit(&app, &name, (1, 3)).await;

    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..5).map(|_| async { app.signature(&slow, json!({})).await.status().as_u16() }),
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );

    let limited = app.signature(&slow, json!({})).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_error(limited, 429, "rate_limited", "rate limit of 1/s (burst 3)").await;

    assert_eq!(app.signature(&other, json!({})).await.status(), 200);
}

#[tokio::test]
async fn rate_limits_hold_across_two_replicas_sharing_redis() {
    let Some(redis_url) = redis_url_or_skip() else {
        return;
    };
    let config = format!(
        "[cache]\nredis_url = \"{redis_url}\"\nencryption_key = \"{}\"\n",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    );
    let first = TestApp::builder().config(&config).build().await;
    let second = first.replica().await;
    let name = format!("shared-{}", uuid::Uuid::new_v4());
    let key = key_with_limit(&first, &name, (1, 4)).await;
    second.wait_until_known(&key).await;

    // Two of the burst of four are spent by the two wait_until_known probes.
    let mut ok = 0;
    for round in 0..6 {
        let replica = if round % 2 == 0 { &first } else { &second };
        if replica.signature(&key, json!({})).await.status() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 2, "the two replicas share one budget");
}

#[tokio::test]
async fn an_end_user_and_an_api_key_of_the_same_name_never_share_a_budget() {
    let (provider, signing_key) = idp::Idp::start_with_rsa_key().await;
    // Both callers under the default limit, so only their rate keys can keep them apart.
    let app = TestApp::builder()
        .zoom()
        .end_users(&provider, r#""meeting-sdk:signature""#)
        .config("[rate_limit]\nrequests_per_second = 1\nburst = 3\n")
        .build()
        .await;
    // An end user whose subject is also a client's name (client names take no `@`).
    let subject = "alice-sub";
    let mut claims = provider.claims(ALICE_EMAIL);
    claims["sub"] = json!(subject);
    let end_user = idp::sign(&signing_key, &claims);
    let api_key = app.key(subject, SIGN, Some("prod")).await;
    let mut api_key_statuses = Vec::new();
    while api_key_statuses.last() != Some(&429) && api_key_statuses.len() < 20 {
        api_key_statuses.push(app.signature(&api_key, json!({})).await.status().as_u16());
    }
    assert_eq!(api_key_statuses.last(), Some(&429), "{api_key_statuses:?}");

    let response = app.signature(&end_user, json!({})).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}
