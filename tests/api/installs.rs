//! Apps other Zoom accounts install: an admin authorises an admin-managed app once for their
//! whole account (`install: account`); ZAK and OBF tokens for any user of that account then go
//! through that install (`zoomAccount`), refreshed exactly once; `GET /v1/oauth/grants` lists
//! grants without tokens; the installer removing the app at Zoom ends the install.

use serde_json::{Value, json};
use ztv::emulator::Endpoint;
use ztv::scope::Scope;

use crate::grants::{admin_app, send_webhook};
use crate::helpers::oauth::{OAUTH_CLIENT, WEBHOOK_SECRET, callback, consent};
use crate::helpers::*;

/// The other Zoom account, its admin (who installs) and another of its users.
const OTHER_ACCOUNT: &str = "acc-other";
const CAROL_ID: &str = "uCarol03";
const DAVE_ID: &str = "uDave0004";

/// `prod`'s OAuth app made admin-managed, and Dave added to Carol's account.
async fn installable_app() -> (ZoomApp, String) {
    let (app, key) = admin_app(TestApp::builder().zoom().config(NO_RATE_LIMIT)).await;
    app.zoom.set_admin_managed(OAUTH_CLIENT, true);
    app.zoom
        .add_user(OTHER_ACCOUNT, DAVE_ID, "dave@example.org");
    app.zoom.set_consenting_user(CAROL_ID);
    (app, key)
}

