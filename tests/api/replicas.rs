//! Two replicas on one PostgreSQL database act as one: keys created, revoked or rotated
//! through the database are seen by both once their key rings have re-read it.

use std::time::Duration;

use serde_json::json;
use ztv::auth::api_clients;
use ztv::auth::scope::Scope;

use crate::helpers::*;

#[tokio::test]
async fn a_key_revoked_through_the_database_is_refused_by_both_replicas() {
    let Some(server) = postgres_url_or_skip() else {
        return;
    };
    let schema = PgSchema::create(&server).await;
    let first = spawn_app_on(Some(&schema.url()), "").await;
    let second = spawn_app_on(Some(&schema.url()), "").await;
    let key = first
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;
    second.wait_until_known(&key).await;
    assert_eq!(second.signature(&key, json!({})).await.status(), 200);

    // As `ztv clients revoke` would: a connection of its own to the shared database.
    let cli_store = ztv::store::connect(&secrecy::SecretString::from(schema.url()))
        .await
        .unwrap();
    api_clients::revoke(cli_store.as_ref(), "web")
        .await
        .unwrap();

    for replica in [&first, &second] {
        replica.wait_for_two_key_refreshes().await;
        let response = replica.signature(&key, json!({})).await;
        assert_error(response, 401, "unauthenticated", "revoked").await;
    }
}

#[tokio::test]
async fn a_key_rotated_on_one_replica_works_on_the_other() {
    let Some(server) = postgres_url_or_skip() else {
        return;
    };
    let schema = PgSchema::create(&server).await;
    let first = spawn_app_on(Some(&schema.url()), "").await;
    let second = spawn_app_on(Some(&schema.url()), "").await;
    let old = first
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;

    let (_, new) = api_clients::rotate(first.store.as_ref(), "web")
        .await
        .unwrap();
    let new = new.expose().to_string();
    second.wait_until_known(&new).await;

    assert_eq!(second.signature(&new, json!({})).await.status(), 200);
    assert_eq!(second.signature(&old, json!({})).await.status(), 401);
}

#[tokio::test]
async fn with_postgres_cut_cached_keys_keep_working_readyz_says_503_and_it_recovers() {
    let Some(server) = postgres_url_or_skip() else {
        return;
    };
    let schema = PgSchema::create(&server).await;
    let mut url = url::Url::parse(&schema.url()).unwrap();
    let target: std::net::SocketAddr = format!(
        "{}:{}",
        url.host_str().unwrap().replace("localhost", "127.0.0.1"),
        url.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = crate::proxy::Proxy::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let app = spawn_app_on(Some(url.as_str()), "").await;
    let key = app
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;

    proxy.cut();
    for _ in 0..10 {
        assert_eq!(app.signature(&key, json!({})).await.status(), 200);
    }
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["store"], "unreachable");

    proxy.restore();
    let mut back = false;
    for _ in 0..50 {
        if app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "readiness recovers by itself");
    assert_eq!(app.signature(&key, json!({})).await.status(), 200);
}
