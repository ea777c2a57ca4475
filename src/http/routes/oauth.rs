//! Users who authorise the app themselves: `POST /v1/oauth/authorize` starts Zoom's
//! authorization-code flow, `GET /v1/oauth/callback` finishes it and stores the grant, and
//! `DELETE /v1/oauth/grants/{userId}` removes a grant and every cached token of its user.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::AuditFacts;
use crate::auth::caller::Caller;
use crate::config::{Account, UserOAuthApp};
use crate::grants::{Authorized, UserGrants};
use crate::http::answer::Audited;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{self, JsonObject, account_of};
use crate::http::extract::{UserPath, user_of};
use crate::http::openapi::{AccountParam, UserIdParam};
use crate::http::openapi::{
    BadRequest, BodyErrors, CallerErrors, Forbidden, Internal, NotFound, RequestTimeout,
    UpstreamError, UpstreamUnavailable,
};
use crate::scope::Scope;
use crate::store::{GrantKind, OAuthState};
use crate::zoom_user::ZoomUser;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_authorization))
        .routes(routes!(finish_authorization))
        .routes(routes!(delete_grant))
        .routes(routes!(list_grants))
}

/// The body of `POST /v1/oauth/authorize`; other fields are refused.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Documentation only: the handler reads the body field by field with `Fields`.
#[allow(dead_code, reason = "documentation only")]
struct AuthorizeRequest {
    /// The account whose user OAuth app to authorise; may be left out by a caller bound to one
    /// account, or when only one is configured.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
    /// API keys only, and then required for a user's own grant: the Zoom user (email or user
    /// ID) who must sign in to Zoom. For an account install, optional: the admin who must.
    /// An end user always authorises for themselves.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._+@-]+$")]
    user_hint: Option<String>,
    /// `user` (default): the signed-in user's own grant. `account`: an admin installs the app
    /// for their whole Zoom account (an admin-managed app; API keys with `grants:admin`
    /// only); ZAK and OBF tokens for any user of that account then use it.
    install: Option<InstallKind>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum InstallKind {
    User,
    Account,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthorizeResponse {
    /// Zoom's authorization page (`response_type=code`, `client_id`, `redirect_uri`, and a
    /// single-use `state` that expires in 10 minutes); send the user's browser there.
    #[schema(
        format = "uri",
        example = "https://zoom.us/oauth/authorize?response_type=code&client_id=abc\
            &redirect_uri=https%3A%2F%2Fztv.example.com%2Fv1%2Foauth%2Fcallback&state=q1w2e3"
    )]
    authorize_url: String,
}

fn grants(state: &AppState) -> Result<&UserGrants, ApiError> {
    state
        .grants
        .as_deref()
        .ok_or_else(|| ApiError::not_found("no account has user OAuth configured"))
}

fn oauth_app(grants: &UserGrants, account: &Account) -> Result<Arc<UserOAuthApp>, ApiError> {
    grants.app(&account.name).ok_or_else(|| {
        ApiError::not_found(format!(
            "account `{}` has no user OAuth app (accounts.{}.user_oauth)",
            account.name, account.name
        ))
    })
}

