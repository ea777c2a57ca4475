//! Users who authorise the app themselves: authorise → callback → ZAK/OBF with their own
//! token, state checks, refresh exactly once (one process and two), invalid_grant,
//! encryption at rest, deletion and Zoom's deauthorisation webhook.

use std::time::Duration;

use serde_json::{Value, json};
use ztv::emulator::Endpoint;
use ztv::scope::Scope;
use ztv::store::AuditEvent;
use ztv::zoom_user::ZoomUser;

use crate::helpers::oauth::{
    GRANTS_KEY, OAUTH_CLIENT, OAUTH_SECRET, WEBHOOK_SECRET, authorize_url, callback, consent,
};
use crate::helpers::*;

pub(crate) fn admin_scopes() -> Vec<Scope> {
    vec![Scope::GrantsAdmin, Scope::ZakRead, Scope::ObfRead]
}

/// The service `builder` makes, with user OAuth, and a key of `prod` with [`admin_scopes`].
pub(crate) async fn admin_app(builder: AppBuilder<WithZoom>) -> (ZoomApp, String) {
    let app = builder.grants().build().await;
    let key = app.key("admin", &admin_scopes(), Some("prod")).await;
    (app, key)
}

/// `POST /v1/oauth/authorize`, then the browser's visit to Zoom: the callback's path and query.
pub(crate) async fn authorize(app: &ZoomApp, key: &str, user_hint: &str) -> String {
    let url = authorize_url(app, key, user_hint).await;
    assert!(
        url.starts_with(&format!(
            "{}/oauth/authorize?response_type=code&client_id={OAUTH_CLIENT}",
            app.zoom.base_url()
        )),
        "{url}"
    );
    consent(&url).await
}

pub(crate) async fn authorize_alice(app: &ZoomApp, key: &str) {
    let back = authorize(app, key, ALICE_EMAIL).await;
    let response = callback(app, &back).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Zoom is connected for alice@example.com")
    );
}

pub(crate) async fn zak_source(app: &ZoomApp, key: &str, user: &str) -> String {
    let response = app.zak(key, user).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["source"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_authorised_user_gets_zak_and_obf_with_their_own_token() {
    let (app, key) = admin_app(TestApp::builder().zoom().zoom_keys(NO_REUSE)).await;
    assert_eq!(zak_source(&app, &key, ALICE_EMAIL).await, "account");

    authorize_alice(&app, &key).await;

    assert_eq!(zak_source(&app, &key, ALICE_EMAIL).await, "user_grant");
    assert_eq!(zak_source(&app, &key, ALICE_ID).await, "user_grant");
    assert_eq!(
        zak_source(&app, &key, BOB_ID).await,
        "account",
        "others still use the account"
    );
    let obf: Value = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789"),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(obf["source"], "user_grant", "{obf}");
}

#[tokio::test]
async fn a_replayed_unknown_expired_or_foreign_state_stores_nothing() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;

    let back = authorize(&app, &key, ALICE_EMAIL).await;
    assert_eq!(callback(&app, &back).await.status(), 200);
    assert_error(
        callback(&app, &back).await,
        400,
        "invalid_request",
        "state: unknown, already used or expired",
    )
    .await;
    assert_error(
        callback(&app, "/v1/oauth/callback?code=x&state=made-up").await,
        400,
        "invalid_request",
        "state:",
    )
    .await;
    assert_error(
        callback(&app, "/v1/oauth/callback?code=x").await,
        400,
        "invalid_request",
        "state: required",
    )
    .await;

    // Expired: a state past its ten minutes.
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"old-state"));
    app.store
        .insert_oauth_state(
            &hash,
            &ztv::store::OAuthState {
                account: "prod".into(),
                caller: "admin".into(),
                user_hint: None,
                install: ztv::store::GrantKind::User,
                created_ms: 0,
                expires_at: ztv::clock::now() - 1,
            },
            10,
        )
        .await
        .unwrap();
    assert_error(
        callback(&app, "/v1/oauth/callback?code=x&state=old-state").await,
        400,
        "invalid_request",
        "expired",
    )
    .await;

    // Foreign: the authorisation was for Bob, but Alice signed in at Zoom.
    let back = authorize(&app, &key, "bob@example.com").await;
    assert_error(
        callback(&app, &back).await,
        403,
        "forbidden",
        "different user",
    )
    .await;
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse("bob@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_some(),
        "only the first authorisation stored"
    );
}

