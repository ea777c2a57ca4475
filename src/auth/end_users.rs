//! End-user sign-in: verifies a JWT from the organisation's identity provider (OIDC) against
//! the issuer's published keys (JWKS), fetched once, cached, and refetched when a token names
//! an unknown `kid` (at most once per `end_users.jwks_min_refetch_seconds`).
//!
//! Only RS256 and ES256 are accepted, whatever the token's header claims: never `none`, never
//! an HMAC algorithm (which would let a public key act as a shared secret).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::config::EndUserSettings;
use crate::zoom_user::ZoomUser;

/// The `alg` a token's header declares, read without trusting anything else in it.
fn declared_algorithm(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let alg = serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("alg")?
        .as_str()?
        .to_string();
    Some(
        alg.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect(),
    )
}

/// Why a token was refused; the message says which check failed and never echoes the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    #[error("end-user token is malformed")]
    Malformed,
    #[error("end-user token algorithm {0} is not accepted (RS256 or ES256 only)")]
    Algorithm(String),
    #[error("end-user token is signed by an unknown key")]
    UnknownKey,
    #[error("end-user token signature does not verify")]
    Signature,
    #[error("end-user token has expired")]
    Expired,
    #[error("end-user token is not valid yet")]
    NotYetValid,
    #[error("end-user token has the wrong issuer")]
    Issuer,
    #[error("end-user token has the wrong audience")]
    Audience,
    #[error("end-user token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("end-user token's `{0}` claim is not in a form ztv accepts")]
    InvalidClaim(String),
    #[error("end-user token's email is not verified (`email_verified`)")]
    EmailNotVerified,
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Keys(String),
}

/// A verified end user.
#[derive(Debug, Clone)]
pub struct EndUser {
    /// The value of `user_claim`: who `me` is at Zoom.
    pub me: ZoomUser,
    /// `sub`, or `me` when absent: names the caller for rate limits and logs.
    pub subject: String,
}

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    /// Keys without a `kid`, usable only when the token names none.
    unnamed: Vec<(DecodingKey, Algorithm)>,
    /// The last fetch (successful or not), to rate-limit refetches.
    fetched: Option<Instant>,
}

pub struct Verifier {
    settings: EndUserSettings,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    /// One fetch at a time; others wait and then read what it stored.
    fetching: tokio::sync::Mutex<()>,
}

