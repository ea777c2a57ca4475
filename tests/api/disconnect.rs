//! Disconnecting a user: `DELETE /v1/oauth/grants/{userId}` revokes the grant at Zoom
//! (`POST /oauth/revoke`) before deleting it, deletes it all the same when Zoom cannot be
//! reached, and says which; Zoom's `app_deauthorized` that follows finds nothing left.

use serde_json::Value;
use ztv::emulator::{Endpoint, Fault};
use ztv::store::AuditEvent;
use ztv::zoom_user::ZoomUser;

use crate::grants::{
    admin_app, alices_tokens, authorize_alice, expire_alices_access, grant_events, send_webhook,
};
use crate::helpers::oauth::{OAUTH_CLIENT, OAUTH_SECRET, WEBHOOK_SECRET};
use crate::helpers::*;

async fn disconnect_alice(app: &ZoomApp, key: &str) -> Value {
    let response = app
        .http
        .delete(app.url(&format!("/v1/oauth/grants/{ALICE_ID}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn alices_grant_is_gone(app: &ZoomApp) -> bool {
    app.store
        .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
        .await
        .unwrap()
        .is_none()
}

/// Zoom's answer to the app refreshing with `refresh_token` itself.
async fn refresh_at_zoom(app: &ZoomApp, refresh_token: &str) -> reqwest::StatusCode {
    app.http
        .post(format!("{}/oauth/token", app.zoom.base_url()))
        .basic_auth(OAUTH_CLIENT, Some(OAUTH_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn disconnecting_revokes_at_zoom_and_zooms_deauthorisation_then_finds_nothing() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    authorize_alice(&app, &key).await;
    let (refresh, access) = alices_tokens(&app).await;

    let answer = disconnect_alice(&app, &key).await;
    assert_eq!(answer, serde_json::json!({"revokedAtZoom": true}));
    assert_eq!(app.zoom.calls(Endpoint::Revoke), 1);
    assert!(alices_grant_is_gone(&app).await);
    // Zoom ended the whole grant: neither token works there any more.
    let me = app
        .http
        .get(format!("{}/users/me", app.zoom.api_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    assert_eq!(refresh_at_zoom(&app, &refresh).await, 400);
    let events = grant_events(&app, 2).await;
    assert_eq!(events[1], ("revoked".into(), ALICE_ID.to_ascii_lowercase()));

    // Zoom then announces the uninstall; nothing is left to delete.
    let now = ztv::clock::now();
    let (body, headers) =
        app.zoom
            .deauthorization_webhook(WEBHOOK_SECRET, ALICE_ID, OAUTH_CLIENT, now);
    let response = send_webhook(&app, &body, &headers).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["grantsDeleted"], 0);
}

#[tokio::test]
async fn when_zoom_cannot_revoke_the_grant_is_deleted_all_the_same() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    authorize_alice(&app, &key).await;
    let (refresh, _) = alices_tokens(&app).await;
    app.zoom.inject(Endpoint::Revoke, Fault::Status(503), None);

    let answer = disconnect_alice(&app, &key).await;
    assert_eq!(answer, serde_json::json!({"revokedAtZoom": false}));
    assert!(app.zoom.calls(Endpoint::Revoke) >= 1);
    assert!(alices_grant_is_gone(&app).await);
    let events = grant_events(&app, 2).await;
    assert_eq!(
        events[1],
        ("deleted_not_revoked".into(), ALICE_ID.to_ascii_lowercase())
    );
    let stored = app.store.list_audit(0, None, 10_000).await.unwrap();
    let event: &AuditEvent = stored
        .iter()
        .find(|e| e.outcome == "deleted_not_revoked")
        .unwrap();
    assert_eq!(event.caller.as_deref(), Some("admin"));
    // Not revoked: the grant still lives at Zoom, as the answer said.
    assert_eq!(refresh_at_zoom(&app, &refresh).await, 200);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_then_revoked() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    expire_alices_access(&app, &key).await;
    app.zoom.reset_calls();

    let answer = disconnect_alice(&app, &key).await;
    assert_eq!(answer, serde_json::json!({"revokedAtZoom": true}));
    assert_eq!(app.zoom.calls(Endpoint::Refresh), 1);
    assert_eq!(app.zoom.calls(Endpoint::Revoke), 1);
    assert!(alices_grant_is_gone(&app).await);
}

#[tokio::test]
async fn zooms_revoke_endpoint_takes_only_the_apps_own_live_tokens() {
    let (app, key) = admin_app(TestApp::builder().zoom()).await;
    authorize_alice(&app, &key).await;
    let (refresh, access) = alices_tokens(&app).await;
    let revoke = |client: &'static str, secret: &'static str, token: String| {
        app.http
            .post(format!("{}/oauth/revoke", app.zoom.base_url()))
            .basic_auth(client, Some(secret))
            .form(&[("token", token)])
            .send()
    };
    let wrong_secret = revoke(OAUTH_CLIENT, "not-the-secret", access.clone())
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), 400);
    let unknown = revoke(OAUTH_CLIENT, OAUTH_SECRET, "no-such-token".into())
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        refresh_at_zoom(&app, &refresh).await,
        200,
        "nothing revoked"
    );
}
