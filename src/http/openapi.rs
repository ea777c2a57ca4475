//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Each handler carries its own `#[utoipa::path]`, and [`crate::http::routes::documented`] registers
//! it with `utoipa_axum::routes!`, which routes the handler and describes it in one step: the
//! router the service runs and this document are split from the same value, so no route can
//! be served undocumented or documented but not served. This module holds what is shared: the
//! document's info, tags, security schemes, the error schema and the error responses.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::json;
use utoipa::IntoParams;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

use crate::http::error::ErrorCode;
use crate::zoom::Acting;

/// Names of the security schemes, as the operations' `security(...)` name them.
pub const API_KEY: &str = "apiKey";
pub const API_KEY_HEADER: &str = "apiKeyHeader";
pub const END_USER_JWT: &str = "endUserJwt";
pub const ZOOM_WEBHOOK: &str = "zoomWebhookSignature";

/// The document's frame; the paths and their schemas are added by the router
/// ([`crate::http::routes::documented`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ztv",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(crate::http::error::Envelope),
        responses(
            BadRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited,
            UpstreamError,
            UpstreamUnavailable,
            Internal,
        ),
    ),
    tags(
        (name = "meeting-sdk", description = "Meeting SDK signatures, signed locally"),
        (name = "video-sdk", description = "Video SDK session tokens, signed locally"),
        (name = "users", description = "Per-user tokens (ZAK, On-Behalf-Of), fetched from Zoom"),
        (name = "join", description = "Everything a mobile app needs to join, in one round trip"),
        (name = "s2s", description = "The account's Server-to-Server OAuth access token"),
        (name = "oauth", description = "Users who authorise the app themselves: grants"),
        (name = "webhooks", description = "Zoom's webhooks, verified by their signature"),
        (name = "diagnostics", description = "Why a token is refused, checked against Zoom's rules"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
pub struct ApiDoc;

const DESCRIPTION: &str = "\
Zoom Token Vendor: keeps an organisation's Zoom secrets on the server and vends short-lived \
tokens (Meeting SDK signatures, Video SDK tokens, ZAK and On-Behalf-Of tokens, the S2S access \
token) to web front ends, mobile apps and internal services.

**Callers.** Every `/v1` route except the OAuth callback and Zoom's webhook needs a caller: an \
API key (`Authorization: Bearer ztv_…` or `X-Api-Key: ztv_…`) or, when end-user sign-in is \
configured, an end user's OIDC JWT (`Authorization: Bearer <JWT>`). The scope an operation \
needs is named in its description and, as OpenAPI 3.1 allows for any scheme, in its security \
requirement. End users have the scopes the configuration grants them and act only as `me`.

**Requests.** JSON bodies (`Content-Type: application/json`), at most 64 KiB; an empty body \
counts as `{}`. Field names are camelCase; `null` counts as absent; integers are never \
coerced from strings; unknown fields and query parameters are refused with `invalid_request` \
naming them (Zoom's own callback and webhook excepted). A caller bound to one account, or any \
caller when only one account is configured, may leave `account` out.

**Errors.** Every error is `{\"error\": {\"code\", \"message\", \"requestId\"}}` (schema \
`ErrorResponse`). Besides the answers each operation lists, any route may answer `405 \
method_not_allowed` (with `Allow`) to another method, `408 request_timeout`, and `500 internal`. \
`429` and `503` carry `Retry-After`. Every response carries `x-request-id` (a sane one sent \
by the caller is kept).";

/// Every error code, for the `code` enum. The closure's match is exhaustive, so a new
/// [`ErrorCode`] fails to compile here until it is listed.
fn every_error_code() -> [ErrorCode; 12] {
    use ErrorCode::*;
    let _listed_below = |code: ErrorCode| match code {
        InvalidRequest | Unauthenticated | Forbidden | NotFound | MethodNotAllowed
        | RequestTimeout | PayloadTooLarge | UnsupportedMediaType | RateLimited | UpstreamError
        | UpstreamUnavailable | Internal => (),
    };
    [
        InvalidRequest,
        Unauthenticated,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        UpstreamError,
        UpstreamUnavailable,
        Internal,
    ]
}

/// The schema of the error body's `code`: one of [`ErrorCode`]'s strings.
pub fn error_code_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(every_error_code().map(ErrorCode::as_str)))
        .description(Some(
            "Stable and machine-readable; the HTTP status follows from it.",
        ))
        .examples([json!("invalid_request")])
        .into()
}

/// A string schema with a description, for response headers.
fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

/// An error answer with `code`, in the shape of [`crate::http::error::Envelope`].
fn error_response(
    code: ErrorCode,
    description: &str,
    example_message: &str,
    headers: &[(&str, &str)],
) -> RefOr<Response> {
    let example = json!({"error": {
        "code": code.as_str(),
        "message": example_message,
        "requestId": "3f2b9c1e-7d4a-4e0b-9a51-0c2d8e6f4b7a",
    }});
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorResponse")))
        .example(Some(example))
        .build();
    let mut response = ResponseBuilder::new()
        .description(format!("`{}`: {description}", code.as_str()))
        .content("application/json", content);
    for (name, about) in headers {
        response = response.header(*name, header(about));
    }
    response.build().into()
}

/// Declares reusable error responses (`components/responses`), one per status an operation
/// may list, alone (`(status = 400, response = BadRequest)`) or by family (`CallerErrors`, …).
macro_rules! error_responses {
    ($(
        $name:ident: $code:ident, $description:literal, $example:literal
        $(, $header:literal = $about:literal)*;
    )*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (
                    stringify!($name),
                    error_response(
                        ErrorCode::$code,
                        $description,
                        $example,
                        &[$(($header, $about)),*],
                    ),
                )
            }
        }
    )*};
}

