//! `POST /v1/video-sdk/token`: the Video SDK session JWT.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::clock;
use crate::http::answer::Audited;
use crate::http::error::ApiError;
use crate::http::extract::{Fields, JsonObject, account_of, check_text, describe};
use crate::http::openapi::{BodyErrors, CallerErrors};
use crate::scope::Scope;
use crate::signing::{self, VideoSdkClaimsInput, VideoUser};
use crate::zoom_user::ZoomUser;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue_video_token))
}

/// The body of `POST /v1/video-sdk/token`; other fields are refused. Each optional field
/// becomes its claim only when given.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"sessionName": "support-4711", "role": 1, "userKey": "agent-17"}))]
// Documentation only: the handler reads the body field by field with `Fields`.
#[allow(dead_code, reason = "documentation only")]
struct VideoTokenRequest {
    /// The session name (`tpc`): letters, digits, spaces and `!#$%&()+-:;<=.>?@[]^_{}|~,\`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[A-Za-z0-9 !#$%&()+\-:;<=.>?@\[\]^_{}|~,\\]+$"
    )]
    session_name: String,
    /// 0 to join as a participant, 1 as the host (`role_type`; needs `video-sdk:host`).
    #[schema(minimum = 0, maximum = 1)]
    role: u8,
    /// The token's lifetime, in seconds.
    #[schema(minimum = 1800, maximum = 172800, default = 7200)]
    expiration_seconds: Option<u32>,
    /// The session password (`session_key`).
    #[schema(
        min_length = 1,
        max_length = 36,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    session_key: Option<String>,
    /// Your identifier for the user (`user_key`). Give this or `userIdentity`, not both. An end
    /// user may name only themselves; left out, it is their own identity.
    #[schema(
        min_length = 1,
        max_length = 36,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    user_key: Option<String>,
    /// The older name of `userKey` (claim `user_identity`). Give this or `userKey`, not both.
    #[schema(
        min_length = 1,
        max_length = 35,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    user_identity: Option<String>,
    /// Zoom data-centre regions (`geo_regions`), as an array or a comma-separated string;
    /// case-insensitive, duplicates dropped.
    #[schema(schema_with = geo_regions_schema)]
    geo_regions: Option<Vec<String>>,
    /// 0/1: `cloud_recording_option` (needs `video-sdk:host`).
    #[schema(minimum = 0, maximum = 1)]
    cloud_recording_option: Option<u8>,
    /// 0/1: `cloud_recording_election` (needs `video-sdk:host`).
    #[schema(minimum = 0, maximum = 1)]
    cloud_recording_election: Option<u8>,
    /// `telemetry_tracking_id`.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    telemetry_tracking_id: Option<String>,
    /// 0/1: `video_webrtc_mode`.
    #[schema(minimum = 0, maximum = 1)]
    video_web_rtc_mode: Option<u8>,
    /// 0/1: `audio_webrtc_mode`.
    #[schema(minimum = 0, maximum = 1)]
    audio_web_rtc_mode: Option<u8>,
    /// Accepted and ignored: Zoom's Video SDK sample still sends it, and no token claim
    /// carries it any more.
    #[schema(minimum = 0, maximum = 1, deprecated)]
    audio_compatible_mode: Option<u8>,
    /// The account to sign for; may be left out by a caller bound to one account, or when only
    /// one is configured.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
}

/// The schema of `geoRegions`: an array of region codes, or a comma-separated string of them.
fn geo_regions_schema() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(signing::GEO_REGIONS)),
                )
                .min_items(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64))
                .description(Some("Comma-separated region codes, e.g. `US,DE`")),
        )
        .examples([json!(["US", "DE"])])
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VideoTokenResponse {
    /// The Video SDK session JWT (HS256), signed with the account's Video SDK secret.
    signature: String,
    /// When the token expires (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: String,
}

