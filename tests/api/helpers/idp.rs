//! A local OIDC identity provider for the tests: keys generated here, discovery and JWKS
//! served over HTTP, tokens signed on demand, and a count of JWKS fetches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

pub const AUDIENCE: &str = "ztv-tests";

/// A signing key the provider may publish.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// The public key in PEM, for the HS256-with-public-key attack.
    pub public_pem: String,
}

/// RSA keys are slow to make: two per test binary, shared.
fn rsa_keys() -> &'static [(String, rsa::RsaPrivateKey); 2] {
    static KEYS: OnceLock<[(String, rsa::RsaPrivateKey); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::rngs::OsRng;
        let mut make = |kid: &str| {
            (
                kid.to_string(),
                rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            )
        };
        [make("rsa-1"), make("rsa-2")]
    })
}

pub fn rsa_key(index: usize) -> SigningKey {
    let (kid, private) = &rsa_keys()[index];
    let der = private.to_pkcs1_der().unwrap();
    let public = private.to_public_key();
    let public_pem =
        rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public, rsa::pkcs8::LineEnding::LF)
            .unwrap();
    SigningKey {
        kid: kid.clone(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
        public_pem,
    }
}

pub fn ec_key(kid: &str) -> SigningKey {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = secret.to_pkcs8_der().unwrap();
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    SigningKey {
        kid: kid.to_string(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }),
        public_pem: String::new(),
    }
}

pub struct Idp {
    pub issuer: String,
    published: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicU64>,
}

impl Idp {
    /// Serves discovery and a JWKS holding `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let published = Arc::new(Mutex::new(
            keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
        ));
        let jwks_fetches = Arc::new(AtomicU64::new(0));
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let discovery = discovery.clone();
                    async move { Json(discovery) }
                }),
            )
            .route(
                "/keys",
                get({
                    let published = Arc::clone(&published);
                    let fetches = Arc::clone(&jwks_fetches);
                    move || {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let keys = published.lock().unwrap().clone();
                        async move { Json(json!({"keys": keys})) }
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Idp {
            issuer,
            published,
            jwks_fetches,
        }
    }

    /// Serves discovery and a JWKS holding the first shared RSA key, which it returns too.
    pub async fn start_with_rsa_key() -> (Idp, SigningKey) {
        let key = rsa_key(0);
        let idp = Idp::start(&[&key]).await;
        (idp, key)
    }

    /// Publishes another key (rotation).
    pub fn publish(&self, key: &SigningKey) {
        self.published.lock().unwrap().push(key.jwk.clone());
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The claims of a valid token for `email`, to be altered by a test.
    pub fn claims(&self, email: &str) -> Value {
        let now = ztv::clock::now();
        json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": format!("sub-{email}"), "email": email,
            "email_verified": true,
            "iat": now, "nbf": now - 5, "exp": now + 600,
        })
    }

    pub fn token(&self, key: &SigningKey, email: &str) -> String {
        sign(key, &self.claims(email))
    }
}

/// A token for `email` signed with `key`: a valid one's claims with `changes` applied (`null`
/// removes a claim).
pub fn token_with(provider: &Idp, key: &SigningKey, email: &str, changes: Value) -> String {
    let mut claims = provider.claims(email);
    for (name, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => {
                claims.as_object_mut().unwrap().remove(name);
            }
            value => claims[name] = value.clone(),
        }
    }
    sign(key, &claims)
}

pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// The `[end_users]` section for an issuer.
pub fn end_users_config(idp: &Idp, scopes: &str) -> String {
    format!(
        "[end_users]\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\nscopes = [{scopes}]\naccount = \"prod\"\njwks_min_refetch_seconds = 2\n",
        idp.issuer
    )
}