error_responses! {
    BadRequest: InvalidRequest,
        "the request is malformed or a field is invalid; the message names the field",
        "meetingNumber: must be 9 to 12 digits";
    Unauthenticated: Unauthenticated,
        "no credentials, or an unknown, revoked or expired API key, or a JWT that does not verify",
        "credentials required: send `Authorization: Bearer ztv_…` or `X-Api-Key: ztv_…`",
        "WWW-Authenticate" = "`Bearer`";
    Forbidden: Forbidden,
        "the caller lacks the scope, is bound to another account, or asks for another user",
        "this caller lacks the `meeting-sdk:signature` scope";
    NotFound: NotFound,
        "an unknown account, one without the credentials this route needs, or an unknown user",
        "account `prod` has no Meeting SDK credentials";
    RequestTimeout: RequestTimeout,
        "the request took longer than `server.request_timeout`",
        "the request took too long";
    PayloadTooLarge: PayloadTooLarge,
        "the body is larger than 64 KiB",
        "request body is larger than 64 KiB";
    UnsupportedMediaType: UnsupportedMediaType,
        "a non-empty body without `Content-Type: application/json`",
        "Content-Type must be application/json";
    RateLimited: RateLimited,
        "the caller's rate limit is exhausted",
        "rate limit of 50/s (burst 100) exceeded; retry later",
        "Retry-After" = "Seconds to wait before retrying";
    UpstreamError: UpstreamError,
        "Zoom refused; Zoom's own code and message are kept in `message`",
        "Zoom refused the request (code 1001: User does not exist)";
    UpstreamUnavailable: UpstreamUnavailable,
        "Zoom is unreachable, timed out, or is throttling ztv",
        "Zoom is unavailable (timed out); try again later",
        "Retry-After" = "Seconds to wait before retrying";
    Internal: Internal,
        "an internal failure, logged in full on the server and answered opaquely",
        "internal error";
}

