//! The web example's server: the static page (`index.html`, `app.js`, the vendored Zoom SDK
//! under `vendor/`) and a tiny OIDC issuer at `/issuer` on the same origin, which signs in one
//! fixed demo user at once and sends the browser back with an `id_token` in the URL fragment
//! (the implicit flow). A demo, not an identity provider: there is no password and no consent.
//!
//! `examples/web/main.rs` runs it; `tests/api/browser.rs` includes this very file.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

/// How long the issuer's ID tokens live.
const TOKEN_SECONDS: u64 = 3600;

/// What the server serves and whom its issuer signs in.
#[derive(Clone, Debug)]
pub struct Options {
    /// The folder holding `index.html`, `app.js` and `vendor/` (normally `examples/web`).
    pub static_dir: PathBuf,
    /// The demo user's email: the Zoom user ztv acts for (`dev@example.com` in `ztv dev`).
    pub user_email: String,
    /// The demo user's display name (the ID token's `name`).
    pub user_name: String,
    /// The only `client_id` the issuer knows; it is the tokens' `aud` (ztv's `end_users.audience`).
    pub client_id: String,
    /// Origins besides this server's own whose pages the issuer may send tokens to.
    pub redirect_origins: Vec<String>,
}

impl Options {
    /// `examples/web` of this crate, signing in `user_email`.
    pub fn new(user_email: &str) -> Options {
        Options {
            static_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web"),
            user_email: user_email.to_string(),
            user_name: "Demo User".to_string(),
            client_id: "ztv-web-example".to_string(),
            redirect_origins: Vec::new(),
        }
    }
}

/// The issuer's signing key, made afresh at every start.
struct Issuer {
    /// `http://{addr}/issuer`: the tokens' `iss`, ztv's `end_users.issuer`.
    url: String,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

struct Shared {
    origin: String,
    issuer: Issuer,
    options: Options,
}

/// The issuer URL of a server listening on `addr`: what `end_users.issuer` must be.
pub fn issuer_url(addr: SocketAddr) -> String {
    format!("http://{addr}/issuer")
}

/// Serves the page and the issuer on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, options: Options) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        origin: format!("http://{addr}"),
        issuer: new_issuer(issuer_url(addr))?,
        options,
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/vendor/{*path}", get(vendor))
        .route("/issuer/.well-known/openid-configuration", get(discovery))
        .route("/issuer/jwks", get(jwks))
        .route("/issuer/authorize", get(authorize))
        .with_state(shared);
    axum::serve(listener, router).await
}

fn new_issuer(url: String) -> std::io::Result<Issuer> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = secret
        .to_pkcs8_der()
        .map_err(|e| std::io::Error::other(format!("signing key: {e}")))?;
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(std::io::Error::other("signing key: no public point"));
    };
    // A new `kid` at every start, so that ztv refetches the keys after a restart.
    let kid = format!("web-example-{}", random_hex(6));
    Ok(Issuer {
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }),
        url,
        kid,
        key: EncodingKey::from_ec_der(der.as_bytes()),
    })
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    file(&shared.options.static_dir.join("index.html")).await
}

async fn app_js(State(shared): State<Arc<Shared>>) -> Response {
    file(&shared.options.static_dir.join("app.js")).await
}

/// The vendored Zoom Meeting SDK (`vendor-sdk.sh`); 404 until it is vendored.
async fn vendor(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    // Only plain names below `vendor/`: no `..`, no absolute path.
    let relative = Path::new(&path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    file(&shared.options.static_dir.join("vendor").join(relative)).await
}

async fn file(path: &Path) -> Response {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || std::fs::read(owned)).await;
    let Ok(Ok(bytes)) = read else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mime = match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            // A demo edited while it runs: never serve a stale copy.
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

/// Public metadata, readable by pages of any origin (as real providers serve it).
fn public_json(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    let issuer = &shared.issuer.url;
    public_json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "email", "profile"],
        "claims_supported": ["sub", "email", "email_verified", "name"],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    public_json(json!({"keys": [shared.issuer.jwk]}))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
}

/// `GET /issuer/authorize`: signs in the demo user at once and sends the browser back to
/// `redirect_uri` with `#id_token=…&state=…` (or `#error=…`).
async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let options = &shared.options;
    if query.client_id.as_deref() != Some(options.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id\n").into_response();
    }
    // Tokens go only to pages of this origin or of the listed ones: never to any URL asked for.
    let Some(mut back) = query
        .redirect_uri
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .filter(|u| {
            let origin = u.origin().ascii_serialization();
            origin == shared.origin || options.redirect_origins.contains(&origin)
        })
    else {
        return (StatusCode::BAD_REQUEST, "redirect_uri not allowed\n").into_response();
    };
    let mut fragment = url::form_urlencoded::Serializer::new(String::new());
    match (query.response_type.as_deref(), &query.nonce) {
        (Some("id_token"), Some(nonce)) => match id_token(&shared, nonce) {
            Ok(token) => {
                fragment
                    .append_pair("id_token", &token)
                    .append_pair("token_type", "Bearer")
                    .append_pair("expires_in", &TOKEN_SECONDS.to_string());
            }
            Err(_) => {
                fragment.append_pair("error", "server_error");
            }
        },
        (Some("id_token"), None) => {
            fragment
                .append_pair("error", "invalid_request")
                .append_pair("error_description", "nonce is required");
        }
        _ => {
            fragment.append_pair("error", "unsupported_response_type");
        }
    }
    if let Some(state) = &query.state {
        fragment.append_pair("state", state);
    }
    back.set_fragment(Some(&fragment.finish()));
    Redirect::to(back.as_str()).into_response()
}

fn id_token(shared: &Shared, nonce: &str) -> jsonwebtoken::errors::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let options = &shared.options;
    let claims = json!({
        "iss": shared.issuer.url,
        "aud": options.client_id,
        "sub": format!("demo-{}", options.user_email),
        "email": options.user_email,
        "email_verified": true,
        "name": options.user_name,
        "nonce": nonce,
        "iat": now,
        "exp": now + TOKEN_SECONDS,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(shared.issuer.kid.clone());
    jsonwebtoken::encode(&header, &claims, &shared.issuer.key)
}
