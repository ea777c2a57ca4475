//! Talking to a [`TestApp`]: one method per route, the error shape every refusal must have,
//! and a JWT decoder that checks everything Zoom would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{RequestBuilder, Response};
use serde_json::Value;

use super::app::TestApp;

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text of `GET /metrics` on the main port (which must answer 200).
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub fn post(&self, path: &str, key: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(key)
    }

    pub async fn get_with(&self, path: &str, key: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with `body` as JSON.
    pub async fn post_json(&self, path: &str, key: &str, body: Value) -> Response {
        self.post(path, key).json(&body).send().await.unwrap()
    }

    pub async fn signature(&self, key: &str, body: Value) -> Response {
        self.post_json("/v1/meeting-sdk/signature", key, body).await
    }

    pub async fn video_token(&self, key: &str, body: Value) -> Response {
        self.post_json("/v1/video-sdk/token", key, body).await
    }

    pub async fn zak(&self, key: &str, user: &str) -> Response {
        self.get_with(&format!("/v1/users/{user}/zak"), key).await
    }

    pub async fn s2s_token(&self, key: &str) -> Response {
        self.post("/v1/s2s/token", key).send().await.unwrap()
    }

    pub async fn join(&self, key: &str, body: Value) -> Response {
        self.post_json("/v1/join", key, body).await
    }
}

/// Asserts an error response: status, code, a message containing `needle`, and a request id
/// that matches the `x-request-id` header.
pub async fn assert_error(response: Response, status: u16, code: &str, needle: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(needle),
        "message {message:?} lacks {needle:?}"
    );
    assert_eq!(body["error"]["requestId"], header_id.as_str());
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only `error` at the top: {body}"
    );
    body
}

/// Decodes a JWT after checking its header is exactly `{"alg":"HS256","typ":"JWT"}` and its
/// HS256 signature verifies under `secret`; returns the payload.
pub fn decode_jwt(token: &str, secret: &str) -> Value {
    let header_b64 = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
    assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));

    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .expect("signature verifies under the app secret");
    data.claims
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    ztv::clock::now()
}
