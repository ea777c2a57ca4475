//! Request bodies: a JSON-object extractor whose every rejection is our own error, and
//! field readers that validate strictly (integers are integers, never coerced) and name the
//! field at fault.

use std::ops::RangeInclusive;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request};
use axum::http::{StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

use crate::app::AppState;
use crate::audit::AuditFacts;
use crate::auth::caller::Caller;
use crate::auth::keys;
use crate::auth::rate_limit::Decision;
use crate::clock;
use crate::config::{Account, MeetingSdkCredentials, Settings};
use crate::http::answer::Audited;
use crate::http::error::{ApiError, ErrorCode};
use crate::signing::{self, MeetingNumber, MeetingSdkClaimsInput};
use crate::zoom_user::{ZoomAccountId, ZoomUser};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The header an API key may come in instead of `Authorization` (a constant: a name given as
/// text is parsed again at every lookup).
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A whole request body of at most [`BODY_LIMIT`] bytes: a larger one, declared or streamed,
/// is refused `payload_too_large` (413). Every route that reads a body reads it through this.
pub struct BoundedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BoundedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        match Limited::new(request.into_body(), BODY_LIMIT)
            .collect()
            .await
        {
            Ok(body) => Ok(Self(body.to_bytes())),
            Err(error) if error.is::<LengthLimitError>() => {
                Err(ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE))
            }
            Err(error) => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("could not read the request body: {error}"),
            )),
        }
    }
}

/// A JSON object body, with its fields ready to be taken one by one.
/// An empty body counts as `{}` so that routes whose fields are all optional need none.
pub struct JsonObject(pub Fields);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        let BoundedBody(bytes) = BoundedBody::from_request(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self(Fields::default()));
        }
        if !declared_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
            ));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("body is not valid JSON: {e}"),
            )
        })?;
        match value {
            Value::Object(map) => Ok(Self(Fields { map })),
            _ => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "body must be a JSON object",
            )),
        }
    }
}

/// `application/json` or `application/…+json`, in any case, parameters ignored.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .get(subtype.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

/// The fields of a JSON object, taken by name; `null` counts as absent. What is left when the
/// route has taken all it knows is refused by [`Fields::finish`], so typos are not silently
/// ignored.
#[derive(Default, Debug)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self { map }
    }

    /// The raw value of a field, if present and not `null`.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// An integer within `range`.
    pub fn int(&mut self, name: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let number = match &value {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let Some(number) = number else {
            return Err(ApiError::invalid(
                name,
                format!("must be an integer, not {}", describe(&value)),
            ));
        };
        if !range.contains(&number) {
            let bounds = if range.end() - range.start() == 1 {
                format!("must be {} or {}", range.start(), range.end())
            } else {
                format!("must be between {} and {}", range.start(), range.end())
            };
            return Err(ApiError::invalid(name, bounds));
        }
        Ok(Some(number))
    }

    /// An integer within `range`, also given as exactly its decimal text (`"1"`, `"7200"`), as
    /// Zoom's Meeting SDK sample sends `role` and `expirationSeconds`: `"1abc"`, `"1.0"`,
    /// `"01"`, `" 1"` and fractions are still refused.
    pub fn int_or_text(
        &mut self,
        name: &str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        if let Some(Value::String(text)) = self.map.get(name) {
            let exact = text
                .parse::<i64>()
                .ok()
                .filter(|number| number.to_string() == *text);
            let Some(number) = exact else {
                return Err(ApiError::invalid(
                    name,
                    "must be an integer, or its decimal digits as a string",
                ));
            };
            self.map.insert(name.to_string(), Value::from(number));
        }
        self.int(name, range)
    }

    /// A 0/1 flag, as Zoom's payloads take them.
    pub fn flag(&mut self, name: &str) -> Result<Option<u8>, ApiError> {
        Ok(self.int(name, 0..=1)?.map(|v| v as u8))
    }

    /// A JSON boolean.
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be true or false, not {}", describe(&other)),
            )),
        }
    }

    /// A string of 1 to `max_chars` characters with no control characters.
    pub fn string(&mut self, name: &str, max_chars: usize) -> Result<Option<String>, ApiError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        let Value::String(text) = value else {
            return Err(ApiError::invalid(
                name,
                format!("must be a string, not {}", describe(&value)),
            ));
        };
        check_text(name, &text, max_chars)?;
        Ok(Some(text))
    }

    /// Refuses whatever fields the route did not take.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.map.keys().next() {
            Some(name) => Err(ApiError::invalid(name, "unknown field")),
            None => Ok(()),
        }
    }
}

/// The query string as fields (all values strings), so query parameters are read and
/// refused exactly like body fields. A repeated parameter is refused.
pub fn query_fields(query: Option<&str>) -> Result<Fields, ApiError> {
    let mut map = Map::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if map
            .insert(name.to_string(), Value::String(value.into_owned()))
            .is_some()
        {
            return Err(ApiError::invalid(&name, "given more than once"));
        }
    }
    Ok(Fields { map })
}

