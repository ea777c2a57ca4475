//! `GET /openapi.json`: the OpenAPI 3.1 document of every route (see [`crate::http::openapi`]).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(serve_openapi))
}

/// The OpenAPI 3.1 document of this API
///
/// Generated from the route declarations and serialised once per process. No credentials.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "serveOpenapi",
    security(()),
    responses(
        (
            status = 200,
            description = "The OpenAPI 3.1 document",
            content_type = "application/json",
            body = Object,
        ),
    ),
)]
async fn serve_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::http::openapi::json(),
    )
        .into_response()
}