/// Carol installs the app for her account, asked for by `key`.
async fn carol_installs(app: &ZoomApp, key: &str) {
    let response = app
        .post("/v1/oauth/authorize", key)
        .json(&json!({"install": "account", "userHint": CAROL_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let back = consent(body["authorizeUrl"].as_str().unwrap()).await;
    let response = callback(app, &back).await;
    assert_eq!(response.status(), 200);
}

/// The `uid` of a Zoom user token's payload.
fn uid_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["uid"].clone()
}

#[tokio::test]
async fn an_admins_install_serves_every_user_of_their_account() {
    let (app, key) = installable_app().await;
    carol_installs(&app, &key).await;

    let zak = app
        .get_with(
            &format!("/v1/users/{DAVE_ID}/zak?zoomAccount={OTHER_ACCOUNT}"),
            &key,
        )
        .await;
    assert_eq!(zak.status(), 200);
    let zak: Value = zak.json().await.unwrap();
    assert_eq!(zak["source"], "account_grant");
    assert_eq!(uid_of(zak["zak"].as_str().unwrap()), json!(DAVE_ID));

    let obf = app
        .get_with(
            &format!("/v1/users/dave@example.org/obf-token?meetingNumber=85746065432&zoomAccount={OTHER_ACCOUNT}"),
            &key,
        )
        .await;
    assert_eq!(obf.status(), 200);
    let obf: Value = obf.json().await.unwrap();
    assert_eq!(obf["source"], "account_grant");

    let bot = app
        .key(
            "bot",
            &[Scope::MeetingSdkSignature, Scope::ZakRead],
            Some("prod"),
        )
        .await;
    let join = app
        .join(
            &bot,
            json!({"meetingNumber": "85746065432", "role": 0, "userId": DAVE_ID,
                   "withZak": true, "zoomAccount": OTHER_ACCOUNT}),
        )
        .await;
    assert_eq!(join.status(), 200);
    let join: Value = join.json().await.unwrap();
    assert_eq!(join["source"], "account_grant");

    // Without the install named, Dave is not a user of prod's S2S account.
    let without = app
        .get_with(
            &format!("/v1/users/{DAVE_ID}/obf-token?meetingNumber=85746065432"),
            &key,
        )
        .await;
    assert_eq!(without.status(), 404);
}

#[tokio::test]
async fn a_zoom_account_without_an_install_or_in_another_form_is_refused() {
    let (app, key) = installable_app().await;
    assert_error(
        app.get_with(
            &format!("/v1/users/{DAVE_ID}/zak?zoomAccount={OTHER_ACCOUNT}"),
            &key,
        )
        .await,
        404,
        "not_found",
        "no account install",
    )
    .await;
    assert_error(
        app.get_with(&format!("/v1/users/{DAVE_ID}/zak?zoomAccount=a.b"), &key)
            .await,
        400,
        "invalid_request",
        "zoomAccount",
    )
    .await;
    assert_eq!(app.zoom.calls(Endpoint::Zak), 0, "Zoom was never asked");
}

#[tokio::test]
async fn only_an_api_key_with_grants_admin_starts_an_install() {
    let (app, _) = installable_app().await;
    let reader = app.key("reader", &[Scope::ZakRead], Some("prod")).await;
    let response = app
        .post("/v1/oauth/authorize", &reader)
        .json(&json!({"install": "account"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden", "grants:admin").await;
    let admin = app.key("admin2", &[Scope::GrantsAdmin], Some("prod")).await;
    let response = app
        .post("/v1/oauth/authorize", &admin)
        .json(&json!({"install": "everyone"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_request", "install").await;
}

#[tokio::test]
async fn an_expired_install_is_refreshed_exactly_once_for_many_callers() {
    let (app, key) = installable_app().await;
    app.zoom.set_user_token_lifetime(61);
    carol_installs(&app, &key).await;
    app.zoom.set_user_token_lifetime(3599);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    app.zoom.reset_calls();

    let calls = (0..40).map(|i| {
        let user = if i % 2 == 0 { DAVE_ID } else { CAROL_ID };
        let path = format!(
            "/v1/users/{user}/obf-token?meetingNumber=85746065432&zoomAccount={OTHER_ACCOUNT}"
        );
        let (app, key) = (&app, &key);
        async move { app.get_with(&path, key).await }
    });
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.zoom.calls(Endpoint::Refresh), 1);
    assert_eq!(app.zoom.calls(Endpoint::Obf), 40);
}

#[tokio::test]
async fn grants_are_listed_in_pages_without_tokens() {
    let (app, key) = installable_app().await;
    carol_installs(&app, &key).await;
    app.zoom.set_admin_managed(OAUTH_CLIENT, false);
    app.zoom.set_consenting_user(ALICE_ID);
    crate::grants::authorize_alice(&app, &key).await;

    let page = |query: String| {
        let (app, key) = (&app, &key);
        async move {
            let response = app.get_with(&format!("/v1/oauth/grants{query}"), key).await;
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let all: Value = serde_json::from_str(&page(String::new()).await).unwrap();
    let grants = all["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0]["kind"], "account");
    assert_eq!(grants[0]["zoomAccount"], OTHER_ACCOUNT);
    assert_eq!(grants[0]["user"], CAROL_ID.to_ascii_lowercase());
    assert_eq!(grants[0]["state"], "active");
    assert_eq!(grants[1]["kind"], "user");
    assert_eq!(grants[1]["zoomAccount"], S2S_ACCOUNT_ID);
    assert_eq!(grants[1]["email"], ALICE_EMAIL);
    assert!(all["next"].is_null());

    let first: Value = serde_json::from_str(&page("?limit=1".into()).await).unwrap();
    assert_eq!(first["grants"].as_array().unwrap().len(), 1);
    let next = first["next"].as_str().unwrap();
    let second: Value =
        serde_json::from_str(&page(format!("?limit=1&after={next}")).await).unwrap();
    assert_eq!(second["grants"][0]["kind"], "user");

    // Never a token: none of the stored ones appears in any answer.
    let (refresh, access) = crate::grants::alices_tokens(&app).await;
    let text = page(String::new()).await;
    assert!(!text.contains(&refresh) && !text.contains(&access));

    assert_error(
        app.get_with("/v1/oauth/grants?after=!!", &key).await,
        400,
        "invalid_request",
        "after",
    )
    .await;
    let reader = app.key("reader", &[Scope::ZakRead], Some("prod")).await;
    assert_error(
        app.get_with("/v1/oauth/grants", &reader).await,
        403,
        "forbidden",
        "grants:admin",
    )
    .await;
}

#[tokio::test]
async fn the_installer_removing_the_app_ends_the_install_and_no_one_else_does() {
    let (app, key) = installable_app().await;
    carol_installs(&app, &key).await;
    let now = ztv::clock::now();
    let installed = || async {
        let list: Value = app
            .get_with("/v1/oauth/grants", &key)
            .await
            .json()
            .await
            .unwrap();
        list["grants"].as_array().unwrap().len()
    };

    // Dave is a user of the account, not its installer: the install stays.
    let (body, headers) =
        app.zoom
            .deauthorization_webhook(WEBHOOK_SECRET, DAVE_ID, OAUTH_CLIENT, now);
    let answer: Value = send_webhook(&app, &body, &headers)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["grantsDeleted"], 0);
    assert_eq!(installed().await, 1);

    let (body, headers) =
        app.zoom
            .deauthorization_webhook(WEBHOOK_SECRET, CAROL_ID, OAUTH_CLIENT, now);
    let answer: Value = send_webhook(&app, &body, &headers)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["grantsDeleted"], 1);
    assert_eq!(installed().await, 0);
}

#[tokio::test]
async fn a_user_whose_own_grant_zoom_refused_is_served_by_their_accounts_install() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    // Bob authorises for himself; his grant records his Zoom account.
    app.zoom.set_consenting_user(BOB_ID);
    crate::helpers::oauth::authorize(&app, &key, BOB_ID).await;
    // Alice, an admin of the same account, installs the app for it.
    app.zoom.set_admin_managed(OAUTH_CLIENT, true);
    app.zoom.set_consenting_user(ALICE_ID);
    let response = app
        .post("/v1/oauth/authorize", &key)
        .json(&json!({"install": "account"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let back = consent(body["authorizeUrl"].as_str().unwrap()).await;
    assert_eq!(callback(&app, &back).await.status(), 200);
    // Zoom refuses Bob's own grant from now on.
    app.store
        .mark_needs_reauth("prod", BOB_ID, 0)
        .await
        .unwrap();

    let obf = app
        .get_with(
            &format!("/v1/users/{BOB_ID}/obf-token?meetingNumber=85746065432"),
            &key,
        )
        .await;
    assert_eq!(obf.status(), 200);
    let obf: Value = obf.json().await.unwrap();
    assert_eq!(obf["source"], "account_grant");
    assert_eq!(uid_of(obf["obfToken"].as_str().unwrap()), json!(BOB_ID));
}
