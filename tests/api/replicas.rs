//! Two replicas on one PostgreSQL database act as one: keys created, revoked or rotated
//! through the database are seen by both once their key rings have re-read it.

use std::time::Duration;

use serde_json::json;
use ztv::auth::api_clients;
use ztv::scope::Scope;

use crate::helpers::*;

/// A fresh schema, two replicas on it (each with a connection pool of its own) and a key `web`
/// made on the first; `None` without PostgreSQL.
async fn two_replicas() -> Option<(PgSchema, TestApp, TestApp, String)> {
    let schema = PgSchema::fresh().await?;
    let first = TestApp::builder().database(&schema.url()).build().await;
    let second = first.replica_with_own_pool().await;
    let key = first
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;
    Some((schema, first, second, key))
}

#[tokio::test]
async fn a_key_revoked_through_the_database_is_refused_by_both_replicas() {
    let Some((schema, first, second, key)) = two_replicas().await else {
        return;
    };
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
    let Some((_schema, first, second, old)) = two_replicas().await else {
        return;
    };

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
    let Some(schema) = PgSchema::fresh().await else {
        return;
    };
    let (proxy, through_proxy) = proxy::Proxy::in_front_of(&schema.url(), 5432).await;
    let app = TestApp::builder().database(&through_proxy).build().await;
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