/// A Zoom user named by a request: `me`, a Zoom user ID or an email address, as
/// [`ZoomUser`] accepts it; `field` is named when it is not one.
pub fn user_id(field: &str, text: &str) -> Result<ZoomUser, ApiError> {
    ZoomUser::parse(text).map_err(|problem| ApiError::invalid(field, problem.to_string()))
}

/// Length and character checks shared by every free-text field.
pub fn check_text(name: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    let chars = text.chars().count();
    if chars == 0 {
        return Err(ApiError::invalid(name, "must not be empty"));
    }
    if chars > max_chars {
        return Err(ApiError::invalid(
            name,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            name,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The JSON type of a value, for messages (never the value itself).
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an out-of-range integer",
        Value::Number(_) => "a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------
// What several routes read: the user a path names, the account a caller acts for, a signature
// request's fields.
// ---------------------------------------------------------------------------------------------

/// The path's `userId`, with a rejection in our shape.
pub type UserPath = Result<Path<String>, axum::extract::rejection::PathRejection>;

pub fn user_of(path: UserPath) -> Result<ZoomUser, ApiError> {
    let Path(user) = path.map_err(|_| ApiError::invalid("userId", "is not valid UTF-8"))?;
    user_id("userId", &user)
}

/// `ttlSeconds`: the life to ask of Zoom for a ZAK or OBF token (Zoom's `ttl`: at most one
/// year; ztv asks for at least a minute).
pub fn ttl_seconds(fields: &mut Fields) -> Result<Option<u32>, ApiError> {
    Ok(fields
        .int_or_text("ttlSeconds", 60..=31_536_000)?
        .map(|ttl| ttl as u32))
}

/// `zoomAccount`: the Zoom account whose admin install to fetch user tokens through.
pub fn zoom_account(fields: &mut Fields) -> Result<Option<ZoomAccountId>, ApiError> {
    match fields.string("zoomAccount", 64)? {
        None => Ok(None),
        Some(text) => ZoomAccountId::parse(&text).map(Some).ok_or_else(|| {
            ApiError::invalid(
                "zoomAccount",
                "a Zoom account ID: 1 to 64 ASCII letters, digits, '-' or '_'",
            )
        }),
    }
}

/// The account to fetch ZAK and OBF tokens for: it needs S2S credentials or a user OAuth app
/// (users' own grants and account installs).
pub fn user_token_account(account: &Account) -> Result<&Account, ApiError> {
    if account.s2s.is_none() && account.user_oauth.is_none() {
        return Err(ApiError::not_found(format!(
            "account `{}` has no Server-to-Server OAuth credentials and no user OAuth app",
            account.name
        )));
    }
    Ok(account)
}

/// The account `caller` acts for (the one `requested`, its own, or the only one), noted for
/// the audit log.
pub fn account_of<'s>(
    caller: &Caller,
    settings: &'s Settings,
    requested: Option<&str>,
    facts: &mut AuditFacts,
) -> Result<&'s Account, ApiError> {
    let account = caller.account(settings, requested)?;
    facts.account(&account.name);
    Ok(account)
}

/// The account to fetch user tokens for; it needs S2S credentials.
pub fn s2s_account(account: &Account) -> Result<&Account, ApiError> {
    if account.s2s.is_none() {
        return Err(ApiError::not_found(format!(
            "account `{}` has no Server-to-Server OAuth credentials",
            account.name
        )));
    }
    Ok(account)
}

/// The account's Meeting SDK app, or `not_found` when it has none.
pub fn meeting_sdk_app(account: &Account) -> Result<&MeetingSdkCredentials, ApiError> {
    account.meeting_sdk.as_ref().ok_or_else(|| {
        ApiError::not_found(format!(
            "account `{}` has no Meeting SDK credentials",
            account.name
        ))
    })
}

/// Reads `meetingNumber`, `role`, `expirationSeconds` and `videoWebRtcMode`.
pub fn read_signature_request(fields: &mut Fields) -> Result<MeetingSdkClaimsInput, ApiError> {
    let meeting_number = meeting_number(fields)?;
    let role = fields.int_or_text("role", 0..=1)?;
    let expiration_seconds = fields
        .int_or_text(
            "expirationSeconds",
            signing::MIN_EXPIRATION_SECONDS..=signing::MAX_EXPIRATION_SECONDS,
        )?
        .unwrap_or(signing::DEFAULT_EXPIRATION_SECONDS);
    let video_webrtc_mode = fields.flag("videoWebRtcMode")?;
    let meeting = match (meeting_number, role) {
        (Some(number), Some(role)) => Some((number, role as u8)),
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::invalid("role", "required with meetingNumber")),
        (None, Some(_)) => return Err(ApiError::invalid("meetingNumber", "required with role")),
    };
    Ok(MeetingSdkClaimsInput {
        meeting,
        expiration_seconds,
        video_webrtc_mode,
    })
}

/// A meeting number: 9–12 digits, as a JSON string or a whole number.
pub fn meeting_number(fields: &mut Fields) -> Result<Option<MeetingNumber>, ApiError> {
    const FIELD: &str = "meetingNumber";
    let wrong_length = || ApiError::invalid(FIELD, "must be 9 to 12 digits");
    let Some(value) = fields.take(FIELD) else {
        return Ok(None);
    };
    match value {
        Value::String(text) => {
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid(FIELD, "must contain digits only"));
            }
            if !signing::MEETING_NUMBER_DIGITS.contains(&text.len()) {
                return Err(wrong_length());
            }
            Ok(Some(MeetingNumber::Text(text)))
        }
        Value::Number(n) => {
            let number = n.as_u64().ok_or_else(|| {
                ApiError::invalid(FIELD, "must be a whole number of 9 to 12 digits")
            })?;
            if !signing::MEETING_NUMBER_DIGITS.contains(&number.to_string().len()) {
                return Err(wrong_length());
            }
            Ok(Some(MeetingNumber::Number(number)))
        }
        other => Err(ApiError::invalid(
            FIELD,
            format!("must be a string or number, not {}", describe(&other)),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The caller
// ---------------------------------------------------------------------------------------------

/// The credential a request presents: `Authorization: Bearer …` or `X-Api-Key: …`.
fn presented_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let malformed = || ApiError::unauthenticated("Authorization must be `Bearer <key>`");
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(malformed());
        }
        return Ok(token.trim());
    }
    if let Some(value) = headers.get(&API_KEY) {
        return value
            .to_str()
            .map(str::trim)
            .map_err(|_| ApiError::unauthenticated("X-Api-Key is not a valid key"));
    }
    Err(ApiError::new(
        ErrorCode::Unauthenticated,
        "credentials required: send `Authorization: Bearer ztv_…` or `X-Api-Key: ztv_…`",
    ))
}

