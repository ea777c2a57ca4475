//! `POST /v1/video-sdk/token`: the Video SDK session JWT.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::input::{Fields, JsonObject, check_text, describe};
use crate::scope::Scope;
use crate::signing::{self, VideoSdkClaimsInput, VideoUser};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/video-sdk/token", post(issue_video_token))
}

/// Zoom's data-centre regions for `geo_regions`.
const GEO_REGIONS: [&str; 12] = [
    "AU", "BR", "CA", "CN", "DE", "HK", "IN", "JP", "MX", "NL", "SG", "US",
];
/// Symbols Zoom allows in a session name besides letters, digits and spaces.
const SESSION_NAME_SYMBOLS: &str = "!#$%&()+-:;<=.>?@[]^_{}|~,\\";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VideoTokenResponse {
    signature: String,
    expires_at: String,
}

async fn issue_video_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Result<Json<VideoTokenResponse>, ApiError> {
    caller.require(Scope::VideoSdkToken)?;
    let JsonObject(mut fields) = body?;
    let input = read_video_request(&mut fields)?;
    crate::audit::note_target(None, Some(&input.session_name));
    let account = fields.string("account", 64)?;
    fields.finish()?;

    let settings = state.settings();
    let account = caller.account(&settings, account.as_deref())?;
    let app = account.video_sdk.as_ref().ok_or_else(|| {
        ApiError::not_found(format!(
            "account `{}` has no Video SDK credentials",
            account.name
        ))
    })?;
    let signed = signing::video_sdk_token(
        app,
        &input,
        clock::now(),
        state.settings().iat_backdate_seconds,
    );
    Ok(Json(VideoTokenResponse {
        signature: signed.token,
        expires_at: clock::rfc3339(signed.expires_at),
    }))
}

fn read_video_request(fields: &mut Fields) -> Result<VideoSdkClaimsInput, ApiError> {
    let session_name = fields
        .string("sessionName", 200)?
        .ok_or_else(|| ApiError::invalid("sessionName", "required"))?;
    if let Some(c) = session_name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == ' ' || SESSION_NAME_SYMBOLS.contains(*c)))
    {
        return Err(ApiError::invalid(
            "sessionName",
            format!("Zoom does not allow the character {c:?} in session names"),
        ));
    }
    let role = fields
        .int("role", 0..=1)?
        .ok_or_else(|| ApiError::invalid("role", "required"))? as u8;
    let expiration_seconds = fields
        .int(
            "expirationSeconds",
            signing::MIN_EXPIRATION_SECONDS..=signing::MAX_EXPIRATION_SECONDS,
        )?
        .unwrap_or(signing::DEFAULT_EXPIRATION_SECONDS);
    let user_key = fields.string("userKey", 36)?;
    let user_identity = fields.string("userIdentity", 35)?;
    let user = match (user_key, user_identity) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "userIdentity",
                "give userKey or userIdentity, not both",
            ));
        }
        (Some(key), None) => Some(VideoUser::Key(key)),
        (None, Some(identity)) => Some(VideoUser::Identity(identity)),
        (None, None) => None,
    };
    Ok(VideoSdkClaimsInput {
        session_name,
        role,
        expiration_seconds,
        user,
        session_key: fields.string("sessionKey", 36)?,
        geo_regions: geo_regions(fields)?,
        cloud_recording_option: fields.flag("cloudRecordingOption")?,
        cloud_recording_election: fields.flag("cloudRecordingElection")?,
        telemetry_tracking_id: fields.string("telemetryTrackingId", 256)?,
        video_webrtc_mode: fields.flag("videoWebRtcMode")?,
        audio_webrtc_mode: fields.flag("audioWebRtcMode")?,
    })
}

/// `geoRegions`: an array of region codes or a comma-separated string, joined with commas.
fn geo_regions(fields: &mut Fields) -> Result<Option<String>, ApiError> {
    const FIELD: &str = "geoRegions";
    let Some(value) = fields.take(FIELD) else {
        return Ok(None);
    };
    let items: Vec<String> = match value {
        Value::String(csv) => {
            check_text(FIELD, &csv, 64)?;
            csv.split(',').map(|s| s.trim().to_string()).collect()
        }
        Value::Array(values) => values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_string()),
                other => Err(ApiError::invalid(
                    FIELD,
                    format!("items must be strings, not {}", describe(&other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(ApiError::invalid(
                FIELD,
                format!(
                    "must be an array or a comma-separated string, not {}",
                    describe(&other)
                ),
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid(FIELD, "must name at least one region"));
    }
    let mut regions: Vec<&str> = Vec::with_capacity(items.len());
    for item in &items {
        let upper = item.to_ascii_uppercase();
        let Some(region) = GEO_REGIONS.iter().find(|r| **r == upper) else {
            return Err(ApiError::invalid(
                FIELD,
                format!("unknown region (known: {})", GEO_REGIONS.join(", ")),
            ));
        };
        if !regions.contains(region) {
            regions.push(region);
        }
    }
    Ok(Some(regions.join(",")))
}