#[tokio::test]
async fn a_code_zoom_refuses_stores_nothing() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    let back = authorize(&app, &key, ALICE_EMAIL).await;
    let tampered = back.replace("code=", "code=tampered");

    let response = callback(&app, &tampered).await;

    assert_error(
        response,
        502,
        "upstream_error",
        "refused the authorization code",
    )
    .await;
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn authorize_needs_grants_admin_and_a_user_hint_for_api_keys() {
    let app = TestApp::builder().zoom().grants().build().await;
    let plain = app.key("plain", &[Scope::ZakRead], Some("prod")).await;
    let admin = app.key("admin", &admin_scopes(), Some("prod")).await;

    let response = app
        .post("/v1/oauth/authorize", &plain)
        .json(&json!({"userHint": ALICE_EMAIL}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden", "grants:admin").await;
    let response = app
        .post("/v1/oauth/authorize", &admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_request", "userHint: required").await;
}

/// Lets the stored access token fall inside the refresh window (tokens of 61 s are refreshed
/// once less than 60 s remain) while new ones live an hour.
pub(crate) async fn expire_alices_access(app: &ZoomApp, key: &str) {
    app.zoom.set_user_token_lifetime(61);
    authorize_alice(app, key).await;
    app.zoom.set_user_token_lifetime(3599);
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

async fn hundred_token_calls(apps: &[&TestApp], key: &str) {
    let calls = (0..100).map(|i| {
        let app = apps[i % apps.len()];
        async move {
            // Different meetings: a hundred separate OBF fetches, all needing the grant.
            let path = format!(
                "/v1/users/{ALICE_ID}/obf-token?meetingNumber={}",
                100_000_000 + i
            );
            let response = app.get_with(&path, key).await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["source"], "user_grant");
        }
    });
    futures_util::future::join_all(calls).await;
}

#[tokio::test]
async fn a_hundred_callers_on_an_expired_grant_cause_exactly_one_refresh() {
    // A hundred OBF tokens are a hundred Zoom calls: more than one caller's default budget.
    let (app, key) = admin_app(
        TestApp::builder()
            .zoom()
            .zoom_keys(PATIENT)
            .config(NO_RATE_LIMIT),
    )
    .await;
    expire_alices_access(&app, &key).await;

    hundred_token_calls(&[&app.app], &key).await;

    assert_eq!(app.zoom.calls(Endpoint::Refresh), 1);
}

#[tokio::test]
async fn two_instances_sharing_the_database_refresh_an_expired_grant_exactly_once() {
    let (first, key) = admin_app(TestApp::builder().zoom()).await;
    let replica = first.replica().await;
    replica.wait_until_known(&key).await;
    expire_alices_access(&first, &key).await;

    hundred_token_calls(&[&first.app, &replica], &key).await;

    assert_eq!(first.zoom.calls(Endpoint::Refresh), 1);
}

#[tokio::test]
async fn two_replicas_on_postgres_refresh_an_expired_grant_exactly_once() {
    let Some(schema) = PgSchema::fresh().await else {
        return;
    };
    let (first, key) = admin_app(TestApp::builder().zoom().database(&schema.url())).await;
    // Its own connection pool, key ring, caches and single flight: only the database is shared.
    let second = first.replica_with_own_pool().await;
    second.wait_until_known(&key).await;
    expire_alices_access(&first, &key).await;

    hundred_token_calls(&[&first.app, &second], &key).await;

    assert_eq!(first.zoom.calls(Endpoint::Refresh), 1);
}

/// The tokens of Alice's grant, opened with the configured key (as only ztv could).
pub(crate) async fn alices_tokens(app: &ZoomApp) -> (String, String) {
    use base64::Engine;
    let row = app
        .store
        .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
        .await
        .unwrap()
        .unwrap();
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(GRANTS_KEY)
        .unwrap()
        .try_into()
        .unwrap();
    let sealer = ztv::sealing::Sealer::new(&key);
    let open = |sealed: &[u8], what: &str| {
        String::from_utf8(
            sealer
                .open(sealed, &format!("ztv-grant/prod/{ALICE_ID}/{what}"))
                .unwrap(),
        )
        .unwrap()
    };
    (
        open(&row.refresh_token, "refresh"),
        open(&row.access_token, "access"),
    )
}

#[tokio::test]
async fn grants_are_encrypted_at_rest_and_a_refused_refresh_token_needs_reauthorisation() {
    let (app, key) = admin_app(TestApp::builder().zoom().zoom_keys(NO_REUSE)).await;
    expire_alices_access(&app, &key).await;
    let (refresh, access) = alices_tokens(&app).await;

    let db = std::fs::read(app.settings.database.sqlite_path().unwrap()).unwrap();
    for token in [&refresh, &access] {
        assert!(
            !db.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token is in the database file in clear"
        );
    }

    // Someone spends the single-use refresh token behind ztv's back.
    let spent = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.zoom.base_url()))
        .basic_auth(OAUTH_CLIENT, Some(OAUTH_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), 200);

    let response = app.zak(&key, ALICE_ID).await;
    assert_error(response, 502, "upstream_error", "reauthorization_required").await;
    assert_eq!(app.zoom.calls(Endpoint::Refresh), 2);
    let again = app.zak(&key, ALICE_ID).await;
    assert_error(again, 502, "upstream_error", "reauthorization_required").await;
    assert_eq!(app.zoom.calls(Endpoint::Refresh), 2, "never a loop");
    let events = grant_events(&app, 2).await;
    assert_eq!(
        events,
        vec![
            ("created".into(), ALICE_ID.to_ascii_lowercase()),
            ("refused".into(), ALICE_ID.to_ascii_lowercase()),
        ]
    );
}

/// The `user grant` audit events (action, user), oldest first, once `count` are stored.
pub(crate) async fn grant_events(app: &ZoomApp, count: usize) -> Vec<(String, String)> {
    let is_grant = |e: &&AuditEvent| e.route == "user grant";
    let stored = app
        .audit_until(|events| events.iter().filter(is_grant).count() >= count)
        .await;
    let mut events: Vec<_> = stored.into_iter().filter(|e| is_grant(&e)).collect();
    events.sort_by_key(|e| e.at_ms);
    for event in &events {
        assert_eq!(event.account.as_deref(), Some("prod"));
    }
    events
        .into_iter()
        .map(|e| (e.outcome.into_owned(), e.target_user.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn grants_created_refreshed_and_deleted_are_audited_once_each() {
    let (app, key) = admin_app(TestApp::builder().zoom().config(NO_RATE_LIMIT)).await;
    expire_alices_access(&app, &key).await;
    hundred_token_calls(&[&app.app], &key).await;
    let delete = app
        .http
        .delete(app.url(&format!("/v1/oauth/grants/{ALICE_ID}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
    let events = grant_events(&app, 3).await;
    assert_eq!(
        events,
        vec![
            ("created".into(), ALICE_ID.to_ascii_lowercase()),
            ("refreshed".into(), ALICE_ID.to_ascii_lowercase()),
            ("revoked".into(), ALICE_ID.to_ascii_lowercase()),
        ],
        "one event per change, however many callers needed the refresh"
    );
    // The refresh and the deletion carry the caller of the request they happened in.
    let stored = app.store.list_audit(0, None, 10_000).await.unwrap();
    let deleted = stored.iter().find(|e| e.outcome == "revoked").unwrap();
    assert_eq!(deleted.caller.as_deref(), Some("admin"));
    assert!(deleted.request_id.is_some());
}

#[tokio::test]
async fn deleting_a_grant_removes_it_and_every_cached_token() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    authorize_alice(&app, &key).await;
    assert_eq!(zak_source(&app, &key, ALICE_EMAIL).await, "user_grant");

    let delete = |user: &'static str| {
        app.http
            .delete(app.url(&format!("/v1/oauth/grants/{user}")))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(delete(ALICE_ID).await.unwrap().status(), 200);

    assert_eq!(
        zak_source(&app, &key, ALICE_EMAIL).await,
        "account",
        "the cached grant ZAK is gone"
    );
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_error(
        delete(ALICE_ID).await.unwrap(),
        404,
        "not_found",
        "no grant",
    )
    .await;
}

pub(crate) async fn send_webhook(
    app: &ZoomApp,
    body: &str,
    headers: &[(String, String)],
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/v1/webhooks/zoom"))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn zooms_deauthorisation_webhook_deletes_the_grant_only_when_signed_and_fresh() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    authorize_alice(&app, &key).await;
    let now = ztv::clock::now();

    let (body, headers) =
        app.zoom
            .deauthorization_webhook("wrong-secret", ALICE_ID, OAUTH_CLIENT, now);
    assert_error(
        send_webhook(&app, &body, &headers).await,
        401,
        "unauthenticated",
        "does not verify",
    )
    .await;
    let (body, headers) =
        app.zoom
            .deauthorization_webhook(WEBHOOK_SECRET, ALICE_ID, OAUTH_CLIENT, now - 301);
    assert_error(
        send_webhook(&app, &body, &headers).await,
        401,
        "unauthenticated",
        "older than 5 minutes",
    )
    .await;
    let (body, headers) =
        app.zoom
            .deauthorization_webhook(WEBHOOK_SECRET, ALICE_ID, OAUTH_CLIENT, now);
    let tampered = body.replace(ALICE_ID, BOB_ID);
    assert_error(
        send_webhook(&app, &tampered, &headers).await,
        401,
        "unauthenticated",
        "does not verify",
    )
    .await;
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_some(),
        "nothing changed"
    );

    let response = send_webhook(&app, &body, &headers).await;
    assert_eq!(response.status(), 200);
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(zak_source(&app, &key, ALICE_EMAIL).await, "account");
}

#[tokio::test]
async fn zooms_url_validation_is_answered_with_the_encrypted_token() {
    use hmac::Mac;
    let app = TestApp::builder().zoom().grants().build().await;
    let body = json!({"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}).to_string();
    let ts = ztv::clock::now().to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));

    let response = send_webhook(
        &app,
        &body,
        &[
            ("x-zm-request-timestamp".into(), ts),
            ("x-zm-signature".into(), signature),
            ("content-type".into(), "application/json".into()),
        ],
    )
    .await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(b"qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer,
        json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": hex::encode(mac.finalize().into_bytes())})
    );
}

#[tokio::test]
async fn a_signed_in_end_user_authorises_and_deletes_only_their_own_grant() {
    let (provider, idp_key) = idp::Idp::start_with_rsa_key().await;
    let app = TestApp::builder()
        .zoom()
        .grants()
        .end_users(&provider, r#""zak:read""#)
        .build()
        .await;
    let alice = provider.token(&idp_key, ALICE_EMAIL);

    let refused = app
        .post("/v1/oauth/authorize", &alice)
        .json(&json!({"userHint": BOB_ID}))
        .send()
        .await
        .unwrap();
    assert_error(refused, 400, "invalid_request", "userHint: only API keys").await;
    let response = app
        .post("/v1/oauth/authorize", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let url: Value = response.json().await.unwrap();
    let back = consent(url["authorizeUrl"].as_str().unwrap()).await;
    assert_eq!(callback(&app, &back).await.status(), 200);
    assert_eq!(zak_source(&app, &alice, "me").await, "user_grant");

    let others = app
        .http
        .delete(app.url(&format!("/v1/oauth/grants/{BOB_ID}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_error(others, 403, "forbidden", "themselves").await;
    let own = app
        .http
        .delete(app.url("/v1/oauth/grants/me"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

/// `prod`'s app has a webhook secret of its own; `webhooks.secret_token` stays the default of
/// the apps without one.
const PROD_APP_SECRET: &str = "prod-app-webhook-secret";

#[tokio::test]
async fn an_event_is_applied_only_to_the_accounts_whose_app_secret_signed_it() {
    let builder = TestApp::builder().zoom().adjust(|settings| {
        let prod = settings.accounts.get_mut("prod").unwrap();
        if let Some(app) = prod.user_oauth.as_mut() {
            app.webhook_secret = Some(PROD_APP_SECRET.to_string().into());
        }
    });
    let (app, key) = admin_app(builder).await;
    authorize_alice(&app, &key).await;
    let now = ztv::clock::now();
    let alice = ZoomUser::parse(ALICE_ID).unwrap();

    // Signed with the default secret: verified, but prod's app is not the default's.
    let (body, headers) =
        app.zoom
            .deauthorization_webhook(WEBHOOK_SECRET, ALICE_ID, OAUTH_CLIENT, now);
    let response = send_webhook(&app, &body, &headers).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["grantsDeleted"], 0);
    assert!(
        app.store
            .find_grant("prod", &alice)
            .await
            .unwrap()
            .is_some()
    );

    // Signed with prod's own secret: prod's grant goes.
    let (body, headers) =
        app.zoom
            .deauthorization_webhook(PROD_APP_SECRET, ALICE_ID, OAUTH_CLIENT, now);
    let response = send_webhook(&app, &body, &headers).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["grantsDeleted"], 1);
    assert!(
        app.store
            .find_grant("prod", &alice)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn url_validation_is_answered_with_the_secret_that_verified_it() {
    use hmac::Mac;
    let builder = TestApp::builder().zoom().adjust(|settings| {
        let prod = settings.accounts.get_mut("prod").unwrap();
        if let Some(app) = prod.user_oauth.as_mut() {
            app.webhook_secret = Some(PROD_APP_SECRET.to_string().into());
        }
    });
    let app = builder.grants().build().await;
    let hmac_of = |secret: &str, text: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let body =
        json!({"event": "endpoint.url_validation", "payload": {"plainToken": "pt-1"}}).to_string();
    let ts = ztv::clock::now().to_string();

    for secret in [PROD_APP_SECRET, WEBHOOK_SECRET] {
        let signature = format!("v0={}", hmac_of(secret, &format!("v0:{ts}:{body}")));
        let response = send_webhook(
            &app,
            &body,
            &[
                ("x-zm-request-timestamp".into(), ts.clone()),
                ("x-zm-signature".into(), signature),
                ("content-type".into(), "application/json".into()),
            ],
        )
        .await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["encryptedToken"],
            hmac_of(secret, "pt-1"),
            "{secret}"
        );
    }
}
