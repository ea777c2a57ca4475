//! `GET /v1/users/{userId}/zak` and `GET /v1/users/{userId}/obf-token`: per-user tokens
//! fetched from Zoom with the account's S2S token.

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::app::AppState;
use crate::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::input::{self, Fields};
use crate::scope::Scope;
use crate::settings::{Account, Settings};
use crate::zoom::UserTokenKind;

use super::meeting_sdk::meeting_number;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{user_id}/zak", get(issue_zak))
        .route("/v1/users/{user_id}/obf-token", get(issue_obf_token))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ZakResponse {
    zak: String,
    expires_at: String,
    /// `user_grant` (the user's own token) or `account` (the account's S2S token).
    source: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObfResponse {
    obf_token: String,
    expires_at: String,
    source: &'static str,
}

/// The path's `userId`, with a rejection in our shape.
pub type UserPath = Result<Path<String>, axum::extract::rejection::PathRejection>;

pub fn user_of(path: UserPath) -> Result<String, ApiError> {
    let Path(user) = path.map_err(|_| ApiError::invalid("userId", "is not valid UTF-8"))?;
    input::user_id(&user)
}

/// The account to fetch user tokens for; it needs S2S credentials.
pub fn s2s_account<'s>(
    caller: &Caller,
    settings: &'s Settings,
    requested: Option<&str>,
) -> Result<&'s Account, ApiError> {
    let account = caller.account(settings, requested)?;
    if account.s2s.is_none() {
        return Err(ApiError::not_found(format!(
            "account `{}` has no Server-to-Server OAuth credentials",
            account.name
        )));
    }
    Ok(account)
}

async fn issue_zak(
    State(state): State<AppState>,
    caller: Caller,
    path: UserPath,
    RawQuery(query): RawQuery,
) -> Result<Json<ZakResponse>, ApiError> {
    caller.require(Scope::ZakRead)?;
    let user = caller.act_as(&user_of(path)?)?;
    crate::audit::note_target(Some(&user), None);
    let mut fields = input::query_fields(query.as_deref())?;
    let account = fields.string("account", 64)?;
    fields.finish()?;
    let settings = state.settings();
    let account = s2s_account(&caller, &settings, account.as_deref())?;

    let zak = state
        .user_tokens
        .get(&account.name, &user, UserTokenKind::Zak)
        .await?;
    Ok(Json(ZakResponse {
        zak: zak.token.expose_secret().to_string(),
        expires_at: clock::rfc3339(zak.expires_at),
        source: zak.source.as_str(),
    }))
}

async fn issue_obf_token(
    State(state): State<AppState>,
    caller: Caller,
    path: UserPath,
    RawQuery(query): RawQuery,
) -> Result<Json<ObfResponse>, ApiError> {
    caller.require(Scope::ObfRead)?;
    let user = caller.act_as(&user_of(path)?)?;
    crate::audit::note_target(Some(&user), None);
    let mut fields = input::query_fields(query.as_deref())?;
    let meeting_number = required_meeting_number(&mut fields)?;
    crate::audit::note_target(None, Some(&meeting_number));
    let account = fields.string("account", 64)?;
    fields.finish()?;
    let settings = state.settings();
    let account = s2s_account(&caller, &settings, account.as_deref())?;

    let obf = state
        .user_tokens
        .get(
            &account.name,
            &user,
            UserTokenKind::OnBehalf { meeting_number },
        )
        .await?;
    Ok(Json(ObfResponse {
        obf_token: obf.token.expose_secret().to_string(),
        expires_at: clock::rfc3339(obf.expires_at),
        source: obf.source.as_str(),
    }))
}

/// `meetingNumber` as the digits Zoom's `meeting_id` takes.
fn required_meeting_number(fields: &mut Fields) -> Result<String, ApiError> {
    meeting_number(fields)?
        .map(|number| number.digits())
        .ok_or_else(|| ApiError::invalid("meetingNumber", "required"))
}