/// Issue a Video SDK token
///
/// The session JWT a Video SDK client needs to join a session, signed locally with the
/// account's Video SDK key and secret; no call to Zoom. Scope `video-sdk:token`, and
/// `video-sdk:host` for `role: 1` or either cloud-recording field. An end user's `userKey`
/// defaults to their own identity, and they may name no one else.
#[utoipa::path(
    post,
    path = "/v1/video-sdk/token",
    tag = "video-sdk",
    operation_id = "issueVideoToken",
    request_body = VideoTokenRequest,
    security(
        ("apiKey" = ["video-sdk:token"]),
        ("apiKeyHeader" = ["video-sdk:token"]),
        ("endUserJwt" = ["video-sdk:token"]),
    ),
    responses(
        (status = 200, description = "The token", body = VideoTokenResponse),
        CallerErrors,
        BodyErrors,
    ),
)]
async fn issue_video_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Audited<Json<VideoTokenResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::VideoSdkToken)?;
        let JsonObject(mut fields) = body?;
        let mut input = read_video_request(&mut fields)?;
        if let Some(me) = caller.end_user() {
            facts.user(me);
        }
        facts.target(&input.session_name);
        // Hosting, and the session's cloud recording, are the host's.
        if input.role == 1
            || input.cloud_recording_option.is_some()
            || input.cloud_recording_election.is_some()
        {
            caller.require(Scope::VideoSdkHost)?;
        }
        if let Some(me) = caller.end_user() {
            input.user = own_video_user(me, input.user.take())?;
        }
        let account = fields.string("account", 64)?;
        fields.finish()?;

        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let app = account.video_sdk.as_ref().ok_or_else(|| {
            ApiError::not_found(format!(
                "account `{}` has no Video SDK credentials",
                account.name
            ))
        })?;
        let signed =
            signing::video_sdk_token(app, &input, clock::now(), settings.iat_backdate_seconds);
        Ok(Json(VideoTokenResponse {
            signature: signed.token,
            expires_at: clock::rfc3339(signed.expires_at),
        }))
    }
    .await;
    Audited(facts, answer)
}

/// An end user's `userKey`/`userIdentity`: their own identity (compared as a [`ZoomUser`]),
/// and by default `userKey` set to it when it fits Zoom's 36 characters.
fn own_video_user(me: &ZoomUser, asked: Option<VideoUser>) -> Result<Option<VideoUser>, ApiError> {
    match asked {
        None => Ok((me.key().len() <= 36).then(|| VideoUser::Key(me.key().to_string()))),
        Some(VideoUser::Key(text) | VideoUser::Identity(text))
            if !ZoomUser::parse(&text).is_ok_and(|named| named == *me) =>
        {
            Err(ApiError::forbidden(
                "end users may name only themselves in userKey or userIdentity",
            ))
        }
        Some(user) => Ok(Some(user)),
    }
}

fn read_video_request(fields: &mut Fields) -> Result<VideoSdkClaimsInput, ApiError> {
    let session_name = fields
        .string("sessionName", signing::SESSION_NAME_MAX_CHARS)?
        .ok_or_else(|| ApiError::invalid("sessionName", "required"))?;
    if let Some(c) = signing::session_name_disallowed_char(&session_name) {
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
    let user_key = fields.string("userKey", signing::USER_KEY_MAX_CHARS)?;
    let user_identity = fields.string("userIdentity", signing::USER_IDENTITY_MAX_CHARS)?;
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
    // Zoom's Video SDK sample still sends it; no claim carries it any more.
    fields.flag("audioCompatibleMode")?;
    Ok(VideoSdkClaimsInput {
        session_name,
        role,
        expiration_seconds,
        user,
        session_key: fields.string("sessionKey", signing::SESSION_KEY_MAX_CHARS)?,
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
        let Some(region) = signing::GEO_REGIONS.iter().find(|r| **r == upper) else {
            return Err(ApiError::invalid(
                FIELD,
                format!(
                    "unknown region (known: {})",
                    signing::GEO_REGIONS.join(", ")
                ),
            ));
        };
        if !regions.contains(region) {
            regions.push(region);
        }
    }
    Ok(Some(regions.join(",")))
}
