//! `POST /v1/join`: everything a mobile app needs to join or start a meeting, in one round
//! trip: the Meeting SDK signature, the SDK key, and the user's ZAK and OBF token when asked.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::app::AppState;
use crate::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::input::{self, JsonObject};
use crate::scope::Scope;
use crate::signing;
use crate::zoom::{UserToken, UserTokenKind};

use super::meeting_sdk::{meeting_sdk_app, read_signature_request};
use super::users::s2s_account;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/join", post(issue_join_bundle))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinResponse {
    signature: String,
    sdk_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    zak: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    obf_token: Option<String>,
    /// When the first part of the bundle expires.
    expires_at: String,
    /// Whose token fetched the ZAK / OBF token: `user_grant` or `account`.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
}

async fn issue_join_bundle(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<JoinResponse>, ApiError> {
    caller.require(Scope::MeetingSdkSignature)?;
    let JsonObject(mut fields) = body?;
    let signature_request = read_signature_request(&mut fields)?;
    let Some((meeting_number, role)) = signature_request.meeting.clone() else {
        return Err(ApiError::invalid("meetingNumber", "required"));
    };
    let user = match fields.string("userId", 128)? {
        Some(user) => caller.act_as(&input::user_id(&user)?)?,
        None => caller.act_as("me")?,
    };
    crate::audit::note_target(Some(&user), Some(&meeting_number.digits()));
    // A host needs a ZAK to start the meeting; participants ask for one when they want it.
    let with_zak = fields.bool("withZak")?.unwrap_or(role == 1);
    let with_obf = fields.bool("withObf")?.unwrap_or(false);
    let account = fields.string("account", 64)?;
    fields.finish()?;
    if role == 1 {
        caller.require(Scope::MeetingSdkHost)?;
    }
    if with_zak {
        caller.require(Scope::ZakRead)?;
    }
    if with_obf {
        caller.require(Scope::ObfRead)?;
    }

    let settings = state.settings();
    let account = if with_zak || with_obf {
        s2s_account(&caller, &settings, account.as_deref())?
    } else {
        caller.account(&settings, account.as_deref())?
    };
    let app = meeting_sdk_app(account)?;

    let fetch = |wanted: bool, kind: UserTokenKind| {
        let state = state.clone();
        let account = account.name.clone();
        let user = user.clone();
        async move {
            match wanted {
                true => state.user_tokens.get(&account, &user, kind).await.map(Some),
                false => Ok(None),
            }
        }
    };
    let meeting_id = meeting_number.digits();
    let (zak, obf) = tokio::join!(
        fetch(with_zak, UserTokenKind::Zak),
        fetch(
            with_obf,
            UserTokenKind::OnBehalf {
                meeting_number: meeting_id
            }
        ),
    );
    let (zak, obf): (Option<UserToken>, Option<UserToken>) = (zak?, obf?);

    let signed = signing::meeting_sdk_signature(
        app,
        &signature_request,
        clock::now(),
        state.settings().iat_backdate_seconds,
    );
    let expires_at = [
        Some(signed.expires_at),
        zak.as_ref().map(|t| t.expires_at),
        obf.as_ref().map(|t| t.expires_at),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(signed.expires_at);
    Ok(Json(JoinResponse {
        signature: signed.token,
        sdk_key: app.client_id.clone(),
        source: zak.as_ref().or(obf.as_ref()).map(|t| t.source.as_str()),
        zak: zak.map(|t| t.token.expose_secret().to_string()),
        obf_token: obf.map(|t| t.token.expose_secret().to_string()),
        expires_at: clock::rfc3339(expires_at),
    }))
}
