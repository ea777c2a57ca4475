//! `POST /v1/meeting-sdk/signature`: the Meeting SDK JWT a client needs to join a meeting.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::auth::scope::Scope;
use crate::clock;
use crate::config::{Account, MeetingSdkCredentials};
use crate::http::error::ApiError;
use crate::http::extract::{Fields, JsonObject, describe};
use crate::http::openapi::{BodyErrors, CallerErrors};
use crate::signing::{self, MeetingNumber, MeetingSdkClaimsInput};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue_signature))
}

/// The body of `POST /v1/meeting-sdk/signature`; other fields are refused.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"meetingNumber": "85746065432", "role": 0}))]
// Documentation only: the handler reads the body field by field with `Fields`.
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct SignatureRequest {
    /// The meeting: 9–12 digits, as a string or a whole number. Give it with `role`, or leave
    /// both out for the native-SDK form of the token (no `mn`, no `role`).
    #[schema(schema_with = meeting_number_schema)]
    meeting_number: Option<String>,
    /// 0 to join as a participant, 1 as the host (needs `meeting-sdk:host`). Required with
    /// `meetingNumber`.
    #[schema(minimum = 0, maximum = 1)]
    role: Option<u8>,
    /// The token's lifetime, in seconds.
    #[schema(minimum = 1800, maximum = 172800, default = 7200)]
    expiration_seconds: Option<u32>,
    /// Zoom's `video_webrtc_mode` claim (0/1); left out of the token when not given.
    #[schema(minimum = 0, maximum = 1)]
    video_web_rtc_mode: Option<u8>,
    /// The account to sign for; may be left out by a caller bound to one account, or when only
    /// one is configured.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
}

/// The schema of `meetingNumber`: 9–12 digits, as a JSON string or a whole number.
pub(crate) fn meeting_number_schema() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{9,12}$")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(100_000_000))
                .maximum(Some(999_999_999_999_i64)),
        )
        .description(Some(
            "A Zoom meeting number: 9 to 12 digits, as a string or a whole number.",
        ))
        .examples([json!("85746065432")])
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SignatureResponse {
    /// The Meeting SDK JWT (HS256), signed with the account's Meeting SDK secret.
    signature: String,
    /// The Meeting SDK client ID (SDK key) the client passes along.
    sdk_key: String,
    /// When the signature expires (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: String,
}

/// Issue a Meeting SDK signature
///
/// The JWT a web or native Meeting SDK client needs to join a meeting, signed locally with the
/// account's Meeting SDK secret; no call to Zoom. Scope `meeting-sdk:signature`, and
/// `meeting-sdk:host` for `role: 1`.
#[utoipa::path(
    post,
    path = "/v1/meeting-sdk/signature",
    tag = "meeting-sdk",
    operation_id = "issueSignature",
    request_body(
        content = Option<SignatureRequest>,
        description = "Optional: an empty body gives the native-SDK form for the caller's account.",
    ),
    security(
        ("apiKey" = ["meeting-sdk:signature"]),
        ("apiKeyHeader" = ["meeting-sdk:signature"]),
        ("endUserJwt" = ["meeting-sdk:signature"]),
    ),
    responses(
        (status = 200, description = "The signature", body = SignatureResponse),
        CallerErrors,
        BodyErrors,
    ),
)]
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
    let signed =
        signing::meeting_sdk_signature(app, &input, clock::now(), settings.iat_backdate_seconds);
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
