//! What a `/v1` handler answers: its result, with the facts of its audit event riding on the
//! response, where the audit middleware reads them. Facts flow one way: out with the answer.

use axum::response::{IntoResponse, Response};

use crate::audit::AuditFacts;
use crate::http::error::ApiError;

/// A handler's result and what its audit event should say.
pub struct Audited<T>(pub AuditFacts, pub Result<T, ApiError>);

impl<T: IntoResponse> IntoResponse for Audited<T> {
    fn into_response(self) -> Response {
        let Audited(facts, result) = self;
        let mut response = match result {
            Ok(answer) => answer.into_response(),
            Err(error) => error.into_response(),
        };
        response.extensions_mut().insert(facts);
        response
    }
}
