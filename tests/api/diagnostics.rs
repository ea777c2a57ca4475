//! `POST /v1/diagnostics/token` and `ztv inspect`: tokens ztv issued, tokens signed as Zoom's
//! samples sign them with the wrong secret, and Zoom's own ZAK and OBF tokens.

use std::io::Write;
use std::process::Stdio;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use ztv::scope::Scope;

use crate::helpers::*;

const DIAGNOSE: &str = "/v1/diagnostics/token";
const SIGN_AND_DIAGNOSE: &[Scope] = &[Scope::MeetingSdkSignature, Scope::DiagnosticsRead];

/// Signs as Zoom's Meeting SDK auth-endpoint sample does: base64url of the header and payload
/// JSON, HMAC-SHA256 of `header.payload` under the secret.
fn sample_sign(payload: &Value, secret: &str) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signed = format!(
        "{}.{}",
        encode(&json!({"alg": "HS256", "typ": "JWT"})),
        encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The sample's payload for meeting 85746065432, `iat` 30 s back, two hours' life.
fn sample_payload(key: &str) -> Value {
    let iat = now() - 30;
    json!({
        "appKey": key, "sdkKey": key, "mn": "85746065432", "role": 0,
        "iat": iat, "exp": iat + 7200, "tokenExp": iat + 7200,
    })
}

/// Diagnoses `body` and returns the answer, which must be a 200 without the token or a secret.
async fn diagnose(app: &TestApp, key: &str, body: Value) -> Value {
    let token = body["token"].as_str().unwrap_or_default().to_string();
    let response = app.post_json(DIAGNOSE, key, body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for secret in [SDK_SECRET, OTHER_SDK_SECRET, VIDEO_SECRET, S2S_SECRET] {
        assert!(!text.contains(secret), "a secret in {text}");
    }
    assert!(
        token.is_empty() || !text.contains(&token),
        "the token in {text}"
    );
    let signature_part = token.rsplit('.').next().unwrap_or_default();
    assert!(signature_part.is_empty() || !text.contains(signature_part));
    serde_json::from_str(&text).unwrap()
}

fn finding<'a>(answer: &'a Value, check: &str) -> &'a Value {
    answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding in {answer:#}"))
}

#[tokio::test]
async fn a_signature_ztv_issued_is_diagnosed_valid() {
    let app = TestApp::builder().build().await;
    let key = app.key("support", SIGN_AND_DIAGNOSE, None).await;
    let issued: Value = app
        .signature(
            &key,
            json!({"account": "prod", "meetingNumber": "85746065432", "role": 0}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = issued["signature"].as_str().unwrap();

    let answer = diagnose(
        &app,
        &key,
        json!({"token": token, "meetingNumber": 85746065432_u64}),
    )
    .await;
    assert_eq!(answer["kind"], "meeting-sdk");
    assert_eq!(answer["ok"], true, "{answer:#}");
    assert_eq!(answer["account"], "prod");
    assert_eq!(answer["expiresAt"], issued["expiresAt"]);
    assert!(
        answer["verdict"]
            .as_str()
            .unwrap()
            .starts_with("Meeting SDK JWT: signed by account `prod`, for meeting 85746065432"),
        "{answer:#}"
    );
    assert_eq!(finding(&answer, "meetingNumber")["ok"], true);
    for f in answer["findings"].as_array().unwrap() {
        assert_eq!(f.as_object().unwrap().len(), 3, "{f}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn a_secret_from_the_other_account_is_named_and_hidden_from_bound_callers() {
    let app = TestApp::builder().build().await;
    let support = app.key("support", &[Scope::DiagnosticsRead], None).await;
    let bound = app
        .key("prod-support", &[Scope::DiagnosticsRead], Some("prod"))
        .await;
    let token = sample_sign(&sample_payload(SDK_KEY), OTHER_SDK_SECRET);

    let answer = diagnose(&app, &support, json!({"token": token})).await;
    assert_eq!(answer["ok"], false);
    assert_eq!(
        finding(&answer, "signature")["message"],
        "signed with account `dev`'s Meeting SDK secret but carries account `prod`'s Meeting \
         SDK key"
    );
    assert!(answer.get("account").is_none(), "{answer:#}");
    assert_eq!(
        answer["verdict"],
        "Meeting SDK JWT is not valid: signed with account `dev`'s Meeting SDK secret but \
         carries account `prod`'s Meeting SDK key"
    );

    let answer = diagnose(&app, &bound, json!({"token": token})).await;
    let message = finding(&answer, "signature")["message"].as_str().unwrap();
    assert!(
        message.starts_with("signed with another account's"),
        "{message}"
    );
    assert!(!answer.to_string().contains("`dev`"), "{answer:#}");

    // Zoom's sample algorithm with the right secret passes, for the right meeting only.
    let token = sample_sign(&sample_payload(SDK_KEY), SDK_SECRET);
    let answer = diagnose(&app, &support, json!({"token": token})).await;
    assert_eq!(answer["ok"], true, "{answer:#}");
    let answer = diagnose(
        &app,
        &support,
        json!({"token": token, "meetingNumber": "99988877766"}),
    )
    .await;
    assert_eq!(
        finding(&answer, "meetingNumber")["message"],
        "signed for meeting 85746065432, not 99988877766"
    );
}

#[tokio::test]
async fn broken_claims_come_back_as_findings_in_one_answer() {
    let app = TestApp::builder().build().await;
    let key = app.key("support", &[Scope::DiagnosticsRead], None).await;
    let iat = now() + 240;
    let token = sample_sign(
        &json!({
            "appKey": SDK_KEY, "sdkKey": SDK_KEY, "mn": "857 4606 5432", "role": "1",
            "iat": iat, "exp": iat + 900, "tokenExp": iat + 900,
        }),
        SDK_SECRET,
    );
    let answer = diagnose(&app, &key, json!({"token": token})).await;
    let failed: Vec<&str> = answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["mn", "role", "iat", "lifetime", "tokenExp"],
        "{answer:#}"
    );
    assert!(
        finding(&answer, "iat")["message"]
            .as_str()
            .unwrap()
            .starts_with("issued 4m"),
        "{answer:#}"
    );
    assert_eq!(finding(&answer, "signature")["ok"], true);

    let answer = diagnose(&app, &key, json!({"token": "not-a-token"})).await;
    assert_eq!(answer["kind"], "unknown");
    assert_eq!(finding(&answer, "format")["ok"], false);
}

#[tokio::test]
async fn zoom_zaks_and_obf_tokens_are_read_with_their_user_and_expiry() {
    let app = TestApp::builder().zoom().build().await;
    let key = app
        .key(
            "bot",
            &[Scope::ZakRead, Scope::ObfRead, Scope::DiagnosticsRead],
            None,
        )
        .await;
    let zak: Value = app
        .get_with(&format!("/v1/users/{ALICE_ID}/zak?account=prod"), &key)
        .await
        .json()
        .await
        .unwrap();
    let answer = diagnose(&app, &key, json!({"token": zak["zak"]})).await;
    assert_eq!(answer["kind"], "zak", "{answer:#}");
    assert_eq!(answer["ok"], true, "{answer:#}");
    assert_eq!(answer["account"], "prod");
    assert_eq!(answer["expiresAt"], zak["expiresAt"]);
    assert_eq!(
        finding(&answer, "user")["message"],
        format!("for Zoom user \"{ALICE_ID}\"")
    );

    let obf: Value = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789&account=prod"),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    let answer = diagnose(
        &app,
        &key,
        json!({"token": obf["obfToken"], "meetingNumber": "987654321"}),
    )
    .await;
    assert_eq!(answer["kind"], "obf", "{answer:#}");
    assert_eq!(finding(&answer, "single-use")["ok"], true);
    assert_eq!(
        finding(&answer, "meetingNumber")["message"],
        "issued for meeting \"123456789\", not 987654321"
    );
}

#[tokio::test]
async fn the_route_needs_its_scope_and_a_clean_body() {
    let app = TestApp::builder().build().await;
    let signer = app.key("web", &[Scope::MeetingSdkSignature], None).await;
    let key = app.key("support", &[Scope::DiagnosticsRead], None).await;
    let token = sample_sign(&sample_payload(SDK_KEY), SDK_SECRET);

    let response = app
        .post_json(DIAGNOSE, &signer, json!({"token": token}))
        .await;
    assert_error(response, 403, "forbidden", "diagnostics:read").await;
    let response = app
        .http
        .post(app.url(DIAGNOSE))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    for (body, needle) in [
        (json!({}), "token: required"),
        (json!({"token": 7}), "token: must be a string"),
        (json!({"token": "a".repeat(8193)}), "token"),
        (
            json!({"token": token, "meetingNumber": "857 4606"}),
            "meetingNumber",
        ),
        (
            json!({"token": token, "secret": "x"}),
            "secret: unknown field",
        ),
    ] {
        let response = app.post_json(DIAGNOSE, &key, body).await;
        assert_error(response, 400, "invalid_request", needle).await;
    }
}

#[test]
fn ztv_inspect_reads_the_token_from_stdin_and_fails_on_a_broken_one() {
    let config = ConfigFile::standard("");
    let inspect = |token: &str, args: &[&str]| {
        let mut child = config
            .command()
            .arg("inspect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(token.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let good = sample_sign(&sample_payload(SDK_KEY), SDK_SECRET);
    let output = inspect(&good, &["--meeting-number", "85746065432"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("CHECK"), "{stdout}");
    assert!(
        stdout.contains("Meeting SDK JWT: signed by account `prod`"),
        "{stdout}"
    );

    let broken = sample_sign(&sample_payload(SDK_KEY), OTHER_SDK_SECRET);
    let output = inspect(&broken, &[]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("signature   FAIL  signed with account `dev`'s Meeting SDK secret"),
        "{stdout}"
    );
    assert!(stderr.contains("the token has 1 problem"), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(&broken) && !text.contains(OTHER_SDK_SECRET));
    }

    let output = inspect(&broken, &["--json"]);
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["kind"], "meeting-sdk");
    assert_eq!(answer["ok"], false);
    assert_eq!(finding(&answer, "signature")["ok"], false);
    assert!(answer["expiresAt"].as_str().is_some(), "{answer:#}");
}
