//! `POST /v1/s2s/token`: the account's cached Server-to-Server access token, for internal
//! services that must call Zoom's API without holding the client secret.

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
use crate::http::extract::JsonObject;
use crate::http::extract::account_of;
use crate::http::extract::s2s_account;
use crate::http::openapi::{BodyErrors, CallerErrors, ZoomErrors};
use crate::scope::Scope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue_s2s_token))
}

/// The body of `POST /v1/s2s/token`; other fields are refused.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Documentation only: the handler reads the body field by field with `Fields`.
#[allow(dead_code, reason = "documentation only")]
struct S2sTokenRequest {
    /// The account whose token to return; may be left out by a caller bound to one account,
    /// or when only one is configured.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct S2sTokenResponse {
    /// The account's Server-to-Server OAuth access token, for Zoom's REST API.
    access_token: String,
    /// As Zoom gave it: `bearer`.
    #[schema(example = "bearer")]
    token_type: String,
    /// When the token expires (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: String,
    /// The Zoom scopes the token carries, space-separated, as Zoom gave them.
    #[schema(example = "user:read:zak:admin user:read:token:admin")]
    scope: String,
    /// The API host to call with this token (REST paths go under `{apiUrl}/v2/`): the
    /// `api_url` Zoom gave with it (accounts on a regional cluster get theirs, e.g.
    /// `https://api-eu.zoom.us`), else the account's configured API base without `/v2`.
    #[schema(format = "uri", example = "https://api.zoom.us")]
    api_url: String,
}

/// The API host `token` is for, as Zoom writes it (no trailing `/`, no `/v2`).
fn api_host(token: &crate::zoom::S2sToken, configured_base: &url::Url) -> String {
    match &token.api_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let base = configured_base.as_str().trim_end_matches('/');
            base.strip_suffix("/v2").unwrap_or(base).to_string()
        }
    }
}

/// Issue the account's S2S access token
///
/// The account's cached Server-to-Server OAuth access token, for internal services that call
/// Zoom's API without holding the client secret, with the API host to call it on. Refreshed
/// ahead of expiry; concurrent callers on a cold cache cause one request to Zoom. Scope
/// `s2s:token`.
#[utoipa::path(
    post,
    path = "/v1/s2s/token",
    tag = "s2s",
    operation_id = "issueS2sToken",
    request_body(
        content = Option<S2sTokenRequest>,
        description = "Optional: only to name the account.",
    ),
    security(
        ("apiKey" = ["s2s:token"]),
        ("apiKeyHeader" = ["s2s:token"]),
        ("endUserJwt" = ["s2s:token"]),
    ),
    responses(
        (status = 200, description = "The access token", body = S2sTokenResponse),
        CallerErrors,
        BodyErrors,
        ZoomErrors,
    ),
)]
async fn issue_s2s_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Audited<Json<S2sTokenResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::S2sToken)?;
        let JsonObject(mut fields) = body?;
        let account = fields.string("account", 64)?;
        fields.finish()?;
        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let account = s2s_account(account)?;

        let token = state.s2s.get(&account.name).await?;
        Ok(Json(S2sTokenResponse {
            access_token: token.access_token.expose_secret().to_string(),
            token_type: token.token_type.clone(),
            expires_at: clock::rfc3339(token.expires_at),
            scope: token.scope.clone(),
            api_url: api_host(&token, account.api_url(&settings.zoom)),
        }))
    }
    .await;
    Audited(facts, answer)
}