/// The caller, authenticated (an API key, or an end user's JWT when sign-in is configured)
/// and counted against its rate limit. A caller over its limit is refused with its name on the
/// answer, for the audit log.
impl FromRequestParts<AppState> for Caller {
    type Rejection = Audited<()>;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Audited<()>> {
        let unknown = |error| Audited(AuditFacts::default(), Err(error));
        let presented = presented_key(&parts.headers).map_err(unknown)?;
        let caller = if keys::looks_like_key(presented) {
            state
                .keys
                .authenticate(presented, clock::now())
                .map_err(ApiError::from)
        } else {
            end_user(state, presented).await
        }
        .map_err(unknown)?;

        let budget = caller.request_budget(&state.settings().rate_limit);
        if let Decision::Limited { retry_after } =
            state.rate_limiter.check(budget.key, budget.limit).await
        {
            let mut error = ApiError::new(
                ErrorCode::RateLimited,
                format!("rate limit of {} exceeded; retry later", budget.limit),
            );
            error.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
            return Err(Audited(caller.audit_facts(), Err(error)));
        }
        Ok(caller)
    }
}

/// A bearer value that is not a ztv key: an end user's JWT, when sign-in is configured.
async fn end_user(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let Some(verifier) = &state.end_users else {
        return Err(ApiError::unauthenticated(
            "not a ztv API key (keys start with `ztv_`), and end-user sign-in is not configured",
        ));
    };
    let user = verifier
        .verify(token)
        .await
        .map_err(|e| ApiError::unauthenticated(e.to_string()))?;
    let settings = state.settings();
    let sole_account = settings.sole_account().map(|a| a.name.as_str());
    Ok(Caller::end_user_from(
        user,
        verifier.settings(),
        sole_account,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        match value {
            Value::Object(map) => Fields::from_map(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn integers_are_never_coerced() {
        let mut f = fields(json!({"a": "1", "b": 1800.5, "c": 1800, "d": true}));
        assert!(f.int("a", 0..=10).is_err());
        assert!(f.int("b", 0..=2000).is_err());
        assert_eq!(f.int("c", 1800..=172800).unwrap(), Some(1800));
        assert!(f.int("d", 0..=1).is_err());
        assert_eq!(f.int("absent", 0..=1).unwrap(), None);
    }

    #[test]
    fn leftover_fields_are_refused_by_name() {
        let mut f = fields(json!({"role": 0, "meetingNumer": "123"}));
        f.int("role", 0..=1).unwrap();
        let err = f.finish().unwrap_err();
        assert_eq!(err.message, "meetingNumer: unknown field");
    }

    #[test]
    fn dot_segments_are_not_user_ids() {
        assert!(user_id("userId", ".").is_err());
        assert!(user_id("userId", "..").is_err());
        assert!(user_id("userId", "first.last@example.com").is_ok());
        assert!(user_id("userId", "...").is_ok());
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(is_json(" Application/JSON ;charset=UTF-8"));
        assert!(is_json("APPLICATION/VND.API+JSON"));
        assert!(!is_json("text/json"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("application"));
        assert!(!is_json("json"));
        assert!(!is_json(""));
    }
}
