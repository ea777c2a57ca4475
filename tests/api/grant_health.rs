//! Grant health: grants in use are refreshed in the background before they expire (exactly
//! once across replicas), unused ones are left to age; a grant Zoom refuses is marked, counted
//! in `ztv_grants{state}` and announced to `grants.notify_url` with a signed, retried POST;
//! `ztv grants list|show|revoke` show and end grants without their tokens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use ztv::emulator::Endpoint;
use ztv::zoom_user::ZoomUser;

use crate::grants::{admin_app, authorize_alice};
use crate::helpers::oauth::OAUTH_CLIENT;
use crate::helpers::*;

/// Looks for grants to keep warm five times a second.
fn often(settings: &mut ztv::config::Settings) {
    settings.grant_health.check_every = Duration::from_millis(200);
}

/// Waits up to 10 s for `done`.
async fn eventually(mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened");
}

async fn alices_grant(app: &ZoomApp) -> ztv::store::GrantRow {
    app.store
        .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_grant_in_use_is_refreshed_before_it_expires_once_by_two_replicas() {
    let Some(schema) = PgSchema::fresh().await else {
        return;
    };
    let builder = TestApp::builder()
        .zoom()
        .database(&schema.url())
        .adjust(often);
    let (app, key) = admin_app(builder).await;
    // Its own pool and background refresh: only the database is shared.
    let replica = app.replica_with_own_pool().await;
    // A token that expires within the ten minutes the background refresh looks ahead.
    app.zoom.set_user_token_lifetime(300);
    authorize_alice(&app, &key).await;
    app.zoom.set_user_token_lifetime(3599);

    eventually(async || alices_grant(&app).await.refreshed_at.is_some()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        app.zoom.calls(Endpoint::Refresh),
        1,
        "one refresh for both replicas"
    );
    let row = alices_grant(&app).await;
    assert!(row.access_expires_at > ztv::clock::now() + 3000);
    drop(replica);
}

#[tokio::test]
async fn a_grant_unused_for_longer_than_keep_warm_days_is_left_to_age() {
    let (app, key) = admin_app(TestApp::builder().zoom().adjust(often)).await;
    app.zoom.set_user_token_lifetime(300);
    authorize_alice(&app, &key).await;
    // Made (and last used) 31 days ago, as far as the store knows.
    let mut row = alices_grant(&app).await;
    row.version = 0;
    app.store
        .put_grant(&row, ztv::clock::now() - 31 * 86_400)
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.zoom.calls(Endpoint::Refresh), 0);
    assert_eq!(alices_grant(&app).await.refreshed_at, None);
}

/// What `grants.notify_url` received: each request's headers and body, after answering the
/// first `fail_first` with 500.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    seen: Vec<(HeaderMap, String)>,
}

