//! `POST /v1/s2s/token`: the account's cached Server-to-Server access token, for internal
//! services that must call Zoom's API without holding the client secret.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::app::AppState;
use crate::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::input::JsonObject;
use crate::scope::Scope;

use super::users::s2s_account;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/s2s/token", post(issue_s2s_token))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct S2sTokenResponse {
    access_token: String,
    token_type: String,
    expires_at: String,
    scope: String,
}

async fn issue_s2s_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<S2sTokenResponse>, ApiError> {
    caller.require(Scope::S2sToken)?;
    let JsonObject(mut fields) = body?;
    let account = fields.string("account", 64)?;
    fields.finish()?;
    let settings = state.settings();
    let account = s2s_account(&caller, &settings, account.as_deref())?;

    let token = state.s2s.get(&account.name).await?;
    Ok(Json(S2sTokenResponse {
        access_token: token.access_token.expose_secret().to_string(),
        token_type: token.token_type.clone(),
        expires_at: clock::rfc3339(token.expires_at),
        scope: token.scope.clone(),
    }))
}
