//! `POST /v1/diagnostics/token`: why a token is refused, checked against Zoom's rules and the
//! secrets ztv holds, without echoing the token or a secret.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::caller::Caller;
use crate::clock;
use crate::diagnostics::{self, Diagnosis, Question, Secrets};
use crate::http::answer::Audited;
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, meeting_number};
use crate::http::openapi::{BodyErrors, CallerErrors, meeting_number_schema};
use crate::scope::Scope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(diagnose_token))
}

/// The body of `POST /v1/diagnostics/token`; other fields are refused.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ…", "meetingNumber": "85746065432"}))]
// Documentation only: the handler reads the body field by field with `Fields`.
#[allow(dead_code, reason = "documentation only")]
struct DiagnoseRequest {
    /// The token to check: a Meeting SDK or Video SDK JWT, a ZAK or an OBF token.
    #[schema(min_length = 1, max_length = 8192)]
    token: String,
    /// The meeting the token should be for: 9–12 digits, as a string or a whole number.
    #[schema(schema_with = meeting_number_schema)]
    meeting_number: Option<String>,
}

/// What the token is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    MeetingSdk,
    VideoSdk,
    Zak,
    Obf,
    Unknown,
}

#[derive(Serialize, ToSchema)]
struct Finding {
    /// What was checked: a claim's name (`iat`, `mn`, `tpc`, …), `header.alg`, `lifetime`,
    /// `expiry`, `signature`, `format`, `kind`, …
    #[schema(example = "iat")]
    check: &'static str,
    ok: bool,
    #[schema(
        example = "issued 4m in the future: the clock of the host that signed it is ahead of ztv's"
    )]
    message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DiagnosisResponse {
    kind: Kind,
    /// Whether every finding is ok.
    ok: bool,
    /// One line: what the token is and for whom, or every problem found.
    #[schema(
        example = "Meeting SDK JWT is not valid: signed with account `dev`'s Meeting SDK secret but carries account `prod`'s Meeting SDK key"
    )]
    verdict: String,
    /// The account whose secret signed it (a ZAK's or OBF token's: whose Zoom account issued
    /// it); left out when none did or the caller is bound to another account.
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    /// When the token expires (RFC 3339, UTC), when its `exp` can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2025-01-01T14:00:00Z")]
    expires_at: Option<String>,
    findings: Vec<Finding>,
}

impl From<Diagnosis> for DiagnosisResponse {
    fn from(diagnosis: Diagnosis) -> Self {
        Self {
            kind: match diagnosis.kind {
                diagnostics::TokenKind::MeetingSdk => Kind::MeetingSdk,
                diagnostics::TokenKind::VideoSdk => Kind::VideoSdk,
                diagnostics::TokenKind::Zak => Kind::Zak,
                diagnostics::TokenKind::Obf => Kind::Obf,
                diagnostics::TokenKind::Unknown => Kind::Unknown,
            },
            ok: diagnosis.ok,
            verdict: diagnosis.verdict,
            account: diagnosis.account,
            expires_at: diagnosis.expires_at.map(clock::rfc3339),
            findings: diagnosis
                .findings
                .into_iter()
                .map(|f| Finding {
                    check: f.check,
                    ok: f.ok,
                    message: f.message,
                })
                .collect(),
        }
    }
}

/// Diagnose a token
///
/// Checks a Meeting SDK or Video SDK JWT against Zoom's rules (claim types, `mn`, `role`,
/// lifetime, clock skew, expiry) and names the configured secret that signed it, or the
/// mix-up (another account's secret, another app's, none of them). A ZAK or OBF token is read
/// (user, expiry), not verified: Zoom signs it. A broken token is a `200` with failed
/// findings; the token and secrets are never echoed. A caller bound to one account sees other
/// accounts only as "another account". Scope `diagnostics:read` (API keys only).
#[utoipa::path(
    post,
    path = "/v1/diagnostics/token",
    tag = "diagnostics",
    operation_id = "diagnoseToken",
    request_body = DiagnoseRequest,
    security(
        ("apiKey" = ["diagnostics:read"]),
        ("apiKeyHeader" = ["diagnostics:read"]),
        ("endUserJwt" = ["diagnostics:read"]),
    ),
    responses(
        (status = 200, description = "The findings and the verdict", body = DiagnosisResponse),
        CallerErrors,
        BodyErrors,
    ),
)]
async fn diagnose_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonObject, ApiError>,
) -> Audited<Json<DiagnosisResponse>> {
    let facts = caller.audit_facts();
    let answer = async {
        caller.require(Scope::DiagnosticsRead)?;
        let JsonObject(mut fields) = body?;
        let token = fields
            .string("token", diagnostics::MAX_TOKEN_BYTES)?
            .ok_or_else(|| ApiError::invalid("token", "required"))?;
        let meeting = meeting_number(&mut fields)?.map(|number| number.digits());
        fields.finish()?;
        let secrets = Secrets::from_settings(&state.settings(), caller.bound_account());
        let question = Question {
            token: &token,
            meeting_number: meeting.as_deref(),
            now: clock::now(),
        };
        Ok(Json(diagnostics::diagnose(&question, &secrets).into()))
    }
    .await;
    Audited(facts, answer)
}
