//! `POST /v1/meeting-sdk/signature`.

use serde_json::{Value, json};
use ztv::scope::Scope;

use crate::helpers::*;

const SIGN: &[Scope] = &[Scope::MeetingSdkSignature];
const SIGN_AND_HOST: &[Scope] = &[Scope::MeetingSdkSignature, Scope::MeetingSdkHost];

fn keys_of(payload: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_participant_signature_has_exactly_zooms_payload_and_verifies_under_the_sdk_secret() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN, Some("prod")).await;

    let before = now();
    let response = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    let after = now();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sdkKey"], SDK_KEY);
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(
        keys_of(&claims),
        ["appKey", "exp", "iat", "mn", "role", "sdkKey", "tokenExp"]
    );
    assert_eq!(claims["appKey"], SDK_KEY);
    assert_eq!(claims["sdkKey"], SDK_KEY);
    assert_eq!(claims["mn"], "123456789");
    assert_eq!(claims["role"], 0);
    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&iat),
        "iat is now, not back-dated by default"
    );
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 7200);
    assert_eq!(claims["tokenExp"], claims["exp"]);
    let expires_at = humantime::parse_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let expires_at = expires_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(expires_at, iat + 7200);
}

#[tokio::test]
async fn a_numeric_meeting_number_stays_a_number_and_options_are_carried() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN_AND_HOST, Some("prod")).await;

    let response = app
        .signature(
            &key,
            json!({"meetingNumber": 98765432101_u64, "role": 1, "expirationSeconds": 1800, "videoWebRtcMode": 1}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(claims["mn"], 98765432101_u64);
    assert_eq!(claims["role"], 1);
    assert_eq!(claims["video_webrtc_mode"], 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1800
    );
}

#[tokio::test]
async fn without_meeting_and_role_the_signature_is_the_native_sdk_form() {
    let app = TestApp::builder().build().await;
    let key = app.key("native", SIGN, Some("prod")).await;

    let response = app.signature(&key, json!({})).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(
        keys_of(&claims),
        ["appKey", "exp", "iat", "sdkKey", "tokenExp"]
    );
}

#[tokio::test]
async fn an_empty_body_without_content_type_is_the_native_form_too() {
    let app = TestApp::builder().build().await;
    let key = app.key("native", SIGN, Some("prod")).await;

    let response = app
        .post("/v1/meeting-sdk/signature", &key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn iat_is_back_dated_as_configured_but_never_below_zooms_minimum_life() {
    let app = TestApp::builder()
        .config("[signing]\niat_backdate_seconds = 30\n")
        .build()
        .await;
    let key = app.key("web", SIGN, Some("prod")).await;

    let body: Value = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await
        .json()
        .await
        .unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        iat <= now() - 30 && iat >= now() - 32,
        "iat back-dated by 30 s"
    );
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 7200);

    let body: Value = app
        .signature(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "expirationSeconds": 1800}),
        )
        .await
        .json()
        .await
        .unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert!(
        claims["exp"].as_i64().unwrap() - now() >= 1799,
        "at least 1800 s remain"
    );
}

#[tokio::test]
async fn the_host_role_needs_the_host_scope() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN, Some("prod")).await;

    let response = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 1}))
        .await;

    assert_error(response, 403, "forbidden", "meeting-sdk:host").await;
}

#[tokio::test]
async fn a_key_without_the_signature_scope_is_forbidden() {
    let app = TestApp::builder().build().await;
    let key = app
        .key("video-only", &[Scope::VideoSdkToken], Some("prod"))
        .await;

    let response = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await;

    assert_error(response, 403, "forbidden", "meeting-sdk:signature").await;
}

#[tokio::test]
async fn a_bound_key_signs_with_its_own_account_and_may_not_name_another() {
    let app = TestApp::builder().build().await;
    let key = app.key("dev-web", SIGN, Some("dev")).await;

    let body: Value = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["sdkKey"], OTHER_SDK_KEY);
    decode_jwt(body["signature"].as_str().unwrap(), OTHER_SDK_SECRET);

    let response = app
        .signature(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "account": "prod"}),
        )
        .await;
    assert_error(response, 403, "forbidden", "bound to account `dev`").await;
}

#[tokio::test]
async fn an_unbound_key_names_its_account_and_must_when_there_are_several() {
    let app = TestApp::builder().build().await;
    let key = app.key("any", SIGN, None).await;

    let body: Value = app
        .signature(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "account": "dev"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["sdkKey"], OTHER_SDK_KEY);

    let response = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    assert_error(response, 400, "invalid_request", "account: required").await;

    let response = app
        .signature(
            &key,
            json!({"meetingNumber": "123456789", "role": 0, "account": "nope"}),
        )
        .await;
    assert_error(
        response,
        404,
        "not_found",
        "account `nope` is not configured",
    )
    .await;
}