/// Start a user's authorisation of the app
///
/// Returns the Zoom URL where the user authorises the account's user-managed OAuth app; Zoom
/// then sends the browser to `GET /v1/oauth/callback`. A signed-in end user authorises for
/// themselves; an API key needs scope `grants:admin` and names the user in `userHint`.
#[utoipa::path(
    post,
    path = "/v1/oauth/authorize",
    tag = "oauth",
    operation_id = "startAuthorization",
    request_body(
        content = Option<AuthorizeRequest>,
        description = "Optional for an end user; an API key sends `userHint`.",
    ),
    security(
        ("apiKey" = ["grants:admin"]),
        ("apiKeyHeader" = ["grants:admin"]),
        ("endUserJwt" = []),
    ),
    responses(
        (status = 200, description = "Where to send the user", body = AuthorizeResponse),
        CallerErrors,
        BodyErrors,
    ),
)]
async fn start_authorization(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Audited<Json<AuthorizeResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        let JsonObject(mut fields) = body?;
        let account = fields.string("account", 64)?;
        let user_hint = fields.string("userHint", 128)?;
        let install = match fields.string("install", 16)?.as_deref() {
            None | Some("user") => GrantKind::User,
            Some("account") => GrantKind::Account,
            Some(_) => {
                return Err(ApiError::invalid(
                    "install",
                    "must be \"user\" or \"account\"",
                ));
            }
        };
        fields.finish()?;
        // An end user authorises for themselves; an API key needs grants:admin and names whom
        // (for an account install, optionally: the admin who must sign in).
        let user_hint = match (caller.end_user(), install) {
            (Some(_), GrantKind::Account) => {
                return Err(ApiError::forbidden(
                    "an account install needs an API key with grants:admin",
                ));
            }
            (Some(me), GrantKind::User) => {
                if user_hint.is_some() {
                    return Err(ApiError::invalid("userHint", "only API keys name a user"));
                }
                Some(me.clone())
            }
            (None, _) => {
                caller.require(Scope::GrantsAdmin)?;
                match (user_hint, install) {
                    (Some(hint), _) => Some(extract::user_id("userHint", &hint)?),
                    (None, GrantKind::Account) => None,
                    (None, GrantKind::User) => {
                        return Err(ApiError::invalid("userHint", "required for API keys"));
                    }
                }
            }
        };
        if let Some(user) = &user_hint {
            facts.user(user);
        }
        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let grants = grants(&state)?;
        oauth_app(grants, account)?;
        let url = grants
            .start_authorization(
                account.oauth_url(&settings.zoom),
                &account.name,
                &caller.name,
                install,
                user_hint.as_ref(),
            )
            .await?;
        Ok(Json(AuthorizeResponse {
            authorize_url: url.into(),
        }))
    }
    .await;
    Audited(facts, answer)
}

/// How the callback ended, told to the browser.
enum Outcome {
    Authorized { email: ZoomUser },
    Failed(ApiError),
}

