//! Users authorising ztv at Zoom: the user-managed OAuth app of `prod` that
//! [`AppBuilder::grants`](super::AppBuilder::grants) configures, and the browser's part of
//! the flow (Zoom's consent page, the redirect back to the service).

use serde_json::{Value, json};
use ztv::emulator::{Emulator, EmulatorOAuthApp};

use super::app::TestApp;
use super::zoom::ALICE_ID;

pub const OAUTH_CLIENT: &str = "oauth-client-prod";
pub const OAUTH_SECRET: &str = "oauth-secret-prod-77aa";
/// Zoom redirects here; the tests send the same path and query to the service under test.
pub const REDIRECT_URI: &str = "http://ztv.test/v1/oauth/callback";
pub const GRANTS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const WEBHOOK_SECRET: &str = "whsec-test-secret";

/// `prod`'s user-managed OAuth app, the grants' encryption key and the webhook secret.
pub fn grants_config() -> String {
    format!(
        "[accounts.prod.user_oauth]\nclient_id = \"{OAUTH_CLIENT}\"\nclient_secret = \"{OAUTH_SECRET}\"\n\
         redirect_uri = \"{REDIRECT_URI}\"\n[grants]\nencryption_key = \"{GRANTS_KEY}\"\n\
         [webhooks]\nsecret_token = \"{WEBHOOK_SECRET}\"\n"
    )
}

/// Tells the emulator about the OAuth app; Alice is the user who consents.
pub fn register(zoom: &Emulator) {
    zoom.add_oauth_app(EmulatorOAuthApp {
        client_id: OAUTH_CLIENT.into(),
        client_secret: OAUTH_SECRET.into(),
        redirect_uri: REDIRECT_URI.into(),
    });
    zoom.set_consenting_user(ALICE_ID);
}

/// A client that shows redirects instead of following them, as the tests must see them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `POST /v1/oauth/authorize` for `user_hint`: the Zoom URL the user is sent to.
pub async fn authorize_url(app: &TestApp, key: &str, user_hint: &str) -> String {
    let response = app
        .post("/v1/oauth/authorize", key)
        .json(&json!({"account": "prod", "userHint": user_hint}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["authorizeUrl"].as_str().unwrap().to_string()
}

/// The browser's visit to Zoom's consent page: the path and query of the callback it is
/// sent back to.
pub async fn consent(authorize_url: &str) -> String {
    let response = no_redirects().get(authorize_url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    location
        .strip_prefix("http://ztv.test")
        .unwrap()
        .to_string()
}

/// The browser's visit to the service's callback, back from Zoom.
pub async fn callback(app: &TestApp, path_and_query: &str) -> reqwest::Response {
    no_redirects()
        .get(app.url(path_and_query))
        .send()
        .await
        .unwrap()
}

/// The emulator's consenting user authorises the app, asked for by `key` as `user_hint`.
pub async fn authorize(app: &TestApp, key: &str, user_hint: &str) {
    let back = consent(&authorize_url(app, key, user_hint).await).await;
    let response = callback(app, &back).await;
    assert_eq!(response.status(), 200);
}
