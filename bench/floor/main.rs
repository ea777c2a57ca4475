//! The floor of the benchmark (`bash bench/run.sh` starts it beside ztv): what a newcomer's
//! plain axum server does for the same two requests, with nothing of ztv's around it.
//!
//! * `GET /healthz` → `{"status":"ok"}`: axum's `Json`, nothing else.
//! * `POST /v1/meeting-sdk/signature` with `{"meetingNumber": "…", "role": 0}`: axum's `Json`
//!   extractor, then `jsonwebtoken::encode` (HS256) of the Meeting SDK claims, as in Zoom's
//!   sample. No auth, no logs, no metrics, no limits.
//!
//! `cargo run --release --example floor -- 127.0.0.1:9000`
//!
//! With `FLOOR_BUSY_US=N` the signer first spins for N µs: a floor that costs about what ztv
//! does per request, for `bash bench/compare.sh` to show which costs follow a request's CPU.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const SDK_KEY: &str = "floorSdkKey";
const SDK_SECRET: &str = "floor-sdk-secret-floor-sdk-secret";

/// How long the signer spins before its work (`FLOOR_BUSY_US`; none by default).
static BUSY: OnceLock<Duration> = OnceLock::new();

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureRequest {
    meeting_number: String,
    role: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Claims<'a> {
    app_key: &'a str,
    sdk_key: &'a str,
    mn: &'a str,
    role: u8,
    iat: u64,
    exp: u64,
    token_exp: u64,
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn signature(Json(request): Json<SignatureRequest>) -> Json<Value> {
    // Only when asked: the plain floor reads no clock here.
    let busy = BUSY.get().copied().unwrap_or_default();
    if !busy.is_zero() {
        let start = Instant::now();
        while start.elapsed() < busy {
            std::hint::spin_loop();
        }
    }
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let exp = iat + 7200;
    let claims = Claims {
        app_key: SDK_KEY,
        sdk_key: SDK_KEY,
        mn: &request.meeting_number,
        role: request.role,
        iat,
        exp,
        token_exp: exp,
    };
    let key = EncodingKey::from_secret(SDK_SECRET.as_bytes());
    let signature = encode(&Header::default(), &claims, &key).unwrap_or_default();
    Json(json!({"signature": signature, "sdkKey": SDK_KEY}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)));
    // A value that is not a number is refused, so a typo never measures the plain floor.
    let busy_us = std::env::var("FLOOR_BUSY_US").map_or(Ok(0), |v| v.parse::<u64>());
    let busy_us = busy_us.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "FLOOR_BUSY_US is not a number of µs",
        )
    })?;
    let _ = BUSY.set(Duration::from_micros(busy_us));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/meeting-sdk/signature", post(signature));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("floor listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
