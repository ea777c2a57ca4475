//! Reading an untrusted JWT without trusting it: its three parts, and its claims as the types
//! Zoom wants, each misfit described in words.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Longest token read, in bytes; a Zoom token is a few hundred.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest claim value quoted back in a message.
const QUOTE_CHARS: usize = 40;

/// A JWT split and decoded; nothing in it is verified.
pub struct Jwt<'a> {
    pub header: Claims,
    pub claims: Claims,
    /// `header.payload`, the bytes the signature covers.
    pub signed: &'a str,
    pub signature: Vec<u8>,
}

/// Splits and decodes `token`, or says why it is not a JWT.
pub fn parse(token: &str) -> Result<Jwt<'_>, String> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "longer than {MAX_TOKEN_BYTES} bytes: not a Zoom token"
        ));
    }
    if token.starts_with('"') || token.ends_with('"') {
        return Err("wrapped in quotes: pass the token without them".into());
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(format!(
            "not a JWT: a JWT is three base64url parts joined by dots, this has {}",
            parts.len()
        ));
    };
    let header = decode_json(header).map_err(|why| format!("the header {why}"))?;
    let claims = decode_json(payload).map_err(|why| format!("the payload {why}"))?;
    let signature = decode(signature)
        .map_err(|_| "the signature is not base64url (RFC 7515, without padding)".to_string())?;
    Ok(Jwt {
        header,
        claims,
        signed: &token[..token.len() - parts[2].len() - 1],
        signature,
    })
}

fn decode(part: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('='))
}

fn decode_json(part: &str) -> Result<Claims, &'static str> {
    let bytes = decode(part).map_err(|_| "is not base64url (RFC 7515, without padding)")?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(Claims(map)),
        Ok(_) => Err("is JSON but not an object"),
        Err(_) => Err("is not JSON"),
    }
}

/// A JSON object of claims (or header parameters).
pub struct Claims(pub Map<String, Value>);

impl Claims {
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A whole number, or why the claim is not one.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                format!("{name} is {n}, not a whole number: Zoom wants whole seconds")
            }),
            Some(Value::String(text)) => Err(format!(
                "{name} is the text {}: Zoom wants a number, without quotes",
                quote(text)
            )),
            Some(other) => Err(format!(
                "{name} is {}: Zoom wants a number",
                describe(other)
            )),
        }
    }

    /// A string, or why the claim is not one.
    pub fn text(&self, name: &str) -> Result<Option<&str>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(format!("{name} is {}: Zoom wants text", describe(other))),
        }
    }

    /// A 0/1 flag, or why the claim is not one.
    pub fn flag(&self, name: &str) -> Result<Option<i64>, String> {
        match self.integer(name)? {
            Some(value) if !(0..=1).contains(&value) => {
                Err(format!("{name} is {value}: Zoom allows 0 or 1"))
            }
            value => Ok(value),
        }
    }
}

/// A claim's text as it may be shown: quoted, and cut short when long.
pub fn quote(text: &str) -> String {
    let mut shown: String = text.chars().take(QUOTE_CHARS).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// What kind of JSON value this is, for a message.
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
