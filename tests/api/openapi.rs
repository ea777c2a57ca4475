//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, valid and self-contained, whose
//! schemas are what the server really sends and accepts.
//!
//! Why the document cannot miss a route: each route module registers its handlers with
//! `utoipa_axum::routes!`, which adds the handler to the axum router *and* its
//! `#[utoipa::path]` to the document from one declaration, and `routes::router` (what the
//! service runs) and `openapi::document` (what it describes) are both split from the one
//! `routes::documented()`. A hand-kept list of routes would be one more thing to forget, so
//! these tests check that construction from the outside instead:
//!
//! * nothing documented is unserved: every (method, path) of the document, asked of the live
//!   server, gets an answer other than the router's 404 "no such route" or a 405;
//! * nothing served is undocumented: the one way to route a handler around `routes!` is a
//!   plain `.route(…)` / `.route_service(…)` / `.nest(…)` or an axum `Router::new()` in
//!   `src/http/routes/`, and the source has none;
//! * the contract holds: every route of docs/api.md's table is in the document with its method.

use std::collections::{BTreeSet, HashSet};

use reqwest::Method;
use serde_json::{Value, json};
use ztv::scope::Scope;

use crate::helpers::*;

/// docs/api.md's route table, as (method, path).
const CONTRACT_ROUTES: [(&str, &str); 15] = [
    ("POST", "/v1/meeting-sdk/signature"),
    ("POST", "/v1/video-sdk/token"),
    ("GET", "/v1/users/{userId}/zak"),
    ("GET", "/v1/users/{userId}/obf-token"),
    ("POST", "/v1/join"),
    ("POST", "/v1/s2s/token"),
    ("POST", "/v1/oauth/authorize"),
    ("GET", "/v1/oauth/callback"),
    ("DELETE", "/v1/oauth/grants/{userId}"),
    ("GET", "/v1/oauth/grants"),
    ("POST", "/v1/webhooks/zoom"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// Routes anyone may call: no ztv credentials.
const PUBLIC: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/oauth/callback",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn fetch_document(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// Every operation of the document: (METHOD, path template, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                found.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// A path template with its parameter names dropped: `/v1/users/{}/zak`.
fn shape(template: &str) -> String {
    let mut shaped = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                shaped.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => shaped.push(c),
        }
    }
    shaped
}

/// What `$ref` points at, within the document.
fn resolve<'d>(doc: &'d Value, reference: &str) -> &'d Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference} is not local to the document"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} resolves to nothing"))
}

/// Follows a `$ref`, if `value` is one.
fn deref<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value["$ref"].as_str() {
        Some(reference) => resolve(doc, reference),
        None => value,
    }
}

/// Every `$ref` anywhere in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => found.push(reference.clone()),
                    _ => refs(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

/// Checks `value` against `schema`, for the part of JSON Schema the document uses; `$ref`s
/// are resolved in `doc`. Stricter than JSON Schema in one way, on purpose: an object may not
/// carry a property its schema does not name, so every field the server sends is documented.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = deref(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array() {
        let matching = choices
            .iter()
            .filter(|choice| conforms(doc, choice, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: {value} matches {matching} of oneOf"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_ok = types.is_empty()
        || types.contains(&type_of)
        || (type_of == "integer" && types.contains(&"number"));
    if !type_ok {
        return Err(format!("{at}: {value} is not of type {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            return Err(format!("{at}: {n} is under the minimum"));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            return Err(format!("{at}: {n} is over the maximum"));
        }
    }
    if let Some(text) = value.as_str() {
        let chars = text.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| chars < min)
            || schema["maxLength"].as_u64().is_some_and(|max| chars > max)
        {
            return Err(format!("{at}: {text:?} has the wrong length"));
        }
    }
    if let (Some(items), Some(schema_items)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            conforms(doc, schema_items, item, &format!("{at}[{i}]"))?;
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !fields.contains_key(name) {
                return Err(format!("{at}: required `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            let at = format!("{at}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                &schema["additionalProperties"],
            ) {
                (Some(property), _) => conforms(doc, property, field, &at)?,
                (None, additional @ Value::Object(_)) => conforms(doc, additional, field, &at)?,
                // A free-form object (a Zoom event's payload), or one alternative of several.
                (None, _) if properties.is_none() || schema.get("oneOf").is_some() => {}
                (None, _) => return Err(format!("{at}: not in the schema")),
            }
        }
    }
    Ok(())
}

/// The schema of `operation`'s `status` answer as JSON.
fn response_schema<'d>(doc: &'d Value, operation: &'d Value, status: &str) -> &'d Value {
    let response = deref(doc, &operation["responses"][status]);
    &response["content"]["application/json"]["schema"]
}

fn operation<'d>(doc: &'d Value, method: &str, path: &str) -> &'d Value {
    let found = &doc["paths"][path][method];
    assert!(found.is_object(), "{method} {path} is not documented");
    found
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::builder().build().await;
    let doc = fetch_document(&app).await;

    let operations = operations(&doc);
    assert!(operations.len() >= CONTRACT_ROUTES.len());
    for (method, template, _) in operations {
        let path = shape(&template).replace("{}", "me");
        let response = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&path),
            )
            .send()
            .await
            .unwrap();

        let status = response.status().as_u16();
        let body: Value = match response.headers().get("content-type") {
            Some(t) if t.as_bytes().starts_with(b"application/json") => {
                response.json().await.unwrap()
            }
            _ => Value::Null,
        };
        assert_ne!(
            status, 405,
            "{method} {template} is documented but not routed"
        );
        assert!(
            !(status == 404 && body["error"]["message"] == "no such route"),
            "{method} {template} is documented but not routed"
        );
    }
}

