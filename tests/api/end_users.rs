//! End users signed in with the organisation's identity provider: token checks, key
//! rotation, and the self-only rule on every route that names a user.

use serde_json::{Value, json};
use ztv::emulator::Endpoint;

use crate::helpers::idp::{self, Idp, sign};
use crate::helpers::*;

const SCOPES: &str = r#""meeting-sdk:signature", "zak:read", "obf:read""#;

async fn app_with_idp() -> (ZoomApp, Idp, idp::SigningKey) {
    let (provider, key) = Idp::start_with_rsa_key().await;
    let app = TestApp::builder()
        .zoom()
        .end_users(&provider, SCOPES)
        .build()
        .await;
    (app, provider, key)
}

#[tokio::test]
async fn a_valid_rs256_token_signs_in_and_gets_the_configured_scopes() {
    let (app, provider, key) = app_with_idp().await;
    let token = provider.token(&key, ALICE_EMAIL);

    let response = app
        .signature(&token, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    assert_eq!(response.status(), 200);

    let host = app
        .signature(&token, json!({"meetingNumber": "123456789", "role": 1}))
        .await;
    assert_error(host, 403, "forbidden", "meeting-sdk:host").await;
    assert_error(app.s2s_token(&token).await, 403, "forbidden", "s2s:token").await;
}

#[tokio::test]
async fn a_valid_es256_token_signs_in() {
    let key = idp::ec_key("ec-1");
    let provider = Idp::start(&[&key]).await;
    let app = TestApp::builder()
        .zoom()
        .end_users(&provider, SCOPES)
        .build()
        .await;

    let response = app.zak(&provider.token(&key, ALICE_EMAIL), "me").await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_bad_token_is_unauthenticated_saying_which_check_failed() {
    let (app, provider, key) = app_with_idp().await;
    let now = ztv::clock::now();
    let with = |change: Value| {
        let mut claims = provider.claims(ALICE_EMAIL);
        for (k, v) in change.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign(&key, &claims)
    };
    let stranger = idp::rsa_key(1);
    let header_none = b64url(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(&provider.claims(ALICE_EMAIL).to_string());
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(key.kid.clone());
    let hs256_with_public_key = jsonwebtoken::encode(
        &hs_header,
        &provider.claims(ALICE_EMAIL),
        &jsonwebtoken::EncodingKey::from_secret(key.public_pem.as_bytes()),
    )
    .unwrap();
    // The stranger's key, claiming to be the published one.
    let mut impostor = stranger.clone();
    impostor.kid = key.kid.clone();
    let forged_kid = sign(&impostor, &provider.claims(ALICE_EMAIL));
    let cases: Vec<(String, &str)> = vec![
        (
            with(json!({"iss": "https://evil.example.com"})),
            "wrong issuer",
        ),
        (with(json!({"aud": "someone-else"})), "wrong audience"),
        (with(json!({"exp": now - 120})), "expired"),
        (with(json!({"nbf": now + 600})), "not valid yet"),
        (with(json!({"email": null})), "lacks the `email` claim"),
        (format!("{header_none}.{payload}."), "algorithm"),
        (hs256_with_public_key, "algorithm HS256 is not accepted"),
        (
            sign(&stranger, &provider.claims(ALICE_EMAIL)),
            "signed by an unknown key",
        ),
        (forged_kid, "signature does not verify"),
        ("not.a.jwt".to_string(), "malformed"),
        ("garbage".to_string(), "malformed"),
    ];
    for (token, expected) in cases {
        let response = app.signature(&token, json!({})).await;
        let body = assert_error(response, 401, "unauthenticated", expected).await;
        assert!(
            !body.to_string().contains(&token),
            "the token is never echoed"
        );
    }
}

fn b64url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_refetches_are_rate_limited() {
    let (app, provider, key) = app_with_idp().await;
    assert_eq!(
        app.signature(&provider.token(&key, ALICE_EMAIL), json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(provider.jwks_fetches(), 1);

    // The provider rotates to a new key; ztv has never seen its kid.
    let new_key = idp::ec_key("rotated");
    provider.publish(&new_key);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = app
        .signature(&provider.token(&new_key, ALICE_EMAIL), json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(provider.jwks_fetches(), 2, "one refetch for the new kid");

    // A flood of tokens with unknown kids refetches at most once per two seconds.
    let unknown = idp::ec_key("never-published");
    for _ in 0..20 {
        let response = app
            .signature(&provider.token(&unknown, ALICE_EMAIL), json!({}))
            .await;
        assert_error(response, 401, "unauthenticated", "unknown key").await;
    }
    assert!(
        provider.jwks_fetches() <= 3,
        "{} fetches",
        provider.jwks_fetches()
    );
}

#[tokio::test]
async fn an_end_user_fetches_tokens_only_for_themselves() {
    let (app, provider, key) = app_with_idp().await;
    let token = provider.token(&key, ALICE_EMAIL);

    // `me` and their own email work, and Zoom is asked about the signed-in user.
    let me: Value = app.zak(&token, "me").await.json().await.unwrap();
    assert!(me["zak"].is_string(), "{me}");
    assert_eq!(app.zak(&token, "Alice@Example.com").await.status(), 200);

    assert_error(
        app.zak(&token, BOB_ID).await,
        403,
        "forbidden",
        "themselves",
    )
    .await;
    let obf = app
        .get_with(
            &format!("/v1/users/{BOB_ID}/obf-token?meetingNumber=123456789"),
            &token,
        )
        .await;
    assert_error(obf, 403, "forbidden", "themselves").await;
    let join = app
        .join(
            &token,
            json!({"meetingNumber": "123456789", "role": 0, "userId": BOB_ID, "withZak": true}),
        )
        .await;
    assert_error(join, 403, "forbidden", "themselves").await;

    let own = app
        .join(
            &token,
            json!({"meetingNumber": "123456789", "role": 0, "withObf": true}),
        )
        .await;
    assert_eq!(own.status(), 200);
    assert_eq!(app.zoom.calls(Endpoint::Obf), 1);
}

#[tokio::test]
async fn without_sign_in_configured_a_non_key_bearer_is_refused() {
    let app = TestApp::builder().build().await;

    let response = app
        .signature("eyJhbGciOiJSUzI1NiJ9.e30.sig", json!({}))
        .await;

    assert_error(
        response,
        401,
        "unauthenticated",
        "end-user sign-in is not configured",
    )
    .await;
}
