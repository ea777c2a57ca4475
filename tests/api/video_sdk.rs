//! `POST /v1/video-sdk/token`.

use serde_json::{Value, json};
use ztv::scope::Scope;

use crate::helpers::*;

const VIDEO: &[Scope] = &[Scope::VideoSdkToken, Scope::VideoSdkHost];

#[tokio::test]
async fn a_minimal_video_token_has_exactly_zooms_required_claims() {
    let app = TestApp::builder().build().await;
    let key = app.key("video", VIDEO, Some("prod")).await;

    let before = now();
    let response = app
        .video_token(&key, json!({"sessionName": "team standup", "role": 1}))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    let claims = decode_jwt(body["signature"].as_str().unwrap(), VIDEO_SECRET);
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= now());
    assert_eq!(
        claims,
        json!({
            "app_key": VIDEO_KEY,
            "tpc": "team standup",
            "role_type": 1,
            "version": 1,
            "iat": iat,
            "exp": iat + 7200,
        })
    );
}

#[tokio::test]
async fn every_optional_claim_is_carried_under_zooms_name() {
    let app = TestApp::builder().build().await;
    let key = app.key("video", VIDEO, Some("prod")).await;

    let response = app
        .video_token(
            &key,
            json!({
                "sessionName": "class-101",
                "role": 0,
                "expirationSeconds": 3600,
                "sessionKey": "sk-1",
                "userKey": "user-42",
                "geoRegions": ["us", "DE", "US"],
                "cloudRecordingOption": 1,
                "cloudRecordingElection": 0,
                "telemetryTrackingId": "trace-9",
                "videoWebRtcMode": 1,
                "audioWebRtcMode": 0,
                // Zoom's sample still sends it: accepted, and no claim carries it.
                "audioCompatibleMode": 1,
            }),
        )
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), VIDEO_SECRET);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(
        claims,
        json!({
            "app_key": VIDEO_KEY,
            "tpc": "class-101",
            "role_type": 0,
            "version": 1,
            "iat": iat,
            "exp": iat + 3600,
            "user_key": "user-42",
            "session_key": "sk-1",
            "geo_regions": "US,DE",
            "cloud_recording_option": 1,
            "cloud_recording_election": 0,
            "telemetry_tracking_id": "trace-9",
            "video_webrtc_mode": 1,
            "audio_webrtc_mode": 0,
        })
    );
}

#[tokio::test]
async fn user_identity_keeps_its_older_claim_name_and_csv_regions_are_accepted() {
    let app = TestApp::builder().build().await;
    let key = app.key("video", VIDEO, Some("prod")).await;

    let body: Value = app
        .video_token(
            &key,
            json!({"sessionName": "s", "role": 0, "userIdentity": "alice", "geoRegions": "JP, sg"}),
        )
        .await
        .json()
        .await
        .unwrap();

    let claims = decode_jwt(body["signature"].as_str().unwrap(), VIDEO_SECRET);
    assert_eq!(claims["user_identity"], "alice");
    assert!(claims.get("user_key").is_none());
    assert_eq!(claims["geo_regions"], "JP,SG");
}

#[tokio::test]
async fn bad_video_bodies_are_refused_naming_the_field() {
    let app = TestApp::builder().build().await;
    let key = app.key("video", VIDEO, Some("prod")).await;
    let long = "x".repeat(201);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"role": 0}), "sessionName: required"),
        (
            json!({"sessionName": "", "role": 0}),
            "sessionName: must not be empty",
        ),
        (
            json!({"sessionName": long, "role": 0}),
            "sessionName: must be at most 200 characters",
        ),
        (
            json!({"sessionName": "a/b", "role": 0}),
            "sessionName: Zoom does not allow",
        ),
        (
            json!({"sessionName": 7, "role": 0}),
            "sessionName: must be a string",
        ),
        (json!({"sessionName": "s"}), "role: required"),
        (
            json!({"sessionName": "s", "role": 3}),
            "role: must be 0 or 1",
        ),
        (
            json!({"sessionName": "s", "role": "0"}),
            "role: must be an integer",
        ),
        (
            json!({"sessionName": "s", "role": 0, "expirationSeconds": 100}),
            "expirationSeconds: must be between 1800 and 172800",
        ),
        (
            json!({"sessionName": "s", "role": 0, "sessionKey": "k".repeat(37)}),
            "sessionKey: must be at most 36 characters",
        ),
        (
            json!({"sessionName": "s", "role": 0, "userKey": "k".repeat(37)}),
            "userKey: must be at most 36 characters",
        ),
        (
            json!({"sessionName": "s", "role": 0, "userIdentity": "k".repeat(36)}),
            "userIdentity: must be at most 35 characters",
        ),
        (
            json!({"sessionName": "s", "role": 0, "userKey": "a", "userIdentity": "b"}),
            "userIdentity: give userKey or userIdentity, not both",
        ),
        (
            json!({"sessionName": "s", "role": 0, "geoRegions": ["US", "XX"]}),
            "geoRegions: unknown region",
        ),
        (
            json!({"sessionName": "s", "role": 0, "geoRegions": []}),
            "geoRegions: must name at least one region",
        ),
        (
            json!({"sessionName": "s", "role": 0, "geoRegions": [1]}),
            "geoRegions: items must be strings",
        ),
        (
            json!({"sessionName": "s", "role": 0, "geoRegions": {"a": 1}}),
            "geoRegions: must be an array or a comma-separated string",
        ),
        (
            json!({"sessionName": "s", "role": 0, "cloudRecordingOption": 2}),
            "cloudRecordingOption: must be 0 or 1",
        ),
        (
            json!({"sessionName": "s", "role": 0, "cloudRecordingElection": true}),
            "cloudRecordingElection: must be an integer",
        ),
        (
            json!({"sessionName": "s", "role": 0, "audioWebRtcMode": 5}),
            "audioWebRtcMode: must be 0 or 1",
        ),
        (
            json!({"sessionName": "s", "role": 0, "audioCompatibleMode": "yes"}),
            "audioCompatibleMode: must be an integer",
        ),
        (
            json!({"sessionName": "s", "role": 0, "telemetryTrackingId": "t\u{0007}"}),
            "telemetryTrackingId: must not contain control characters",
        ),
        (
            json!({"sessionName": "s", "role": 0, "tpc": "s"}),
            "tpc: unknown field",
        ),
    ];
    for (body, expected) in cases {
        let response = app.video_token(&key, body.clone()).await;
        let status = response.status();
        let error: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{body} → {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(expected),
            "{body}: {message:?} should start with {expected:?}"
        );
    }
}

#[tokio::test]
async fn video_tokens_need_their_scope_and_an_account_with_video_credentials() {
    let app = TestApp::builder().build().await;
    let signer = app
        .key("signer", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;
    let dev_video = app.key("dev-video", VIDEO, Some("dev")).await;

    let response = app
        .video_token(&signer, json!({"sessionName": "s", "role": 0}))
        .await;
    assert_error(response, 403, "forbidden", "video-sdk:token").await;

    let response = app
        .video_token(&dev_video, json!({"sessionName": "s", "role": 0}))
        .await;
    assert_error(response, 404, "not_found", "no Video SDK credentials").await;
}