/// The error answers an operation lists, by family, each status a reference to its response
/// above: `responses((status = 200, …), CallerErrors, BodyErrors, ZoomErrors)`.
macro_rules! error_families {
    ($(
        $(#[$doc:meta])*
        $family:ident { $($status:literal => $response:ident),* $(,)? }
    )*) => {$(
        $(#[$doc])*
        pub struct $family;

        impl IntoResponses for $family {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$((
                    $status.to_string(),
                    RefOr::Ref(Ref::from_response_name($response::response().0)),
                )),*])
            }
        }
    )*};
}

error_families! {
    /// What any route with a caller may answer: a bad field, no or a refused credential, a
    /// missing scope or account, an unknown account, the request timeout, the rate limit.
    CallerErrors {
        "400" => BadRequest,
        "401" => Unauthenticated,
        "403" => Forbidden,
        "404" => NotFound,
        "408" => RequestTimeout,
        "429" => RateLimited,
        "500" => Internal,
    }
    /// What a route that reads a JSON body adds: too large, not JSON.
    BodyErrors {
        "413" => PayloadTooLarge,
        "415" => UnsupportedMediaType,
    }
    /// What a route that asks Zoom adds: Zoom refused, or cannot be reached.
    ZoomErrors {
        "502" => UpstreamError,
        "503" => UpstreamUnavailable,
    }
}

/// The security schemes the operations name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A ztv API key (`ztv_…`, created with `ztv clients create`) as \
                         `Authorization: Bearer ztv_…`. Its scopes and account binding are set \
                         when it is created.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "The same ztv API key, as `X-Api-Key: ztv_…`.",
            ))),
        );
        components.add_security_scheme(
            END_USER_JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An end user's ID token or access token from the organisation's OIDC \
                         identity provider (`end_users.issuer`, audience `end_users.audience`, \
                         RS256 or ES256). The claim `end_users.user_claim` names the Zoom user; \
                         the user has the scopes `end_users.scopes` and acts only as `me`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ZOOM_WEBHOOK,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-zm-signature",
                "Zoom's webhook signature: `v0=` + hex HMAC-SHA256 of \
                 `v0:{x-zm-request-timestamp}:{raw body}` under `webhooks.secret_token`.",
            ))),
        );
    }
}

/// The whole document: the frame above and every route's operation.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = crate::http::routes::documented().into_openapi();
    bodies_may_be_left_out(&mut document);
    document
}

/// `request_body = Option<T>` marks a body the caller may leave out (an empty body counts as
/// `{}`), but utoipa describes it as `oneOf: [null, T]`, and a JSON `null` body is refused.
/// Such bodies are described as `T`, not required.
fn bodies_may_be_left_out(document: &mut utoipa::openapi::OpenApi) {
    let operations = document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    });
    for operation in operations {
        let Some(body) = operation.request_body.as_mut() else {
            continue;
        };
        for content in body.content.values_mut() {
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let (nulls, others): (Vec<_>, Vec<_>) =
                one_of.items.iter().cloned().partition(is_null_schema);
            if nulls.len() == 1 && others.len() == 1 {
                content.schema = others.into_iter().next();
                body.required = None;
            }
        }
    }
}

fn is_null_schema(schema: &RefOr<Schema>) -> bool {
    matches!(
        schema,
        RefOr::T(Schema::Object(object))
            if object.schema_type == utoipa::openapi::schema::SchemaType::Type(Type::Null)
    )
}

