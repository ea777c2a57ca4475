//! The scale-out topology with real processes: two `ztv serve` on different ports sharing one
//! PostgreSQL and one Redis, keys managed with the `ztv` CLI against the shared database.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use ztv::emulator::{Emulator, Endpoint, Fault};

use crate::cli::{BIN, KillOnDrop, line_reader};
use crate::helpers::*;

const CACHE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Topology {
    zoom: Emulator,
    config: std::path::PathBuf,
    replicas: Vec<(KillOnDrop, String)>,
    prefix: String,
    key: String,
    http: reqwest::Client,
    _schema: PgSchema,
    _dir: tempfile::TempDir,
}

impl Topology {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("ZTV_CONFIG")
            .output()
            .unwrap()
    }

    async fn s2s_token(&self, replica: usize) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/v1/s2s/token", self.replicas[replica].1))
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
            .get(format!("{}/metrics", self.replicas[replica].1))
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
    let server = postgres_url_or_skip()?;
    let redis = redis_url_or_skip()?;
    let schema = PgSchema::create(&server).await;
    let zoom = start_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("ztv-test-{}:", uuid::Uuid::new_v4().simple());
    let text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[database]\nurl = \"{}\"\n[auth]\nkey_refresh_seconds = 1\n\
         [cache]\nredis_url = \"{redis}\"\nencryption_key = \"{CACHE_KEY}\"\nkey_prefix = \"{prefix}\"\n{}",
        schema.url(),
        zoom_config(&zoom, "")
    );
    let config = dir.path().join("ztv.toml");
    std::fs::write(&config, text).unwrap();

    let replicas = vec![start_replica(&config), start_replica(&config)];
    let mut topology = Topology {
        zoom,
        config,
        replicas,
        prefix,
        key: String::new(),
        http: reqwest::Client::new(),
        _schema: schema,
        _dir: dir,
    };
    let created = topology.cli(&[
        "clients",
        "create",
        "--name",
        "svc",
        "--scope",
        "s2s:token",
        "--json",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    topology.key = created["key"].as_str().unwrap().to_string();
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

    let revoked = t.cli(&["clients", "revoke", "svc"]);
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
    let (mut holder, holder_url) = start_replica(&t.config);
    let asking = {
        let (http, key) = (t.http.clone(), t.key.clone());
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
    holder.0.kill().unwrap();
    let _ = holder.0.wait();
    asking.abort();
    t.zoom.clear_faults();

    // A fourth, also cold, waits out the dead holder's lock and then fetches itself.
    let (_taker, taker_url) = start_replica(&t.config);
    let response = t
        .http
        .post(format!("{taker_url}/v1/s2s/token"))
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

/// Starts `ztv serve` with `config` (JSON logs) and returns it with its base URL.
pub fn start_replica(config: &std::path::Path) -> (KillOnDrop, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env_remove("ZTV_CONFIG")
        .env("ZTV_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let addr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("ztv serve starts");
        if line.contains("ztv is listening") {
            let parsed: Value = serde_json::from_str(&line).unwrap();
            break parsed["addr"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}
