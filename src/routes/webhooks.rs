//! `POST /v1/webhooks/zoom`: Zoom's webhooks, verified by their signature
//! (`x-zm-signature` = `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` under the
//! webhook secret token). Answers Zoom's endpoint validation, and on `app_deauthorized`
//! deletes the user's grant and every cached token of theirs.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::app::AppState;
use crate::clock;
use crate::error::ApiError;

use super::oauth::forget_grant;

/// Oldest request timestamp accepted, in seconds (replays are refused past it).
const MAX_AGE_SECONDS: i64 = 300;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/zoom", post(receive_zoom_event))
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// Checks the signature and the timestamp; constant-time comparison.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("x-zm-request-timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::unauthenticated("x-zm-request-timestamp is missing or not a number")
        })?;
    if (clock::now() - timestamp).abs() > MAX_AGE_SECONDS {
        return Err(ApiError::unauthenticated(
            "webhook timestamp is older than 5 minutes",
        ));
    }
    let signature = header("x-zm-signature")
        .and_then(|s| s.strip_prefix("v0="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
        .ok_or_else(|| ApiError::unauthenticated("x-zm-signature is missing or malformed"))?;
    let mut mac = mac(secret);
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| ApiError::unauthenticated("webhook signature does not verify"))
}

async fn receive_zoom_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let settings = state.settings();
    let Some(secret) = settings.webhook_secret.as_ref() else {
        return Err(ApiError::not_found(
            "webhooks are not configured (webhooks.secret_token)",
        ));
    };
    let secret = secret.expose_secret();
    verify(secret, &headers, &body)?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::invalid("body", "is not a JSON Zoom event"))?;
    let payload = &event["payload"];
    match event["event"].as_str().unwrap_or("") {
        "endpoint.url_validation" => {
            let plain = payload["plainToken"]
                .as_str()
                .ok_or_else(|| ApiError::invalid("payload.plainToken", "required"))?;
            let mut mac = mac(secret);
            mac.update(plain.as_bytes());
            let encrypted = hex::encode(mac.finalize().into_bytes());
            Ok(Json(
                json!({"plainToken": plain, "encryptedToken": encrypted}),
            ))
        }
        "app_deauthorized" => {
            let user_id = payload["user_id"]
                .as_str()
                .ok_or_else(|| ApiError::invalid("payload.user_id", "required"))?;
            let client_id = payload["client_id"].as_str().unwrap_or("");
            let mut deleted = 0;
            for (name, account) in &state.settings().accounts {
                if account
                    .user_oauth
                    .as_ref()
                    .is_some_and(|app| app.client_id == client_id)
                    && forget_grant(&state, name, user_id).await?
                {
                    deleted += 1;
                }
            }
            tracing::info!(deleted, "Zoom deauthorised the app for a user");
            Ok(Json(json!({"received": true, "grantsDeleted": deleted})))
        }
        _ => Ok(Json(json!({"received": true}))),
    }
}