/// Finish a user's authorisation (Zoom's redirect)
///
/// Where Zoom sends the user's browser after the authorisation page: trades the code, learns
/// the Zoom user, checks they are the one the authorisation was for, and stores the grant.
/// No credentials: the single-use `state` binds the request to the one that started it. With
/// `user_oauth.done_url` the answer is a redirect there carrying the outcome; without, a small
/// page on success and an error body on failure.
#[utoipa::path(
    get,
    path = "/v1/oauth/callback",
    tag = "oauth",
    operation_id = "finishAuthorization",
    params(
        (
            "state" = String,
            Query,
            description = "The `state` of the authorize URL: single-use, valid for 10 minutes.",
            min_length = 1,
            max_length = 256,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$",
        ),
        (
            "code" = Option<String>,
            Query,
            description = "Zoom's authorization code; required unless `error` is given.",
            min_length = 1,
            max_length = 2048,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$",
        ),
        (
            "error" = Option<String>,
            Query,
            description = "Zoom's reason when the user did not authorise the app.",
            min_length = 1,
            max_length = 256,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$",
        ),
    ),
    security(()),
    responses(
        (
            status = 302,
            description = "With `done_url`: to it, with `status=ok&user=…` or \
                `status=error&error=<code>&message=…` added to its query",
            headers(("Location" = String, description = "`done_url` with the outcome")),
        ),
        (
            status = 200,
            description = "Without `done_url`: a small page saying Zoom is connected",
            content_type = "text/html",
            body = String,
        ),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 500, response = Internal),
        (status = 502, response = UpstreamError),
        (status = 503, response = UpstreamUnavailable),
    ),
)]
async fn finish_authorization(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut fields = match extract::query_fields(query.as_deref()) {
        Ok(fields) => fields,
        Err(error) => return error.into_response(),
    };
    let code = fields.string("code", 2048).ok().flatten();
    let given_state = fields.string("state", 256).ok().flatten();
    let zoom_error = fields.string("error", 256).ok().flatten();
    // Zoom may add parameters of its own; they are not ours to refuse here.
    let Some(given_state) = given_state else {
        return ApiError::invalid("state", "required").into_response();
    };
    let grants = match grants(&state) {
        Ok(grants) => grants,
        Err(error) => return error.into_response(),
    };
    let pending = match grants.take_pending(&given_state).await {
        Ok(pending) => pending,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let Some(pending) = pending else {
        return ApiError::invalid("state", "unknown, already used or expired; start again")
            .into_response();
    };
    let mut facts = AuditFacts::by(pending.caller.as_str());
    facts.account(&pending.account);
    let settings = state.settings();
    let Some(account) = settings.accounts.get(&pending.account) else {
        return ApiError::not_found("the account of this authorisation is gone").into_response();
    };
    let outcome = match (code, zoom_error) {
        (_, Some(error)) => Outcome::Failed(ApiError::new(
            ErrorCode::UpstreamError,
            format!("Zoom did not authorise the app ({error})"),
        )),
        (None, None) => Outcome::Failed(ApiError::invalid("code", "required")),
        (Some(code), None) => complete(&state, grants, &pending, &code).await,
    };
    let done_url = grants
        .app(&account.name)
        .and_then(|app| app.done_url.clone());
    if let Outcome::Authorized { email } = &outcome {
        facts.user(email);
    }
    let mut response = match (outcome, done_url) {
        (Outcome::Authorized { email }, Some(mut url)) => {
            url.query_pairs_mut().append_pair("status", "ok").append_pair("user", email.as_str());
            Redirect::to(url.as_str()).into_response()
        }
        (Outcome::Failed(error), Some(mut url)) => {
            url.query_pairs_mut()
                .append_pair("status", "error")
                .append_pair("error", error.code.as_str())
                .append_pair("message", &error.message);
            Redirect::to(url.as_str()).into_response()
        }
        (Outcome::Authorized { email }, None) => (
            StatusCode::OK,
            Html(format!(
                "<!doctype html><title>Zoom connected</title><p>Zoom is connected for {}. You can close this window.</p>\n",
                html_escape(email.as_str())
            )),
        )
            .into_response(),
        (Outcome::Failed(error), None) => error.into_response(),
    };
    response.extensions_mut().insert(facts);
    response
}

/// Completes the authorisation; tokens cached before the grant existed (fetched with the
/// account's token) are forgotten.
async fn complete(
    state: &AppState,
    grants: &UserGrants,
    pending: &OAuthState,
    code: &str,
) -> Outcome {
    match grants.complete_authorization(pending, code).await {
        Ok(Authorized { user, email, .. }) => {
            state.user_tokens.forget_user(&pending.account, &email);
            state.user_tokens.forget_user(&pending.account, &user);
            Outcome::Authorized { email }
        }
        Err(error) => Outcome::Failed(error.into()),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeleteGrantResponse {
    /// Zoom confirmed the revocation (`POST /oauth/revoke`): the app is uninstalled for the
    /// user. `false` when Zoom could not be reached or refused; the grant is deleted here all
    /// the same.
    revoked_at_zoom: bool,
}

/// Disconnect a user: revoke their grant at Zoom and delete it
///
/// Revokes the user's OAuth grant at Zoom (which uninstalls the app for them), then deletes it
/// here with every cached token of theirs, even when Zoom cannot be reached; later ZAK and
/// OBF tokens for them use the account's S2S token. The revocation is one Zoom call, charged
/// to the caller's budget. The user themself (an end user, as `me`), or an API key with scope
/// `grants:admin`.
#[utoipa::path(
    delete,
    path = "/v1/oauth/grants/{userId}",
    tag = "oauth",
    operation_id = "deleteGrant",
    params(
        UserIdParam,
        AccountParam,
    ),
    security(
        ("apiKey" = ["grants:admin"]),
        ("apiKeyHeader" = ["grants:admin"]),
        ("endUserJwt" = []),
    ),
    responses(
        (status = 200, description = "The grant and the user's cached tokens are gone", body = DeleteGrantResponse),
        CallerErrors,
    ),
)]
async fn delete_grant(
    State(state): State<AppState>,
    caller: Caller,
    path: UserPath,
    RawQuery(query): RawQuery,
) -> Audited<Json<DeleteGrantResponse>> {
    let mut facts = caller.audit_facts();
    let answer = async {
        let user = user_of(path)?;
        // The user themself, or an API key with grants:admin.
        let user = match caller.end_user() {
            Some(_) => caller.act_as(&user)?,
            None => {
                caller.require(Scope::GrantsAdmin)?;
                user
            }
        };
        facts.user(&user);
        let mut fields = extract::query_fields(query.as_deref())?;
        let account = fields.string("account", 64)?;
        fields.finish()?;
        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        grants(&state)?;
        let budget = caller.upstream_budget(&settings);
        let deleted = state
            .user_tokens
            .forget_grant(
                &account.name,
                &user,
                Some(&budget),
                Some(Arc::clone(&caller.name)),
            )
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no grant for that user in account `{}`",
                    account.name
                ))
            })?;
        Ok(Json(DeleteGrantResponse {
            revoked_at_zoom: deleted.revoked_at_zoom,
        }))
    }
    .await;
    Audited(facts, answer)
}

