//! `GET /v1/users/{userId}/zak` and `GET /v1/users/{userId}/obf-token`: per-user tokens
//! fetched from Zoom with the account's S2S token.

use axum::Json;
use axum::extract::{RawQuery, State};
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
use crate::http::extract::{self, Fields, account_of, ttl_seconds};
use crate::http::extract::{UserPath, meeting_number, user_of, user_token_account};
use crate::http::openapi::token_source_schema;
use crate::http::openapi::{AccountParam, TtlParam, UserIdParam, ZoomAccountParam};
use crate::http::openapi::{CallerErrors, ZoomErrors};
use crate::scope::Scope;
use crate::zoom::UserTokenKind;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_zak))
        .routes(routes!(issue_obf_token))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ZakResponse {
    /// The user's ZAK, for the Meeting SDK's `zak` (start or join as that user).
    zak: String,
    /// When the ZAK expires (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: String,
    /// `user_grant` (the user's own token), `account_grant` (an admin's install for the
    /// user's Zoom account) or `account` (the account's S2S token).
    #[schema(schema_with = token_source_schema)]
    source: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ObfResponse {
    /// The On-Behalf-Of token, for the Meeting SDK's `obfToken`.
    obf_token: String,
    /// When the token expires (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: String,
    /// `user_grant` (the user's own token), `account_grant` (an admin's install for the
    /// user's Zoom account) or `account` (the account's S2S token).
    #[schema(schema_with = token_source_schema)]
    source: &'static str,
}

/// Fetch a user's ZAK
///
/// The user's Zoom Access Key, fetched from Zoom with the user's own grant when there is one,
/// else with the account's S2S token, and cached for less than its life. Scope `zak:read`
/// (an API key acts for any user; an end user only as `me`).
#[utoipa::path(
    get,
    path = "/v1/users/{userId}/zak",
    tag = "users",
    operation_id = "issueZak",
    params(
        UserIdParam,
        AccountParam,
        ZoomAccountParam,
        TtlParam,
    ),
    security(
        ("apiKey" = ["zak:read"]),
        ("apiKeyHeader" = ["zak:read"]),
        ("endUserJwt" = ["zak:read"]),
    ),
    responses(
        (status = 200, description = "The ZAK", body = ZakResponse),
        CallerErrors,
        ZoomErrors,
    ),
)]
async fn issue_zak(
    State(state): State<AppState>,
    caller: Caller,
    path: UserPath,
    RawQuery(query): RawQuery,
) -> Audited<Json<ZakResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::ZakRead)?;
        let user = caller.act_as(&user_of(path)?)?;
        facts.user(&user);
        let mut fields = extract::query_fields(query.as_deref())?;
        let ttl = ttl_seconds(&mut fields)?;
        let account = fields.string("account", 64)?;
        let zoom_account = extract::zoom_account(&mut fields)?;
        fields.finish()?;
        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let account = user_token_account(account)?;

        let budget = caller.upstream_budget(&settings);
        let zak = state
            .user_tokens
            .get(
                &account.name,
                &user,
                zoom_account.as_ref(),
                UserTokenKind::Zak { ttl },
                &budget,
            )
            .await?;
        Ok(Json(ZakResponse {
            zak: zak.token.expose_secret().to_string(),
            expires_at: clock::rfc3339(zak.expires_at),
            source: zak.source.as_str(),
        }))
    }
    .await;
    Audited(facts, answer)
}

/// Fetch a user's On-Behalf-Of token
///
/// The On-Behalf-Of token for one meeting, which lets a Meeting SDK app join meetings outside
/// its own account on the user's behalf; fetched from Zoom with the user's own grant when
/// there is one, else with the account's S2S token. Scope `obf:read` (an API key acts for any
/// user; an end user only as `me`).
#[utoipa::path(
    get,
    path = "/v1/users/{userId}/obf-token",
    tag = "users",
    operation_id = "issueObfToken",
    params(
        UserIdParam,
        (
            "meetingNumber" = String,
            Query,
            description = "The meeting the token is for: 9 to 12 digits.",
            example = "85746065432",
            pattern = "^[0-9]{9,12}$",
        ),
        AccountParam,
        ZoomAccountParam,
        TtlParam,
    ),
    security(
        ("apiKey" = ["obf:read"]),
        ("apiKeyHeader" = ["obf:read"]),
        ("endUserJwt" = ["obf:read"]),
    ),
    responses(
        (status = 200, description = "The OBF token", body = ObfResponse),
        CallerErrors,
        ZoomErrors,
    ),
)]
async fn issue_obf_token(
    State(state): State<AppState>,
    caller: Caller,
    path: UserPath,
    RawQuery(query): RawQuery,
) -> Audited<Json<ObfResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::ObfRead)?;
        let user = caller.act_as(&user_of(path)?)?;
        facts.user(&user);
        let mut fields = extract::query_fields(query.as_deref())?;
        let meeting_number = required_meeting_number(&mut fields)?;
        facts.target(&meeting_number);
        let ttl = ttl_seconds(&mut fields)?;
        let account = fields.string("account", 64)?;
        let zoom_account = extract::zoom_account(&mut fields)?;
        fields.finish()?;
        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let account = user_token_account(account)?;

        let budget = caller.upstream_budget(&settings);
        let obf = state
            .user_tokens
            .get(
                &account.name,
                &user,
                zoom_account.as_ref(),
                UserTokenKind::OnBehalf {
                    meeting_number,
                    ttl,
                },
                &budget,
            )
            .await?;
        Ok(Json(ObfResponse {
            obf_token: obf.token.expose_secret().to_string(),
            expires_at: clock::rfc3339(obf.expires_at),
            source: obf.source.as_str(),
        }))
    }
    .await;
    Audited(facts, answer)
}

/// `meetingNumber` as the digits Zoom's `meeting_id` takes.
fn required_meeting_number(fields: &mut Fields) -> Result<String, ApiError> {
    meeting_number(fields)?
        .map(|number| number.digits())
        .ok_or_else(|| ApiError::invalid("meetingNumber", "required"))
}
