//! `POST /v1/meeting-sdk/signature`: the Meeting SDK JWT a client needs to join a meeting.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::clock;
use crate::http::answer::Audited;
use crate::http::error::ApiError;
use crate::http::extract::JsonObject;
use crate::http::extract::{account_of, meeting_sdk_app, read_signature_request};
use crate::http::openapi::meeting_number_schema;
use crate::http::openapi::{BodyErrors, CallerErrors, expiration_seconds_schema, role_schema};
use crate::scope::Scope;
use crate::signing::{self};

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
    #[schema(schema_with = role_schema)]
    role: Option<u8>,
    /// The token's lifetime, in seconds.
    #[schema(schema_with = expiration_seconds_schema)]
    expiration_seconds: Option<u32>,
    /// Zoom's `video_webrtc_mode` claim (0/1); left out of the token when not given.
    #[schema(minimum = 0, maximum = 1)]
    video_web_rtc_mode: Option<u8>,
    /// The account to sign for; may be left out by a caller bound to one account, or when only
    /// one is configured.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
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
) -> Audited<Json<SignatureResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::MeetingSdkSignature)?;
        let JsonObject(mut fields) = body?;
        let input = read_signature_request(&mut fields)?;
        let account = fields.string("account", 64)?;
        fields.finish()?;
        if let Some((number, _)) = &input.meeting {
            facts.target(&number.digits());
        }
        if matches!(input.meeting, Some((_, 1))) {
            caller.require(Scope::MeetingSdkHost)?;
        }

        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let app = meeting_sdk_app(account)?;
        let signed = signing::meeting_sdk_signature(
            app,
            &input,
            clock::now(),
            settings.iat_backdate_seconds,
        );
        Ok(Json(SignatureResponse {
            signature: signed.token,
            sdk_key: app.client_id.clone(),
            expires_at: clock::rfc3339(signed.expires_at),
        }))
    }
    .await;
    Audited(facts, answer)
}
