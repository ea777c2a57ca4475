//! `POST /v1/join`: everything a mobile app needs to join or start a meeting, in one round
//! trip: the Meeting SDK signature, the SDK key, and the user's ZAK and OBF token when asked.

use axum::Json;
use axum::extract::State;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::clock;
use crate::http::answer::Audited;
use crate::http::error::ApiError;
use crate::http::extract::{self, JsonObject, account_of, ttl_seconds};
use crate::http::extract::{meeting_sdk_app, read_signature_request, user_token_account};
use crate::http::openapi::{
    BodyErrors, CallerErrors, ZoomErrors, expiration_seconds_schema, role_schema,
};
use crate::http::openapi::{meeting_number_schema, token_source_schema};
use crate::scope::Scope;
use crate::signing;
use crate::zoom::{UserToken, UserTokenKind};
use crate::zoom_user::ZoomUser;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue_join_bundle))
}

/// The body of `POST /v1/join`; other fields are refused.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"meetingNumber": "85746065432", "role": 1}))]
// Documentation only: the handler reads the body field by field with `Fields`.
#[allow(dead_code, reason = "documentation only")]
struct JoinRequest {
    /// The meeting: 9–12 digits, as a string or a whole number.
    #[schema(schema_with = meeting_number_schema)]
    meeting_number: String,
    /// 0 to join as a participant, 1 to start as the host (needs `meeting-sdk:host`).
    #[schema(schema_with = role_schema)]
    role: u8,
    /// The signature's lifetime, in seconds.
    #[schema(schema_with = expiration_seconds_schema)]
    expiration_seconds: Option<u32>,
    /// Zoom's `video_webrtc_mode` claim (0/1); left out of the signature when not given.
    #[schema(minimum = 0, maximum = 1)]
    video_web_rtc_mode: Option<u8>,
    /// Whose ZAK / OBF token to fetch: a Zoom user ID, an email address, or `me` (an end user
    /// may name only themselves).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9._+@-]+$",
        default = "me"
    )]
    user_id: Option<String>,
    /// Fetch the user's ZAK (needs `zak:read`); by default only for `role: 1`.
    with_zak: Option<bool>,
    /// Fetch an On-Behalf-Of token for the meeting (needs `obf:read`).
    #[schema(default = false)]
    with_obf: Option<bool>,
    /// The ZAK's or OBF token's life to ask of Zoom, in seconds (Zoom's `ttl`; at most one
    /// year). A cached ZAK is reused only while at least this much of its life remains.
    #[schema(minimum = 60, maximum = 31536000)]
    ttl_seconds: Option<u32>,
    /// The account to act for; may be left out by a caller bound to one account, or when only
    /// one is configured.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
    /// Fetch the ZAK or OBF token through the admin install of the app for this Zoom account
    /// (`install: account`); `not_found` when there is none.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    zoom_account: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct JoinResponse {
    /// The Meeting SDK JWT (HS256) for the meeting and role.
    signature: String,
    /// The Meeting SDK client ID (SDK key).
    sdk_key: String,
    /// The user's ZAK, when asked for (`withZak`, by default for `role: 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    zak: Option<String>,
    /// The On-Behalf-Of token, when asked for (`withObf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    obf_token: Option<String>,
    /// When the first part of the bundle expires (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: String,
    /// Whose token fetched the ZAK / OBF token: `user_grant` or `account`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = token_source_schema)]
    source: Option<&'static str>,
}

/// Issue everything needed to join, in one round trip
///
/// For mobile apps: the Meeting SDK signature and SDK key, plus the user's ZAK and
/// On-Behalf-Of token when asked for, fetched from Zoom concurrently. Needs the scopes of what
/// it returns: `meeting-sdk:signature`, `meeting-sdk:host` for `role: 1`, `zak:read` with a
/// ZAK (the default for `role: 1`), `obf:read` with `withObf`.
#[utoipa::path(
    post,
    path = "/v1/join",
    tag = "join",
    operation_id = "issueJoinBundle",
    request_body = JoinRequest,
    security(
        ("apiKey" = ["meeting-sdk:signature"]),
        ("apiKeyHeader" = ["meeting-sdk:signature"]),
        ("endUserJwt" = ["meeting-sdk:signature"]),
    ),
    responses(
        (status = 200, description = "The bundle", body = JoinResponse),
        CallerErrors,
        BodyErrors,
        ZoomErrors,
    ),
)]
async fn issue_join_bundle(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Audited<Json<JoinResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::MeetingSdkSignature)?;
        let JsonObject(mut fields) = body?;
        let signature_request = read_signature_request(&mut fields)?;
        let Some((meeting_number, role)) = signature_request.meeting.clone() else {
            return Err(ApiError::invalid("meetingNumber", "required"));
        };
        let user = match fields.string("userId", 128)? {
            Some(user) => extract::user_id("userId", &user)?,
            None => ZoomUser::me(),
        };
        let user = caller.act_as(&user)?;
        facts.user(&user);
        facts.target(&meeting_number.digits());
        // A host needs a ZAK to start the meeting; participants ask for one when they want it.
        let with_zak = fields.bool("withZak")?.unwrap_or(role == 1);
        let with_obf = fields.bool("withObf")?.unwrap_or(false);
        let ttl = ttl_seconds(&mut fields)?;
        let account = fields.string("account", 64)?;
        let zoom_account = extract::zoom_account(&mut fields)?;
        fields.finish()?;
        // Zoom: an OBF token only joins, and the SDK takes a ZAK or an OBF token, not both.
        if with_obf && role == 1 {
            return Err(ApiError::invalid(
                "withObf",
                "an OBF token only joins: not with role 1 (a host starts with a ZAK)",
            ));
        }
        if with_obf && with_zak {
            return Err(ApiError::invalid(
                "withObf",
                "give withZak or withObf, not both: the Meeting SDK takes one or the other",
            ));
        }
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
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        if with_zak || with_obf {
            user_token_account(account)?;
        }
        let app = meeting_sdk_app(account)?;

        let budget = caller.upstream_budget(&settings);
        let fetch = |wanted: bool, kind: UserTokenKind| {
            let state = state.clone();
            let account = account.name.clone();
            let user = user.clone();
            let budget = budget.clone();
            let zoom_account = zoom_account.clone();
            async move {
                match wanted {
                    true => state
                        .user_tokens
                        .get(&account, &user, zoom_account.as_ref(), kind, &budget)
                        .await
                        .map(Some),
                    false => Ok(None),
                }
            }
        };
        let meeting_id = meeting_number.digits();
        let (zak, obf) = tokio::join!(
            fetch(with_zak, UserTokenKind::Zak { ttl }),
            fetch(
                with_obf,
                UserTokenKind::OnBehalf {
                    meeting_number: meeting_id,
                    ttl,
                }
            ),
        );
        let (zak, obf): (Option<UserToken>, Option<UserToken>) = (zak?, obf?);

        let signed = signing::meeting_sdk_signature(
            app,
            &signature_request,
            clock::now(),
            settings.iat_backdate_seconds,
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
    .await;
    Audited(facts, answer)
}