#[tokio::test]
async fn bad_bodies_are_refused_naming_the_field() {
    let app = TestApp::builder().build().await;
    let key = app.key("web", SIGN_AND_HOST, Some("prod")).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"meetingNumber": "1abc56789", "role": 0}),
            "meetingNumber: must contain digits only",
        ),
        (
            json!({"meetingNumber": "12345678", "role": 0}),
            "meetingNumber: must be 9 to 12 digits",
        ),
        (
            json!({"meetingNumber": "1234567890123", "role": 0}),
            "meetingNumber: must be 9 to 12 digits",
        ),
        (
            json!({"meetingNumber": 12345678, "role": 0}),
            "meetingNumber: must be 9 to 12 digits",
        ),
        (
            json!({"meetingNumber": 123456789.5, "role": 0}),
            "meetingNumber: must be a whole number",
        ),
        (
            json!({"meetingNumber": -123456789, "role": 0}),
            "meetingNumber: must be a whole number",
        ),
        (
            json!({"meetingNumber": true, "role": 0}),
            "meetingNumber: must be a string or number",
        ),
        (
            json!({"meetingNumber": ["123456789"], "role": 0}),
            "meetingNumber: must be a string or number",
        ),
        (
            json!({"meetingNumber": "", "role": 0}),
            "meetingNumber: must be 9 to 12 digits",
        ),
        (
            json!({"meetingNumber": " 123456789", "role": 0}),
            "meetingNumber: must contain digits only",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 2}),
            "role: must be 0 or 1",
        ),
        (
            json!({"meetingNumber": "123456789", "role": -1}),
            "role: must be 0 or 1",
        ),
        (
            json!({"meetingNumber": "123456789", "role": "1abc"}),
            "role: must be an integer, or its decimal digits as a string",
        ),
        (
            json!({"meetingNumber": "123456789", "role": "1.0"}),
            "role: must be an integer, or its decimal digits as a string",
        ),
        (
            json!({"meetingNumber": "123456789", "role": " 1"}),
            "role: must be an integer, or its decimal digits as a string",
        ),
        (
            json!({"meetingNumber": "123456789", "role": "2"}),
            "role: must be 0 or 1",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 1.0}),
            "role: must be an integer, not a fraction",
        ),
        (
            json!({"meetingNumber": "123456789"}),
            "role: required with meetingNumber",
        ),
        (json!({"role": 0}), "meetingNumber: required with role"),
        (
            json!({"meetingNumber": "123456789", "role": 0, "expirationSeconds": 1799}),
            "expirationSeconds: must be between 1800 and 172800",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "expirationSeconds": 172801}),
            "expirationSeconds: must be between 1800 and 172800",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "expirationSeconds": 1800.5}),
            "expirationSeconds: must be an integer",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "expirationSeconds": "1799"}),
            "expirationSeconds: must be between 1800 and 172800",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "expirationSeconds": "07200"}),
            "expirationSeconds: must be an integer, or its decimal digits as a string",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "videoWebRtcMode": 2}),
            "videoWebRtcMode: must be 0 or 1",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "meetingNumer": "1"}),
            "meetingNumer: unknown field",
        ),
        (
            json!({"meetingNumber": "123456789", "role": 0, "account": 5}),
            "account: must be a string",
        ),
    ];
    for (body, expected) in cases {
        let response = app.signature(&key, body.clone()).await;
        let status = response.status();
        let error: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{body} → {error}");
        assert_eq!(error["error"]["code"], "invalid_request", "{body}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(expected),
            "{body}: {message:?} should start with {expected:?}"
        );
    }
}

#[tokio::test]
async fn an_account_without_meeting_sdk_credentials_is_not_found() {
    let app = TestApp::builder()
        .config("[accounts.videoonly.video_sdk]\nkey = \"k\"\nsecret = \"s\"\n")
        .build()
        .await;
    let key = app.key("v", SIGN, Some("videoonly")).await;

    let response = app.signature(&key, json!({})).await;

    assert_error(response, 404, "not_found", "no Meeting SDK credentials").await;
}

/// Zoom's Meeting SDK auth sample sends `role` and `expirationSeconds` as strings; a front end
/// built on it works unchanged, and the token carries them as integers.
#[tokio::test]
async fn the_samples_numeric_strings_are_taken_as_the_integers_they_spell() {
    let app = TestApp::builder().build().await;
    let key = app
        .key(
            "host",
            &[Scope::MeetingSdkSignature, Scope::MeetingSdkHost],
            Some("prod"),
        )
        .await;

    let response = app
        .signature(
            &key,
            json!({"meetingNumber": "123456789", "role": "1", "expirationSeconds": "7200"}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(claims["role"], json!(1));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        7200
    );
}
