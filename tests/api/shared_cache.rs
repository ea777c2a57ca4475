//! The S2S token shared by replicas through Redis: one token request for a cold cache across
//! two replicas, takeover from a dead lock holder, sealed values, recovery from a revoked
//! token, and an unreachable Redis.

use serde_json::Value;
use ztv::scope::Scope;

use crate::helpers::*;

const CACHE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn cache_config(redis_url: &str, prefix: &str) -> String {
    format!(
        "[cache]\nredis_url = \"{redis_url}\"\nencryption_key = \"{CACHE_KEY}\"\nkey_prefix = \"{prefix}\"\n"
    )
}

/// Two replicas on one database, one emulator and one fresh prefix of the test Redis, with a
/// key `svc` of `prod` with `scopes`, known to both; also Redis's URL and the prefix. `None`
/// without Redis. Per-caller limits are out of the way: the tests below send a hundred requests
/// at once with one key, and the default burst is a hundred, of which the probe of
/// `wait_until_known` takes one (on a fast machine the last request came back 429).
async fn two_replicas(
    zoom_keys: &str,
    scopes: &[Scope],
) -> Option<(String, String, ZoomApp, TestApp, String)> {
    let url = redis_url_or_skip()?;
    let prefix = prefix();
    let first = TestApp::builder()
        .zoom()
        .zoom_keys(zoom_keys)
        .config(&cache_config(&url, &prefix))
        .config(NO_RATE_LIMIT)
        .build()
        .await;
    let second = first.replica().await;
    let key = first.key("svc", scopes, Some("prod")).await;
    second.wait_until_known(&key).await;
    Some((url, prefix, first, second, key))
}

fn prefix() -> String {
    format!("ztv-test-{}:", uuid::Uuid::new_v4().simple())
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cold_cache_across_two_replicas_costs_one_token_request() {
    let Some((url, prefix, first, second, key)) = two_replicas("", &[Scope::S2sToken]).await else {
        return;
    };

    let calls = (0..100).map(|i| {
        let replica: &TestApp = if i % 2 == 0 { &first } else { &second };
        let key = key.clone();
        async move { replica.s2s_token(&key).await }
    });
    let responses = futures_util::future::join_all(calls).await;

    let mut tokens = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        tokens.insert(body["accessToken"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(first.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);

    // What Redis holds is sealed: the token is not in it.
    let mut redis = redis(&url).await;
    let stored: Vec<u8> = redis::AsyncCommands::get(&mut redis, format!("{prefix}s2s:prod"))
        .await
        .unwrap();
    let token = tokens.into_iter().next().unwrap();
    assert!(!stored.is_empty());
    assert!(!stored.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[tokio::test]
async fn when_the_lock_holder_dies_another_replica_takes_over_once_the_lock_expires() {
    let Some((url, prefix, first, second, key)) = two_replicas("", &[Scope::S2sToken]).await else {
        return;
    };
    // A replica took the lock and died: nobody will ever publish or unlock.
    let mut redis = redis(&url).await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}s2s-lock:prod"))
        .arg("dead-replica")
        .arg("PX")
        .arg(1500)
        .query_async(&mut redis)
        .await
        .unwrap();

    let (a, b) = tokio::join!(first.s2s_token(&key), second.s2s_token(&key));

    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    assert_eq!(first.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);
}

#[tokio::test]
async fn a_revoked_shared_token_is_replaced_once_for_both_replicas() {
    let Some((_, _, first, second, key)) = two_replicas(NO_REUSE, &[Scope::ZakRead]).await else {
        return;
    };
    assert_eq!(first.zak(&key, ALICE_ID).await.status(), 200);
    assert_eq!(second.zak(&key, ALICE_ID).await.status(), 200);
    assert_eq!(first.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);

    first.zoom.revoke_all_tokens();
    assert_eq!(first.zak(&key, ALICE_ID).await.status(), 200);
    assert_eq!(second.zak(&key, ALICE_ID).await.status(), 200);

    assert_eq!(
        first.zoom.token_requests_for(S2S_ACCOUNT_ID),
        2,
        "one new token for both"
    );
}

#[tokio::test]
async fn an_unreachable_redis_leaves_each_replica_working_on_its_own() {
    // Nothing listens on port 1: the service starts, warns once, and fetches by itself.
    let app = TestApp::builder()
        .zoom()
        .config(&cache_config("redis://127.0.0.1:1", &prefix()))
        .build()
        .await;
    let key = app.key("svc", &[Scope::S2sToken], Some("prod")).await;

    for _ in 0..5 {
        assert_eq!(app.s2s_token(&key).await.status(), 200);
    }
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn redis_cut_mid_run_fails_no_caller_while_the_token_is_valid_and_comes_back_by_itself() {
    let Some(url) = redis_url_or_skip() else {
        return;
    };
    let (proxy, through_proxy) = proxy::Proxy::in_front_of(&url, 6379).await;
    let app = TestApp::builder()
        .zoom()
        .zoom_keys(NO_REUSE)
        .config(&cache_config(&through_proxy, &prefix()))
        .build()
        .await;
    let key = app
        .key("svc", &[Scope::S2sToken, Scope::ZakRead], Some("prod"))
        .await;
    assert_eq!(app.s2s_token(&key).await.status(), 200);
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["accounts"]["prod"]["s2sToken"], "valid");

    proxy.cut();
    for _ in 0..20 {
        assert_eq!(app.s2s_token(&key).await.status(), 200);
        assert_eq!(app.zak(&key, ALICE_ID).await.status(), 200);
    }
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["redis"], "unreachable");
    assert_eq!(body["store"], "ok");

    proxy.restore();
    let mut back = false;
    for _ in 0..50 {
        // Traffic lets the replica notice; the probe runs at most once a second.
        let _ = app.s2s_token(&key).await;
        if readyz(&app).await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "the replica returned to Redis by itself");
    assert_eq!(app.zoom.token_requests_for(S2S_ACCOUNT_ID), 1);
}
