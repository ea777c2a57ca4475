//! Two replicas on one PostgreSQL database act as one: keys created, revoked or rotated
//! through the database are seen by both within five seconds.

use std::time::{Duration, Instant};

use serde_json::json;
use ztv::clients;
use ztv::scope::Scope;

use crate::helpers::*;

#[tokio::test]
async fn a_key_revoked_through_the_database_is_refused_by_both_replicas_within_five_seconds() {
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
    clients::revoke(cli_store.as_ref(), "web").await.unwrap();
    let revoked_at = Instant::now();

    for replica in [&first, &second] {
        loop {
            if replica.signature(&key, json!({})).await.status() == 401 {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(5),
                "still accepted after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    let (_, new) = clients::rotate(first.store.as_ref(), "web").await.unwrap();
    let new = new.expose().to_string();
    second.wait_until_known(&new).await;

    assert_eq!(second.signature(&new, json!({})).await.status(), 200);
    assert_eq!(second.signature(&old, json!({})).await.status(), 401);
}