impl Verifier {
    pub fn new(settings: EndUserSettings) -> Result<Self, SignInError> {
        // No redirects: the keys come from the configured (or discovered) URL or not at all.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SignInError::Keys(e.to_string()))?;
        Ok(Self {
            settings,
            http,
            keys: Mutex::new(Keys {
                by_kid: HashMap::new(),
                unnamed: Vec::new(),
                fetched: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &EndUserSettings {
        &self.settings
    }

    /// Verifies `token` and names the user.
    pub async fn verify(&self, token: &str) -> Result<EndUser, SignInError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| match declared_algorithm(token) {
                // A header naming an algorithm the library does not even know (`none`).
                Some(alg) => SignInError::Algorithm(alg),
                None => SignInError::Malformed,
            })?;
        let algorithm = match header.alg {
            Algorithm::RS256 | Algorithm::ES256 => header.alg,
            other => return Err(SignInError::Algorithm(format!("{other:?}"))),
        };
        let key = match self.find_key(header.kid.as_deref(), algorithm) {
            Some(key) => key,
            None => {
                self.refetch().await?;
                self.find_key(header.kid.as_deref(), algorithm)
                    .ok_or(SignInError::UnknownKey)?
            }
        };

        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => SignInError::Expired,
                K::ImmatureSignature => SignInError::NotYetValid,
                K::InvalidIssuer => SignInError::Issuer,
                K::InvalidAudience => SignInError::Audience,
                K::InvalidSignature => SignInError::Signature,
                K::MissingRequiredClaim(claim) => SignInError::MissingClaim(claim.clone()),
                K::InvalidAlgorithm => SignInError::Algorithm(format!("{algorithm:?}")),
                _ => SignInError::Malformed,
            }
        })?;
        let claim = &self.settings.user_claim;
        let me = data
            .claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SignInError::MissingClaim(claim.clone()))?;
        // The claim is the caller's identity everywhere: it must be one exactly as given (no
        // trimming, no case folding beyond ASCII), and never `me`, which names whoever calls.
        let me = ZoomUser::parse(me)
            .ok()
            .filter(|user| !user.is_me())
            .ok_or_else(|| SignInError::InvalidClaim(claim.clone()))?;
        self.check_email_verified(&data.claims)?;
        // `sub` names the caller in rate limits, logs and the audit log: printable ASCII of
        // at most 255 characters, as OpenID Connect bounds it, or the token is refused.
        let subject = match data.claims.get("sub") {
            None => me.key().to_string(),
            Some(Value::String(sub))
                if (1..=255).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                sub.clone()
            }
            Some(_) => return Err(SignInError::InvalidClaim("sub".into())),
        };
        Ok(EndUser { me, subject })
    }

    /// `email_verified`: `false` is refused whenever the email names the user; a token without
    /// it is refused when `end_users.require_email_verified` is on.
    fn check_email_verified(&self, claims: &Value) -> Result<(), SignInError> {
        let verified = match claims.get("email_verified") {
            Some(Value::Bool(verified)) => Some(*verified),
            // Some providers send it as a string.
            Some(Value::String(text)) => Some(text == "true"),
            Some(_) => Some(false),
            None => None,
        };
        match verified {
            Some(false) if self.settings.user_claim == "email" => {
                Err(SignInError::EmailNotVerified)
            }
            Some(false) | None if self.settings.require_email_verified => {
                Err(SignInError::EmailNotVerified)
            }
            _ => Ok(()),
        }
    }

    fn find_key(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match kid {
            Some(kid) => keys
                .by_kid
                .get(kid)
                .filter(|(_, alg)| *alg == algorithm)
                .map(|(key, _)| key.clone()),
            None => {
                let mut matching = keys
                    .unnamed
                    .iter()
                    .chain(keys.by_kid.values())
                    .filter(|(_, alg)| *alg == algorithm);
                let first = matching.next()?;
                // Without a `kid` a token is only accepted when exactly one key could sign it.
                matching.next().is_none().then(|| first.0.clone())
            }
        }
    }

    /// Fetches the keys again, unless another caller just did or the last fetch was too recent.
    async fn refetch(&self) -> Result<(), SignInError> {
        let started_waiting = Instant::now();
        let _turn = self.fetching.lock().await;
        {
            let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = keys.fetched
                && (at >= started_waiting || at.elapsed() < self.settings.jwks_min_refetch)
            {
                return Ok(());
            }
        }
        let result = self.fetch_keys().await;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.fetched = Some(Instant::now());
        let (by_kid, unnamed) = result?;
        tracing::info!(
            keys = by_kid.len() + unnamed.len(),
            "fetched the identity provider's keys"
        );
        keys.by_kid = by_kid;
        keys.unnamed = unnamed;
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    async fn fetch_keys(
        &self,
    ) -> Result<
        (
            HashMap<String, (DecodingKey, Algorithm)>,
            Vec<(DecodingKey, Algorithm)>,
        ),
        SignInError,
    > {
        let jwks_url = match &self.settings.jwks_url {
            Some(url) => url.to_string(),
            None => self.discover().await?,
        };
        let set: JwkSet = self.get_json(&jwks_url).await?;
        let mut by_kid = HashMap::new();
        let mut unnamed = Vec::new();
        for jwk in &set.keys {
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
                (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
                (Some(_), _) => continue,
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(ec))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                (None, _) => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    by_kid.insert(kid.clone(), (key, algorithm));
                }
                None => unnamed.push((key, algorithm)),
            }
        }
        Ok((by_kid, unnamed))
    }

    /// `jwks_uri` from `{issuer}/.well-known/openid-configuration`.
    async fn discover(&self) -> Result<String, SignInError> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        // The discovered URL is held to the rule the configured one is.
        match url::Url::parse(&discovery.jwks_uri) {
            Ok(jwks) if crate::config::https_or_loopback(&jwks) => Ok(discovery.jwks_uri),
            _ => Err(SignInError::Keys(
                "the discovery document's jwks_uri is not an https URL".into(),
            )),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, SignInError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| SignInError::Keys(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(SignInError::Keys(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|_| SignInError::Keys(format!("{url} did not answer the expected JSON")))
    }
}