/// The document as JSON, serialised once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string(&document()).expect("the document has only string-keyed maps")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::signing;

    fn schema(doc: &Value, name: &str) -> Value {
        doc["components"]["schemas"][name].clone()
    }

    #[test]
    fn the_documented_expiration_range_is_the_one_signing_enforces() {
        let doc: Value = serde_json::from_str(json()).unwrap();
        for request in ["SignatureRequest", "VideoTokenRequest", "JoinRequest"] {
            let field = &schema(&doc, request)["properties"]["expirationSeconds"];
            // An integer, or (where sample-style digit strings are taken) one of its forms.
            let integer = field["oneOf"]
                .as_array()
                .and_then(|forms| forms.iter().find(|form| form["type"] == "integer"))
                .unwrap_or(field);
            assert_eq!(
                integer["minimum"],
                signing::MIN_EXPIRATION_SECONDS,
                "{request}"
            );
            assert_eq!(
                integer["maximum"],
                signing::MAX_EXPIRATION_SECONDS,
                "{request}"
            );
            assert_eq!(
                field["default"],
                signing::DEFAULT_EXPIRATION_SECONDS,
                "{request}"
            );
        }
    }

    #[test]
    fn every_error_code_is_in_the_code_enum() {
        let doc: Value = serde_json::from_str(json()).unwrap();
        let codes = &schema(&doc, "ErrorBody")["properties"]["code"]["enum"];
        for code in every_error_code() {
            assert!(
                codes.as_array().unwrap().contains(&json!(code.as_str())),
                "{code:?}"
            );
        }
    }
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

/// Whose token fetched a user token: `user_grant` or `account`.
pub(crate) fn token_source_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            Acting::User.as_str(),
            Acting::AccountGrant.as_str(),
            Acting::Account.as_str(),
        ]))
        .description(Some(
            "Whose token fetched it: `user_grant` (the user's own OAuth grant) or `account` \
             (the account's S2S token).",
        ))
}

/// The `{userId}` path parameter of the per-user routes, for the OpenAPI document (the
/// handlers read it as [`UserPath`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path, names("userId"))]
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct UserIdParam(
    /// A Zoom user ID, an email address, or `me` (an end user may name only themselves).
    /// 1–128 characters of letters, digits and `. _ - + @`, other than `.` and `..`.
    #[param(
        example = "me",
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9._+@-]+$"
    )]
    String,
);

/// The `account` query parameter, for the OpenAPI document (the handlers read it with
/// [`extract::query_fields`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct AccountParam {
    /// The account to act for; may be left out by a caller bound to one account, or when only
    /// one is configured.
    #[param(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    account: Option<String>,
}

/// The `zoomAccount` query parameter of the ZAK and OBF routes, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct ZoomAccountParam {
    /// Fetch through the admin install of the app for this Zoom account (`install: account`);
    /// `not_found` when there is none.
    #[param(
        rename = "zoomAccount",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_-]+$"
    )]
    zoom_account: Option<String>,
}

/// The `ttlSeconds` query parameter of the ZAK and OBF routes, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only")]
pub(crate) struct TtlParam {
    /// The token's life to ask of Zoom, in seconds (Zoom's `ttl`; at most one year). A ZAK
    /// in ztv's cache is reused only while at least this much of its life remains.
    #[param(rename = "ttlSeconds", minimum = 60, maximum = 31536000)]
    ttl_seconds: Option<u32>,
}

/// An integer in `min..=max`, or exactly its decimal digits as a string (as Zoom's Meeting
/// SDK sample sends it).
fn int_or_text_schema(min: i64, max: i64, description: &str) -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^(0|[1-9][0-9]*)$")),
        )
        .description(Some(description))
}

/// `role`: 0 or 1, or `"0"`/`"1"`.
pub(crate) fn role_schema() -> OneOfBuilder {
    int_or_text_schema(
        0,
        1,
        "0 to join as a participant, 1 as the host (needs `meeting-sdk:host`); also as the \
         string \"0\" or \"1\".",
    )
}

/// `expirationSeconds`: the range signing enforces, or its digits as a string.
pub(crate) fn expiration_seconds_schema() -> OneOfBuilder {
    int_or_text_schema(
        crate::signing::MIN_EXPIRATION_SECONDS,
        crate::signing::MAX_EXPIRATION_SECONDS,
        "The token's lifetime in seconds, also as a string of its digits.",
    )
    .default(Some(json!(crate::signing::DEFAULT_EXPIRATION_SECONDS)))
}
