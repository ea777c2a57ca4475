//! What can go wrong when Zoom is asked, in the domain's terms; the HTTP edge decides how each
//! is answered (`http::error`).

/// Why a call to Zoom did not give what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ZoomError {
    /// Zoom could not be reached, timed out, failed (5xx), throttled us (429), or the breaker
    /// is open. `retry_after` in seconds.
    #[error("Zoom is unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<u64>,
    },
    /// The token endpoint refused the account's client ID or secret.
    #[error("account `{account}`: Zoom refused the Server-to-Server credentials ({detail})")]
    BadCredentials { account: String, detail: String },
    /// The account has no `s2s` section, so nothing can be fetched for it.
    #[error("account `{0}` has no Server-to-Server OAuth credentials")]
    NoS2sCredentials(String),
    /// No admin has installed the app for the named Zoom account (`zoomAccount`).
    #[error(
        "no account install of the app for Zoom account `{0}` (POST /v1/oauth/authorize with install: account)"
    )]
    NotInstalled(String),
    /// Zoom does not know the user.
    #[error("Zoom: {0}")]
    UserNotFound(String),
    /// The API refused the access token (revoked, app deactivated, secret rotated).
    #[error("Zoom refused the access token ({0})")]
    TokenRejected(String),
    /// Zoom refused a user's authorization code or refresh token (`invalid_grant`).
    #[error("Zoom refused the user's grant ({0})")]
    InvalidGrant(String),
    /// The user's grant is gone at Zoom (refresh token refused); they must authorise again.
    #[error(
        "reauthorization_required: the user must authorise the app again (POST /v1/oauth/authorize)"
    )]
    ReauthorizationRequired,
    /// Any other refusal, with Zoom's status, code and message.
    #[error("Zoom answered {status} (code {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer we could not read.
    #[error("unexpected answer from Zoom: {0}")]
    Malformed(String),
    /// The asking caller has spent its budget of Zoom calls (`rate_limit.upstream_per_minute`);
    /// Zoom was not asked. `retry_after` in seconds.
    #[error("this caller's budget of {limit} Zoom calls is spent; retry later")]
    CallerBudgetSpent { limit: String, retry_after: u64 },
    #[error("internal: {0}")]
    Internal(String),
}

impl From<tokio::task::JoinError> for ZoomError {
    fn from(error: tokio::task::JoinError) -> Self {
        ZoomError::Internal(format!("a Zoom call task failed: {error}"))
    }
}