#[tokio::test]
async fn every_route_of_the_design_is_documented_with_its_method() {
    let app = TestApp::builder().build().await;
    let doc = fetch_document(&app).await;

    let documented: HashSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, shape(&path)))
        .collect();
    for (method, path) in CONTRACT_ROUTES {
        assert!(
            documented.contains(&(method.to_string(), shape(path))),
            "{method} {path} is missing from the document"
        );
    }
}

/// The one gap `routes!` leaves: a handler routed around it. See the module comment.
#[test]
fn no_route_is_registered_around_the_documentation() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/routes");
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let source = std::fs::read_to_string(&path).unwrap();
        for bypass in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(
                !source.contains(bypass),
                "{} routes with `{bypass}…)`: register handlers with `routes!`",
                path.display()
            );
        }
        let plain_routers =
            source.matches("Router::new(").count() - source.matches("OpenApiRouter::new(").count();
        assert_eq!(
            plain_routers,
            0,
            "{} builds a plain axum Router: use OpenApiRouter",
            path.display()
        );
    }
    assert!(files > 5, "found the route modules");
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_and_self_contained() {
    let app = TestApp::builder().build().await;
    let doc = fetch_document(&app).await;

    // Typed parse of the whole document, and its version, by an OpenAPI 3.1 library.
    let spec = oas3::from_json(doc.to_string()).expect("an OpenAPI 3.1 document");
    let version = spec.validate_version().expect("a supported version");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!((version.major, version.minor), (3, 1));
    assert_eq!(doc["info"]["title"], "ztv");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for reference in &all_refs {
        resolve(&doc, reference);
    }
    for (_, method, op) in spec.operations() {
        for response in op.responses(&spec).values() {
            assert!(!response.description.as_deref().unwrap_or("").is_empty());
        }
        for parameter in &op.parameters {
            parameter.resolve(&spec).expect("parameter resolves");
        }
        if let Some(body) = &op.request_body {
            body.resolve(&spec)
                .unwrap_or_else(|e| panic!("{method} request body: {e}"));
        }
    }

    // The examples are what they document.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if let Some(example) = schema.get("example") {
            conforms(&doc, schema, example, name).unwrap();
        }
    }
    for (name, response) in doc["components"]["responses"].as_object().unwrap() {
        let content = &response["content"]["application/json"];
        conforms(&doc, &content["schema"], &content["example"], name).unwrap();
    }

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["apiKey"]["scheme"], "bearer");
    assert_eq!(schemes["apiKeyHeader"]["in"], "header");
    assert_eq!(schemes["apiKeyHeader"]["name"], "X-Api-Key");
    assert_eq!(schemes["endUserJwt"]["bearerFormat"], "JWT");

    let mut operation_ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "{name} has no operationId");
        assert!(operation_ids.insert(id.to_string()), "{name}: {id} twice");
        assert!(!op["summary"].as_str().unwrap_or("").is_empty(), "{name}");
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{name} documents no success"
        );

        // Path parameters: each one of the template is declared, required.
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let param = segment.trim_matches(|c| c == '{' || c == '}');
            let declared = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| deref(&doc, p))
                .any(|p| p["in"] == "path" && p["name"] == param && p["required"] == true);
            assert!(declared, "{name}: path parameter `{param}` is not declared");
        }

        // Security: the public routes say so explicitly; the others name known schemes,
        // and their scopes are ztv's and named in the description too.
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no security entry"));
        assert!(!security.is_empty(), "{name}");
        if PUBLIC.contains(&path.as_str()) {
            assert_eq!(security, &vec![json!({})], "{name} is public");
            continue;
        }
        let description = op["description"].as_str().unwrap_or("");
        for requirement in security {
            let requirement = requirement.as_object().unwrap();
            assert!(!requirement.is_empty(), "{name} is not public");
            for (scheme, scopes) in requirement {
                assert!(
                    schemes.contains_key(scheme),
                    "{name}: unknown scheme {scheme}"
                );
                for scope in scopes.as_array().unwrap() {
                    let scope = scope.as_str().unwrap();
                    scope.parse::<Scope>().expect("a ztv scope");
                    assert!(description.contains(scope), "{name} does not name {scope}");
                }
            }
        }
        if path.starts_with("/v1/") && path != "/v1/webhooks/zoom" {
            let named: BTreeSet<&str> = security
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                .collect();
            assert_eq!(
                named,
                BTreeSet::from(["apiKey", "apiKeyHeader", "endUserJwt"]),
                "{name}"
            );
            for status in ["401", "429"] {
                assert!(responses.contains_key(status), "{name} lacks {status}");
            }
        }

        // Every error answer is in the error shape.
        for status in responses.keys() {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response_schema(&doc, &op, status)["$ref"],
                    "#/components/schemas/ErrorResponse",
                    "{name} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn real_errors_have_exactly_the_documented_error_shape() {
    let app = TestApp::builder().build().await;
    let doc = fetch_document(&app).await;
    let key = app
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;
    let error_schema = json!({"$ref": "#/components/schemas/ErrorResponse"});
    let signature = operation(&doc, "post", "/v1/meeting-sdk/signature");

    let unauthenticated = app
        .http
        .post(app.url("/v1/meeting-sdk/signature"))
        .send()
        .await
        .unwrap();
    let invalid = app.signature(&key, json!({"meetingNumber": "12"})).await;
    let unrouted = app.http.get(app.url("/v1/nothing")).send().await.unwrap();
    let wrong_method = app
        .http
        .get(app.url("/v1/meeting-sdk/signature"))
        .send()
        .await
        .unwrap();

    for (response, status) in [
        (unauthenticated, 401),
        (invalid, 400),
        (unrouted, 404),
        (wrong_method, 405),
    ] {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        conforms(&doc, &error_schema, &body, "body").unwrap();
        let fields: BTreeSet<&String> = body["error"].as_object().unwrap().keys().collect();
        let documented = &doc["components"]["schemas"]["ErrorBody"];
        let properties: BTreeSet<&String> = documented["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(fields, properties, "exactly the documented fields");
        if let Some(example) =
            deref(&doc, &signature["responses"][status.to_string()])["content"]["application/json"]
                ["example"]
                .as_object()
        {
            assert_eq!(example["error"]["code"], body["error"]["code"], "{status}");
        }
    }
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    const WEBHOOK_SECRET: &str = "openapi-webhook-secret";
    let app = TestApp::builder()
        .zoom()
        .config(&format!(
            "[webhooks]\nsecret_token = \"{WEBHOOK_SECRET}\"\n"
        ))
        .build()
        .await;
    let doc = fetch_document(&app).await;
    let key = app
        .key(
            "all",
            &[
                Scope::MeetingSdkSignature,
                Scope::MeetingSdkHost,
                Scope::VideoSdkToken,
                Scope::VideoSdkHost,
                Scope::ZakRead,
                Scope::ObfRead,
                Scope::S2sToken,
            ],
            Some("prod"),
        )
        .await;
    let example = |schema: &str| doc["components"]["schemas"][schema]["example"].clone();
    let mut join = example("JoinRequest");
    join["userId"] = json!(ALICE_ID);
    join["role"] = json!(0);
    join["withObf"] = json!(true);
    let event = example("ZoomEvent").to_string();
    let timestamp = now().to_string();
    let signature = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:{event}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    };

    // The documented request examples are accepted, and every answer is as documented.
    let answers = [
        (
            app.signature(&key, example("SignatureRequest")).await,
            "post",
            "/v1/meeting-sdk/signature",
        ),
        (
            app.video_token(&key, example("VideoTokenRequest")).await,
            "post",
            "/v1/video-sdk/token",
        ),
        (app.join(&key, join).await, "post", "/v1/join"),
        (
            app.zak(&key, ALICE_ID).await,
            "get",
            "/v1/users/{userId}/zak",
        ),
        (
            app.get_with(
                &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=85746065432"),
                &key,
            )
            .await,
            "get",
            "/v1/users/{userId}/obf-token",
        ),
        (app.s2s_token(&key).await, "post", "/v1/s2s/token"),
        (
            app.http
                .post(app.url("/v1/webhooks/zoom"))
                .header("content-type", "application/json")
                .header("x-zm-request-timestamp", timestamp)
                .header("x-zm-signature", signature)
                .body(event)
                .send()
                .await
                .unwrap(),
            "post",
            "/v1/webhooks/zoom",
        ),
        (
            app.http.get(app.url("/healthz")).send().await.unwrap(),
            "get",
            "/healthz",
        ),
        (
            app.http.get(app.url("/readyz")).send().await.unwrap(),
            "get",
            "/readyz",
        ),
    ];
    for (response, method, path) in answers {
        assert_eq!(response.status(), 200, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        let schema = response_schema(&doc, operation(&doc, method, path), "200");
        conforms(&doc, schema, &body, path).unwrap();
    }
}
