//! `POST /v1/webhooks/zoom`: Zoom's webhooks, verified by their signature
//! (`x-zm-signature` = `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` under the
//! webhook secret token). Answers Zoom's endpoint validation, and on `app_deauthorized`
//! deletes the user's grant and every cached token of theirs.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::clock;
use crate::config::Settings;
use crate::http::error::ApiError;
use crate::http::extract::BoundedBody;
use crate::http::openapi::{
    BadRequest, Internal, NotFound, PayloadTooLarge, RequestTimeout, Unauthenticated,
};

/// Oldest request timestamp accepted, in seconds (replays are refused past it).
const MAX_AGE_SECONDS: i64 = 300;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_zoom_event))
}

/// A Zoom webhook event, as Zoom sends it.
#[derive(ToSchema)]
#[schema(example = json!({
    "event": "endpoint.url_validation",
    "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
    "event_ts": 1_700_000_000_000_i64,
}))]
// Documentation only: the handler verifies the raw body, then reads what it needs.
#[allow(dead_code, reason = "documentation only")]
struct ZoomEvent {
    /// `endpoint.url_validation` is answered with the encrypted token; `app_deauthorized`
    /// deletes the user's grant; any other event is acknowledged and ignored.
    #[schema(example = "app_deauthorized")]
    event: String,
    /// `plainToken` for `endpoint.url_validation`; `user_id` and `client_id` for
    /// `app_deauthorized`.
    #[schema(value_type = Object)]
    payload: Value,
    /// When Zoom sent the event, in Unix milliseconds.
    event_ts: Option<i64>,
}

/// The answer to a verified event.
#[derive(ToSchema)]
#[serde(untagged)]
// Documentation only: the handler builds the JSON itself.
#[allow(dead_code, reason = "documentation only")]
enum WebhookAnswer {
    /// To `endpoint.url_validation`: the plain token and its HMAC-SHA256 under the secret.
    #[serde(rename_all = "camelCase")]
    UrlValidation {
        plain_token: String,
        /// Hex HMAC-SHA256 of `plainToken` under the secret that verified the request.
        encrypted_token: String,
    },
    /// To any other event.
    #[serde(rename_all = "camelCase")]
    Received {
        received: bool,
        /// `app_deauthorized` only: how many grants were deleted.
        grants_deleted: Option<u32>,
    },
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// The secret tokens that may sign an event, each with the accounts whose app it belongs to:
/// an app's own `webhook_secret_token`, and `webhooks.secret_token` for the apps without one.
fn secrets(settings: &Settings) -> Vec<(&SecretString, Vec<&str>)> {
    let mut secrets: Vec<(&SecretString, Vec<&str>)> = Vec::new();
    let mut by_default = Vec::new();
    for (name, account) in &settings.accounts {
        match account
            .user_oauth
            .as_ref()
            .and_then(|app| app.webhook_secret.as_ref())
        {
            Some(own) => secrets.push((own, vec![name.as_str()])),
            None => by_default.push(name.as_str()),
        }
    }
    if let Some(default) = &settings.webhook_secret {
        secrets.push((default, by_default));
    }
    secrets
}

/// Checks the signature under one of `secrets` and the timestamp (constant-time comparison);
/// the secret that verified it.
fn verify<'s>(
    secrets: &[(&'s SecretString, Vec<&'s str>)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<usize, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("x-zm-request-timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::unauthenticated("x-zm-request-timestamp is missing or not a number")
        })?;
    // `abs_diff`: a timestamp near i64::MIN or i64::MAX must not overflow the subtraction.
    if clock::now().abs_diff(timestamp) > MAX_AGE_SECONDS.unsigned_abs() {
        return Err(ApiError::unauthenticated(
            "webhook timestamp is older than 5 minutes",
        ));
    }
    let signature = header("x-zm-signature")
        .and_then(|s| s.strip_prefix("v0="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
        .ok_or_else(|| ApiError::unauthenticated("x-zm-signature is missing or malformed"))?;
    secrets
        .iter()
        .position(|(secret, _)| {
            let mut mac = mac(secret.expose_secret());
            mac.update(format!("v0:{timestamp}:").as_bytes());
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        })
        .ok_or_else(|| ApiError::unauthenticated("webhook signature does not verify"))
}

/// Receive a Zoom webhook event
///
/// Zoom's webhooks, verified by their signature (no ztv credentials): `x-zm-signature` is
/// `v0=` + hex HMAC-SHA256 of `v0:{x-zm-request-timestamp}:{raw body}` under an app's own
/// `webhook_secret_token` or `webhooks.secret_token`; timestamps more than 5 minutes off are
/// refused. The event applies only to the accounts whose app that secret belongs to. Answers
/// Zoom's endpoint validation, and on `app_deauthorized` deletes the user's grant and every
/// cached token of theirs.
#[utoipa::path(
    post,
    path = "/v1/webhooks/zoom",
    tag = "webhooks",
    operation_id = "receiveZoomEvent",
    params(
        (
            "x-zm-request-timestamp" = i64,
            Header,
            description = "When Zoom signed the request, in Unix seconds; part of the signed text.",
        ),
    ),
    request_body = ZoomEvent,
    security(("zoomWebhookSignature" = [])),
    responses(
        (status = 200, description = "Verified and handled", body = WebhookAnswer),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = Internal),
    ),
)]
async fn receive_zoom_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    BoundedBody(body): BoundedBody,
) -> Result<Json<Value>, ApiError> {
    let settings = state.settings();
    let secrets = secrets(&settings);
    if secrets.is_empty() {
        return Err(ApiError::not_found(
            "webhooks are not configured (webhooks.secret_token)",
        ));
    }
    let (secret, accounts) = &secrets[verify(&secrets, &headers, &body)?];
    let secret = secret.expose_secret();
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
            let user_id = crate::http::extract::user_id("payload.user_id", user_id)?;
            let client_id = payload["client_id"].as_str().unwrap_or("");
            // The admin who installed the app for their account removing it ends the install.
            let zoom_account = payload["account_id"]
                .as_str()
                .and_then(crate::zoom_user::ZoomAccountId::parse);
            let mut deleted = 0;
            // Only the accounts whose app the verifying secret belongs to.
            for name in accounts {
                if settings.accounts[*name]
                    .user_oauth
                    .as_ref()
                    .is_some_and(|app| app.client_id == client_id)
                {
                    if state
                        .user_tokens
                        .forget_grant(name, &user_id, None, None)
                        .await?
                        .is_some()
                    {
                        deleted += 1;
                    }
                    if let Some(id) = &zoom_account
                        && state.user_tokens.forget_install(name, id, &user_id).await?
                    {
                        deleted += 1;
                    }
                }
            }
            tracing::info!(deleted, "Zoom deauthorised the app for a user");
            Ok(Json(json!({"received": true, "grantsDeleted": deleted})))
        }
        _ => Ok(Json(json!({"received": true}))),
    }
}
