//! API-key callers: the two headers, unknown, expired, revoked and rotated keys.

use std::time::{Duration, Instant};

use serde_json::json;
use ztv::auth::api_clients;
use ztv::scope::Scope;

use crate::helpers::*;

const SIGN: &[Scope] = &[Scope::MeetingSdkSignature];

#[tokio::test]
async fn both_bearer_and_x_api_key_are_accepted() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN, Some("prod")).await;

    let bearer = app.signature(&key, json!({})).await;
    let header = app
        .http
        .post(app.url("/v1/meeting-sdk/signature"))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();

    assert_eq!(bearer.status(), 200);
    assert_eq!(header.status(), 200);
}

#[tokio::test]
async fn missing_malformed_and_unknown_credentials_are_unauthenticated() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN, Some("prod")).await;
    let url = app.url("/v1/meeting-sdk/signature");

    let none = app.http.post(&url).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_error(none, 401, "unauthenticated", "credentials required").await;

    let basic = app
        .http
        .post(&url)
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_error(basic, 401, "unauthenticated", "Bearer").await;

    let not_ours = app
        .http
        .post(&url)
        .bearer_auth("abc.def.ghi")
        .send()
        .await
        .unwrap();
    assert_error(not_ours, 401, "unauthenticated", "not a ztv API key").await;

    let mut forged = key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let wrong = app
        .http
        .post(&url)
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    let body = assert_error(wrong, 401, "unauthenticated", "unknown API key").await;
    assert!(
        !body.to_string().contains(&forged),
        "the key is never echoed"
    );

    let short = app
        .http
        .post(&url)
        .bearer_auth("ztv_short")
        .send()
        .await
        .unwrap();
    assert_error(short, 401, "unauthenticated", "unknown API key").await;
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = TestApp::builder().build().await;
    let created = Instant::now();
    // Expiry counts whole seconds from the creation second, so the key is good for more than
    // seven seconds: ample time for the key ring (which re-reads the store every second) to
    // pick it up, even on a loaded machine.
    let key = app
        .key_expiring("brief", SIGN, Some("prod"), Some(Duration::from_secs(8)))
        .await;
    assert_eq!(app.signature(&key, json!({})).await.status(), 200);

    let refused = loop {
        let response = app.signature(&key, json!({})).await;
        if response.status() != 200 {
            break response;
        }
        assert!(
            created.elapsed() < Duration::from_secs(30),
            "an expired key was still accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        created.elapsed() >= Duration::from_secs(7),
        "the key was refused before its expiry"
    );
    assert_error(refused, 401, "unauthenticated", "expired").await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_the_key_ring_has_re_read_the_clients() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN, Some("prod")).await;
    assert_eq!(app.signature(&key, json!({})).await.status(), 200);

    api_clients::revoke(app.store.as_ref(), "web")
        .await
        .unwrap();
    // Every `auth.key_refresh_seconds` (1 s here), not at a time this test measures.
    app.wait_for_two_key_refreshes().await;

    let response = app.signature(&key, json!({})).await;
    assert_error(response, 401, "unauthenticated", "revoked").await;
}

#[tokio::test]
async fn a_rotated_key_replaces_the_old_one() {
    let app = TestApp::builder().build().await;
    let old = app.key("web", SIGN, Some("prod")).await;

    let (_, new) = api_clients::rotate(app.store.as_ref(), "web")
        .await
        .unwrap();
    let new = new.expose().to_string();
    app.wait_until_known(&new).await;

    assert_eq!(app.signature(&new, json!({})).await.status(), 200);
    let response = app.signature(&old, json!({})).await;
    assert_error(response, 401, "unauthenticated", "unknown API key").await;
}
