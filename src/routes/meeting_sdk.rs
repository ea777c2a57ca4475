//! `POST /v1/meeting-sdk/signature`: the Meeting SDK JWT a client needs to join a meeting.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::input::{Fields, JsonObject, describe};
use crate::scope::Scope;
use crate::settings::{Account, MeetingSdkCredentials};
use crate::signing::{self, MeetingNumber, MeetingSdkClaimsInput};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/meeting-sdk/signature", post(issue_signature))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignatureResponse {
    signature: String,
    sdk_key: String,
    expires_at: String,
}

async fn issue_signature(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<SignatureResponse>, ApiError> {
    caller.require(Scope::MeetingSdkSignature)?;
    let JsonObject(mut fields) = body?;
    let input = read_signature_request(&mut fields)?;
    let account = fields.string("account", 64)?;
    fields.finish()?;
    if let Some((number, _)) = &input.meeting {
        crate::audit::note_target(None, Some(&number.digits()));
    }
    if matches!(input.meeting, Some((_, 1))) {
        caller.require(Scope::MeetingSdkHost)?;
    }

    let settings = state.settings();
    let account = caller.account(&settings, account.as_deref())?;
    let app = meeting_sdk_app(account)?;
    let signed = signing::meeting_sdk_signature(
        app,
        &input,
        clock::now(),
        state.settings().iat_backdate_seconds,
    );
    Ok(Json(SignatureResponse {
        signature: signed.token,
        sdk_key: app.client_id.clone(),
        expires_at: clock::rfc3339(signed.expires_at),
    }))
}

/// The account's Meeting SDK app, or `not_found` when it has none.
pub fn meeting_sdk_app(account: &Account) -> Result<&MeetingSdkCredentials, ApiError> {
    account.meeting_sdk.as_ref().ok_or_else(|| {
        ApiError::not_found(format!(
            "account `{}` has no Meeting SDK credentials",
            account.name
        ))
    })
}

/// Reads `meetingNumber`, `role`, `expirationSeconds` and `videoWebRtcMode`.
pub fn read_signature_request(fields: &mut Fields) -> Result<MeetingSdkClaimsInput, ApiError> {
    let meeting_number = meeting_number(fields)?;
    let role = fields.int("role", 0..=1)?;
    let expiration_seconds = fields
        .int(
            "expirationSeconds",
            signing::MIN_EXPIRATION_SECONDS..=signing::MAX_EXPIRATION_SECONDS,
        )?
        .unwrap_or(signing::DEFAULT_EXPIRATION_SECONDS);
    let video_webrtc_mode = fields.flag("videoWebRtcMode")?;
    let meeting = match (meeting_number, role) {
        (Some(number), Some(role)) => Some((number, role as u8)),
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::invalid("role", "required with meetingNumber")),
        (None, Some(_)) => return Err(ApiError::invalid("meetingNumber", "required with role")),
    };
    Ok(MeetingSdkClaimsInput {
        meeting,
        expiration_seconds,
        video_webrtc_mode,
    })
}

const MEETING_NUMBER_DIGITS: std::ops::RangeInclusive<usize> = 9..=12;

/// A meeting number: 9–12 digits, as a JSON string or a whole number.
pub fn meeting_number(fields: &mut Fields) -> Result<Option<MeetingNumber>, ApiError> {
    const FIELD: &str = "meetingNumber";
    let wrong_length = || ApiError::invalid(FIELD, "must be 9 to 12 digits");
    let Some(value) = fields.take(FIELD) else {
        return Ok(None);
    };
    match value {
        Value::String(text) => {
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid(FIELD, "must contain digits only"));
            }
            if !MEETING_NUMBER_DIGITS.contains(&text.len()) {
                return Err(wrong_length());
            }
            Ok(Some(MeetingNumber::Text(text)))
        }
        Value::Number(n) => {
            let number = n.as_u64().ok_or_else(|| {
                ApiError::invalid(FIELD, "must be a whole number of 9 to 12 digits")
            })?;
            if !MEETING_NUMBER_DIGITS.contains(&number.to_string().len()) {
                return Err(wrong_length());
            }
            Ok(Some(MeetingNumber::Number(number)))
        }
        other => Err(ApiError::invalid(
            FIELD,
            format!("must be a string or number, not {}", describe(&other)),
        )),
    }
}
