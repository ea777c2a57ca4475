//! The scale-out topology with real processes: two `ztv serve` on different ports sharing one
//! PostgreSQL and one Redis, keys managed with the `ztv` CLI against the shared database.

use std::time::{Duration, Instant};

use ztv::emulator::{Emulator, Endpoint, Fault};

use crate::helpers::*;

const CACHE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Topology {
    zoom: Emulator,
    replicas: Vec<Process>,
    config: ConfigFile,
    prefix: String,
    key: String,
    http: reqwest::Client,
    _schema: PgSchema,
}

impl Topology {
    async fn s2s_token(&self, replica: usize) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/v1/s2s/token", self.replicas[replica].base()))
            .bearer_auth(&self.key)
            .send()
            .await
            .map(|r| r.status())
            .unwrap_or(reqwest::StatusCode::BAD_GATEWAY)
    }

    /// A replica's `ztv_api_key_refreshes_total`, read from its `/metrics`.
    async fn key_refreshes(&self, replica: usize) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.replicas[replica].base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("ztv_api_key_refreshes_total "))
            .map_or(0, |count| count.trim().parse().unwrap())
    }

    /// Returns once the replica has re-read the clients table twice: a change the CLI made
    /// before the call is in force there by then.
    async fn wait_for_two_key_refreshes(&self, replica: usize) {
        wait_for_two_key_refreshes(|| self.key_refreshes(replica)).await;
    }
}

/// Starts the emulator, a fresh schema and key prefix, two `ztv serve`, and a key made with
/// the CLI; `None` when PostgreSQL or Redis is not configured for the tests.
async fn topology() -> Option<Topology> {
    let schema = PgSchema::fresh().await?;
    let redis = redis_url_or_skip()?;
    let zoom = start_emulator().await;
    let prefix = format!("ztv-test-{}:", uuid::Uuid::new_v4().simple());
    let config = ConfigFile::empty();
    config.write(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[database]\nurl = \"{}\"\n[auth]\nkey_refresh_seconds = 1\n\
         [cache]\nredis_url = \"{redis}\"\nencryption_key = \"{CACHE_KEY}\"\nkey_prefix = \"{prefix}\"\n{}",
        schema.url(),
        zoom_config(&zoom, "")
    ));

    let replicas = vec![config.serve(&[]), config.serve(&[])];
    let key = config.create_key(&["--name", "svc", "--scope", "s2s:token"]);
    let topology = Topology {
        zoom,
        replicas,
        config,
        prefix,
        key,
        http: reqwest::Client::new(),
        _schema: schema,
    };
    // Both replicas pick the key up from the shared database.
    for replica in 0..2 {
        topology.wait_for_two_key_refreshes(replica).await;
        assert_eq!(topology.s2s_token(replica).await, 200);
    }
    topology.zoom.reset_calls();
    Some(topology)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_token_and_a_cli_revocation() {
    let Some(t) = topology().await else {
        return;
    };
    // The key check above already fetched the shared token: nothing more may reach Zoom.
    let calls = (0..60).map(|i| t.s2s_token(i % 2));
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        t.zoom.calls(Endpoint::Token),
        0,
        "both processes use the shared token"
    );

    let revoked = t.config.run(&["clients", "revoke", "svc"]);
    assert!(revoked.status.success());
    for replica in 0..2 {
        t.wait_for_two_key_refreshes(replica).await;
        assert_eq!(t.s2s_token(replica).await, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_process_holding_the_lock_is_killed_another_takes_over_once_it_expires() {
    let Some(t) = topology().await else {
        return;
    };
    // A cold shared cache, and a Zoom that hangs: the next fetcher holds the lock and waits.
    let mut redis = redis::Client::open(redis_url_or_skip().unwrap())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::AsyncCommands::del(&mut redis, format!("{}s2s:prod", t.prefix))
        .await
        .unwrap();
    t.zoom.inject(Endpoint::Token, Fault::Hang, None);

    // A third process with a cold local copy takes the lock, asks Zoom, and is killed there.
    let mut holder = t.config.serve(&[]);
    let asking = {
        let (http, key, holder_url) = (t.http.clone(), t.key.clone(), holder.base());
        tokio::spawn(async move {
            let _ = http
                .post(format!("{holder_url}/v1/s2s/token"))
                .bearer_auth(&key)
                .send()
                .await;
        })
    };
    let started = Instant::now();
    while t.zoom.calls(Endpoint::Token) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the holder never asked Zoom"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.kill().unwrap();
    let _ = holder.wait();
    asking.abort();
    t.zoom.clear_faults();

    // A fourth, also cold, waits out the dead holder's lock and then fetches itself.
    let taker = t.config.serve(&[]);
    let response = t
        .http
        .post(format!("{}/v1/s2s/token", taker.base()))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        t.zoom.calls(Endpoint::Token),
        2,
        "the dead holder's call and one takeover"
    );
}