/// One grant in `GET /v1/oauth/grants`: never a token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct GrantSummary {
    /// `user`: a user's own grant; `account`: an admin's install for their Zoom account.
    #[schema(example = "user")]
    kind: &'static str,
    /// The Zoom account of the user, or the installed one (absent for grants made before ztv
    /// kept it).
    zoom_account: Option<String>,
    /// The user's Zoom ID (of an install: the installing admin's), ASCII case folded.
    user: String,
    /// Their email, ASCII case folded.
    email: String,
    /// The scopes Zoom granted, space-separated.
    scopes: String,
    /// `active`, or `needs_reauthorization` once Zoom refused the refresh token.
    #[schema(example = "active")]
    state: &'static str,
    /// When the access token held expires, the last refresh and the last use (RFC 3339).
    #[schema(format = DateTime)]
    access_expires_at: String,
    #[schema(format = DateTime)]
    last_refreshed_at: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct GrantList {
    grants: Vec<GrantSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<String>,
}

/// Most grants one page holds.
const PAGE_MAX: i64 = 200;

/// List the account's grants
///
/// The account's grants, users' own and account installs, in a stable order, a page at a
/// time: what each is, whose, its state and when it was last refreshed and used; never a
/// token. Scope `grants:admin`.
#[utoipa::path(
    get,
    path = "/v1/oauth/grants",
    tag = "oauth",
    operation_id = "listGrants",
    params(
        AccountParam,
        ("limit" = Option<u32>, Query, description = "Grants per page (default 50).", minimum = 1, maximum = 200),
        ("after" = Option<String>, Query, description = "The `next` of the previous page.", min_length = 1, max_length = 400, pattern = "^[A-Za-z0-9_-]+$"),
    ),
    security(
        ("apiKey" = ["grants:admin"]),
        ("apiKeyHeader" = ["grants:admin"]),
        ("endUserJwt" = ["grants:admin"]),
    ),
    responses(
        (status = 200, description = "A page of grants", body = GrantList),
        CallerErrors,
    ),
)]
async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Audited<Json<GrantList>> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::GrantsAdmin)?;
        let mut fields = extract::query_fields(query.as_deref())?;
        let account = fields.string("account", 64)?;
        let limit = fields.int_or_text("limit", 1..=PAGE_MAX)?.unwrap_or(50);
        let after = fields.string("after", 400)?;
        fields.finish()?;
        let after = match after {
            None => None,
            Some(cursor) => Some(
                URL_SAFE_NO_PAD
                    .decode(cursor.as_bytes())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| ApiError::invalid("after", "not a `next` of this route"))?,
            ),
        };
        let settings = state.settings();
        let account = account_of(&caller, &settings, account.as_deref(), &mut facts)?;
        let grants = grants(&state)?;
        let page = grants
            .list(
                Some(&account.name),
                after.as_deref().map(|key| (account.name.as_str(), key)),
                limit as u32,
            )
            .await?;
        let next = (page.len() as i64 == limit)
            .then(|| {
                page.last()
                    .map(|g| URL_SAFE_NO_PAD.encode(g.key.as_bytes()))
            })
            .flatten();
        let rfc3339 = |at: Option<i64>| at.map(crate::clock::rfc3339);
        let grants = page
            .into_iter()
            .map(|g| GrantSummary {
                state: g.state(),
                kind: g.kind.as_str(),
                zoom_account: g.zoom_account_id,
                user: g.user,
                email: g.email,
                scopes: g.scopes,
                access_expires_at: crate::clock::rfc3339(g.access_expires_at),
                last_refreshed_at: rfc3339(g.refreshed_at),
                last_used_at: rfc3339(g.last_used_at),
            })
            .collect();
        Ok(Json(GrantList { grants, next }))
    }
    .await;
    Audited(facts, answer)
}