async fn start_receiver(fail_first: usize) -> (String, Arc<Mutex<Receiver>>) {
    let shared = Arc::new(Mutex::new(Receiver {
        fail_first,
        ..Receiver::default()
    }));
    let state = Arc::clone(&shared);
    let router = axum::Router::new().route(
        "/hooks/ztv",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = Arc::clone(&state);
            async move {
                let mut receiver = state.lock().unwrap();
                receiver.seen.push((headers, body));
                match receiver.seen.len() <= receiver.fail_first {
                    true => StatusCode::INTERNAL_SERVER_ERROR,
                    false => StatusCode::OK,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ztv", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, shared)
}

const NOTIFY_SECRET: &str = "notify-secret-for-tests";

#[tokio::test]
async fn a_grant_zoom_refuses_is_marked_counted_and_announced_signed() {
    let (url, received) = start_receiver(1).await;
    let builder = TestApp::builder().zoom().adjust(move |settings| {
        often(settings);
        settings.grant_health.notify_url = Some(url::Url::parse(&url).unwrap());
        settings.grant_health.notify_secret = Some(NOTIFY_SECRET.to_string().into());
    });
    let (app, key) = admin_app(builder).await;
    app.zoom.set_user_token_lifetime(300);
    authorize_alice(&app, &key).await;
    // Alice removes the app at Zoom, and no webhook reaches ztv: only a refresh can tell.
    app.zoom.deauthorize(ALICE_ID, OAUTH_CLIENT);

    eventually(async || alices_grant(&app).await.needs_reauth).await;
    eventually(async || received.lock().unwrap().seen.len() >= 2).await;
    // The metrics registry is the test binary's: other tests' apps set the gauge too, at
    // their start; this app sets it five times a second.
    eventually(async || {
        app.metrics()
            .await
            .contains("ztv_grants{state=\"needs_reauthorization\"} 1")
    })
    .await;

    let (headers, body) = received.lock().unwrap().seen[1].clone();
    let timestamp = headers["x-zm-request-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(NOTIFY_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-zm-signature"].to_str().unwrap(), expected);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "grant.needs_reauthorization");
    assert_eq!(event["payload"]["account"], "prod");
    assert_eq!(event["payload"]["kind"], "user");
    assert_eq!(event["payload"]["user"], ALICE_ID.to_ascii_lowercase());
    assert_eq!(event["payload"]["zoom_account"], S2S_ACCOUNT_ID);
    // Announced once (the retry repeats the same body), never with a token.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = received.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 2, "one failed attempt, one delivered");
    assert_eq!(seen[0].1, seen[1].1);
    let (refresh, access) = crate::grants::alices_tokens(&app).await;
    assert!(!body.contains(&refresh) && !body.contains(&access));
}

#[tokio::test]
async fn ztv_grants_lists_shows_and_revokes_without_tokens() {
    let config = ConfigFile::standard(&oauth_config_for_cli());
    let store = ztv::store::connect(&format!("sqlite://{}", config.db().display()).into())
        .await
        .unwrap();
    let grant = |id: &str, email: &str, needs_reauth: bool| ztv::store::GrantRow {
        account: "prod".into(),
        kind: ztv::store::GrantKind::User,
        zoom_user_id: id.into(),
        zoom_account_id: Some("acc-prod".into()),
        user_key: id.to_ascii_lowercase(),
        email: email.into(),
        refresh_token: b"sealed-refresh-never-printed".to_vec(),
        access_token: b"sealed-access-never-printed".to_vec(),
        access_expires_at: ztv::clock::now() + 3000,
        scopes: "user:read:zak".into(),
        version: 0,
        refreshing_until: None,
        needs_reauth,
        last_used_at: None,
        refreshed_at: None,
    };
    store
        .put_grant(&grant("uAnn0001", "ann@example.com", false), 100)
        .await
        .unwrap();
    store
        .put_grant(&grant("uBen0002", "ben@example.com", false), 100)
        .await
        .unwrap();
    store
        .mark_needs_reauth("prod", "uBen0002", 200)
        .await
        .unwrap();

    let run = |args: &'static [&'static str]| {
        let config = &config;
        let output = config.run(args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, list, _) = run(&["grants", "list"]);
    assert!(ok);
    assert!(
        list.contains("uann0001") && list.contains("active"),
        "{list}"
    );
    assert!(
        list.contains("uben0002") && list.contains("needs_reauthorization"),
        "{list}"
    );
    let (ok, json, _) = run(&["grants", "list", "--json"]);
    assert!(ok);
    let rows: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let (ok, shown, _) = run(&["grants", "show", "prod", "BEN@example.com"]);
    assert!(ok && shown.contains("needs_reauthorization"), "{shown}");
    for text in [&list, &json, &shown] {
        assert!(!text.contains("never-printed"));
    }

    // Revoke: Zoom cannot revoke tokens it never issued; the grant is deleted all the same.
    let (ok, revoked, err) = run(&["grants", "revoke", "prod", "ann@example.com"]);
    assert!(ok, "{err}");
    assert!(revoked.contains("deleted"), "{revoked}");
    let (ok, _, err) = run(&["grants", "show", "prod", "ann@example.com"]);
    assert!(!ok && err.contains("no such grant"), "{err}");
}

/// A user OAuth app for `prod` and a grants key, so the CLI can open and revoke grants.
fn oauth_config_for_cli() -> String {
    format!(
        "{}\n[accounts.prod.user_oauth]\nclient_id = \"{OAUTH_CLIENT}\"\n\
         client_secret = \"cli-secret\"\nredirect_uri = \"https://ztv.example.com/v1/oauth/callback\"\n\
         [zoom]\noauth_url = \"http://127.0.0.1:9\"\napi_url = \"http://127.0.0.1:9/v2\"\n\
         call_deadline_ms = 500\nretries = 0\n",
        "[grants]\nencryption_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\""
    )
}
