//! The trust boundary, over real HTTP: identities validated once and compared only with ASCII
//! case folded, `sub` and `email_verified` checked, Video SDK hosting behind its own scope, OBF
//! tokens minted per request, a budget of Zoom calls per caller and a bounded ZAK cache,
//! refusals without a caller counted but only sampled into the audit log, at most ten pending
//! authorisations per caller, `ztv audit` escaping control characters, a private SQLite store,
//! https (or loopback) for every URL ztv fetches, redirects not followed, and no cache
//! allowed to keep a `/v1` answer.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use ztv::emulator::Endpoint;
use ztv::scope::Scope;
use ztv::store::AuditEvent;
use ztv::zoom_user::ZoomUser;

use crate::helpers::idp::{self, Idp, token_with};
use crate::helpers::oauth::{authorize, authorize_url, callback, consent};
use crate::helpers::*;

const KATE_ID: &str = "uKate004";
const KATE_EMAIL: &str = "kate@example.com";
/// `Kate@example.com` with its `K` a KELVIN SIGN (U+212A): Unicode lower-cases it to `k`.
const KELVIN_KATE: &str = "\u{212A}ate@example.com";

/// The service `builder` makes, with user OAuth; Kate, a third user of `prod`, is the one who
/// consents at Zoom.
async fn grant_app_kate_consents_to(builder: AppBuilder<WithZoom>) -> ZoomApp {
    let app = builder.grants().build().await;
    app.zoom.add_user(S2S_ACCOUNT_ID, KATE_ID, KATE_EMAIL);
    app.zoom.set_consenting_user(KATE_ID);
    app
}

/// The service with the emulator and end-user sign-in granting `scopes`, and the provider's key.
async fn end_user_app(scopes: &str, end_user_extra: &str) -> (ZoomApp, Idp, idp::SigningKey) {
    let (provider, key) = Idp::start_with_rsa_key().await;
    let app = TestApp::builder()
        .zoom()
        .end_users(&provider, scopes)
        .config(end_user_extra)
        .build()
        .await;
    (app, provider, key)
}

/// The value of the series `name` whose labels include `label` (0 when there is none).
fn series(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---- 1. Identity ------------------------------------------------------------------------

#[tokio::test]
async fn an_end_user_whose_email_claim_is_not_a_plain_identity_is_refused_without_echoing_it() {
    let (app, provider, key) = end_user_app(r#""meeting-sdk:signature""#, "").await;
    let too_long = format!("{}@example.com", "k".repeat(129 - "@example.com".len()));
    let claims = [
        KELVIN_KATE,
        "me",
        "ME",
        "kate\u{7}@example.com",
        "kate @example.com",
        &too_long,
    ];

    for email in claims {
        // A clean `sub`, so only the email can be what is wrong.
        let token = token_with(&provider, &key, email, json!({"sub": "sub-1"}));
        let response = app
            .signature(&token, json!({"meetingNumber": "123456789", "role": 0}))
            .await;

        let body = assert_error(response, 401, "unauthenticated", "`email`").await;
        let message = body["error"]["message"].as_str().unwrap();
        // `me` is in many words; the longer values must not appear at all.
        if email.len() > 2 {
            assert!(!message.contains(email), "{email:?} echoed: {message}");
        }
    }
    let fine = token_with(&provider, &key, KATE_EMAIL, json!({"sub": "sub-1"}));
    let response = app
        .signature(&fine, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    assert_eq!(response.status(), 200, "the same token with a plain email");
}

#[tokio::test]
async fn a_kelvin_sign_look_alike_gets_neither_kates_cached_zak_nor_her_grant() {
    let (provider, provider_key) = Idp::start_with_rsa_key().await;
    let builder = TestApp::builder()
        .zoom()
        .end_users(&provider, r#""zak:read""#);
    let app = grant_app_kate_consents_to(builder).await;
    let admin = app
        .key("admin", &[Scope::GrantsAdmin, Scope::ZakRead], Some("prod"))
        .await;
    authorize(&app, &admin, KATE_EMAIL).await;
    // Kate's ZAK, fetched with her own grant and cached under her email.
    let kates: Value = app.zak(&admin, KATE_EMAIL).await.json().await.unwrap();
    assert_eq!(kates["source"], "user_grant", "{kates}");
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1);
    let kelvin = token_with(
        &provider,
        &provider_key,
        KELVIN_KATE,
        json!({"sub": "sub-kelvin"}),
    );

    let as_me = app.zak(&kelvin, "me").await;
    let as_kate = app.zak(&kelvin, KATE_EMAIL).await;
    let delete = app
        .http
        .delete(app.url("/v1/oauth/grants/me"))
        .bearer_auth(&kelvin)
        .send()
        .await
        .unwrap();

    for response in [as_me, as_kate, delete] {
        let body = assert_error(response, 401, "unauthenticated", "`email`").await;
        assert!(!body.to_string().contains(kates["zak"].as_str().unwrap()));
    }
    assert_eq!(
        app.zoom.calls(Endpoint::Zak),
        1,
        "Zoom was not asked either"
    );
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(KATE_EMAIL).unwrap())
            .await
            .unwrap()
            .is_some(),
        "Kate's grant is still there"
    );
    let again: Value = app.zak(&admin, KATE_EMAIL).await.json().await.unwrap();
    assert_eq!(again["source"], "user_grant", "{again}");
}

#[tokio::test]
async fn an_end_user_names_themselves_in_any_ascii_case_and_is_audited_by_the_folded_identity() {
    let (app, provider, key) = end_user_app(r#""zak:read""#, "").await;
    app.zoom.add_user(S2S_ACCOUNT_ID, KATE_ID, KATE_EMAIL);
    let kate = provider.token(&key, "Kate@Example.com");

    let own = app.zak(&kate, "kate@EXAMPLE.com").await;
    let someone = app.zak(&kate, "someone@example.com").await;
    let look_alike = app.zak(&kate, "%E2%84%AAate@example.com").await;

    assert_eq!(own.status(), 200);
    assert_error(someone, 403, "forbidden", "themselves").await;
    assert_error(look_alike, 400, "invalid_request", "userId").await;
    let events = app
        .audit_until(|events| {
            events
                .iter()
                .any(|e| e.route.ends_with("/zak") && e.status == 200)
        })
        .await;
    let issued = events
        .iter()
        .find(|e| e.route.ends_with("/zak") && e.status == 200)
        .unwrap();
    assert_eq!(issued.target_user.as_deref(), Some(KATE_EMAIL));
}

#[tokio::test]
async fn a_sub_claim_with_a_newline_or_over_255_characters_is_refused() {
    let (app, provider, key) = end_user_app(r#""meeting-sdk:signature""#, "").await;
    let body = json!({"meetingNumber": "123456789", "role": 0});

    for sub in ["sub-1\nsub-2".to_string(), "s".repeat(256)] {
        let token = token_with(&provider, &key, ALICE_EMAIL, json!({ "sub": sub }));
        let response = app.signature(&token, body.clone()).await;
        assert_error(response, 401, "unauthenticated", "`sub`").await;
    }
    let longest = token_with(
        &provider,
        &key,
        ALICE_EMAIL,
        json!({"sub": "s".repeat(255)}),
    );
    assert_eq!(app.signature(&longest, body).await.status(), 200);
}

// ---- 2. Video SDK host ------------------------------------------------------------------

#[tokio::test]
async fn video_sdk_hosting_and_cloud_recording_need_the_video_sdk_host_scope() {
    let app = TestApp::builder().build().await;
    let participant = app
        .key("participant", &[Scope::VideoSdkToken], Some("prod"))
        .await;
    let host = app
        .key(
            "host",
            &[Scope::VideoSdkToken, Scope::VideoSdkHost],
            Some("prod"),
        )
        .await;

    for body in [
        json!({"sessionName": "s", "role": 1}),
        json!({"sessionName": "s", "role": 0, "cloudRecordingOption": 1}),
        json!({"sessionName": "s", "role": 0, "cloudRecordingElection": 1}),
    ] {
        let response = app.video_token(&participant, body).await;
        assert_error(response, 403, "forbidden", "video-sdk:host").await;
    }
    let joined = app
        .video_token(&participant, json!({"sessionName": "s", "role": 0}))
        .await;
    assert_eq!(joined.status(), 200);
    let hosted = app
        .video_token(
            &host,
            json!({"sessionName": "s", "role": 1, "cloudRecordingOption": 1}),
        )
        .await;
    assert_eq!(hosted.status(), 200);
    let body: Value = hosted.json().await.unwrap();
    let claims = decode_jwt(body["signature"].as_str().unwrap(), VIDEO_SECRET);
    assert_eq!(claims["role_type"], 1);
    assert_eq!(claims["cloud_recording_option"], 1);
}

#[tokio::test]
async fn an_end_users_video_token_carries_their_own_identity_and_no_one_elses() {
    let (app, provider, key) = end_user_app(r#""video-sdk:token""#, "").await;
    let alice = provider.token(&key, "Alice@Example.com");
    let claims_of = |body: &Value| decode_jwt(body["signature"].as_str().unwrap(), VIDEO_SECRET);

    let unnamed = app
        .video_token(&alice, json!({"sessionName": "s", "role": 0}))
        .await;
    let bob = app
        .video_token(
            &alice,
            json!({"sessionName": "s", "role": 0, "userKey": "bob"}),
        )
        .await;
    let bob_identity = app
        .video_token(
            &alice,
            json!({"sessionName": "s", "role": 0, "userIdentity": "bob@example.com"}),
        )
        .await;
    let herself = app
        .video_token(
            &alice,
            json!({"sessionName": "s", "role": 0, "userKey": "ALICE@example.com"}),
        )
        .await;
    let hosting = app
        .video_token(&alice, json!({"sessionName": "s", "role": 1}))
        .await;

    assert_eq!(unnamed.status(), 200);
    let unnamed: Value = unnamed.json().await.unwrap();
    assert_eq!(claims_of(&unnamed)["user_key"], ALICE_EMAIL);
    assert_error(bob, 403, "forbidden", "themselves").await;
    assert_error(bob_identity, 403, "forbidden", "themselves").await;
    assert_eq!(herself.status(), 200);
    let herself: Value = herself.json().await.unwrap();
    assert_eq!(claims_of(&herself)["user_key"], "ALICE@example.com");
    assert_error(hosting, 403, "forbidden", "video-sdk:host").await;
}

// ---- 3. Unauthenticated growth ----------------------------------------------------------

#[tokio::test]
async fn refusals_without_a_caller_are_all_counted_but_only_sampled_into_the_audit_log() {
    let app = TestApp::builder().build().await;
    let url = app.url("/v1/meeting-sdk/signature");
    let invented = "X".repeat(2_000);
    let other_route = r#"route="OTHER /v1/meeting-sdk/signature""#;
    let post_route = r#"route="POST /v1/meeting-sdk/signature""#;
    let before = app.metrics().await;
    let name = "ztv_unauthenticated_refused_total";

    let started = Instant::now();
    // The invented methods first: the sampler admits the first refusal of a fresh address.
    for _ in 0..5 {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).unwrap();
        let response = app.http.request(method, &url).send().await.unwrap();
        assert_error(response, 405, "method_not_allowed", "").await;
    }
    for _ in 0..4 {
        let burst = (0..50).map(|_| app.http.post(&url).json(&json!({})).send());
        for response in futures_util::future::join_all(burst).await {
            assert_error(response.unwrap(), 401, "unauthenticated", "").await;
        }
    }
    let elapsed = started.elapsed();

    let events = app.settled_audit().await;
    // One a second from one address (the first at once): a handful, not 205.
    let bound = 5.max(2 + elapsed.as_secs() as usize);
    assert!(
        !events.is_empty() && events.len() <= bound,
        "{} rows in {elapsed:?}: {events:?}",
        events.len()
    );
    assert!(events.iter().all(|e| e.caller.is_none()));
    assert!(
        events.iter().all(|e| e.route.len() <= 64),
        "only bounded routes are stored: {events:?}"
    );
    assert!(!events.iter().any(|e| e.route.contains("XXXX")));
    assert!(
        events
            .iter()
            .any(|e| e.route == "OTHER /v1/meeting-sdk/signature" && e.status == 405),
        "{events:?}"
    );
    let after = app.metrics().await;
    assert!(!after.contains("XXXX"), "no invented method in a label");
    assert!(series(&after, name, other_route) - series(&before, name, other_route) >= 5.0);
    assert!(series(&after, name, post_route) - series(&before, name, post_route) >= 200.0);
}

// ---- 4. OAuth states --------------------------------------------------------------------

#[tokio::test]
async fn an_api_key_keeps_at_most_ten_pending_authorisations_the_oldest_going_first() {
    let app = TestApp::builder().zoom().grants().build().await;
    app.zoom.set_consenting_user(ALICE_ID);
    let admin = app.key("admin", &[Scope::GrantsAdmin], Some("prod")).await;
    let mut urls = Vec::new();
    for _ in 0..25 {
        urls.push(authorize_url(&app, &admin, ALICE_EMAIL).await);
    }

    let mut answers = Vec::new();
    for url in &urls {
        let back = consent(url).await;
        answers.push(callback(&app, &back).await);
    }

    let accepted: Vec<bool> = answers.iter().map(|r| r.status() == 200).collect();
    assert_eq!(
        accepted.iter().filter(|ok| **ok).count(),
        10,
        "{accepted:?}"
    );
    assert!(!accepted[0], "the oldest state is gone");
    assert!(accepted[24], "the newest state works");
    for refused in answers.into_iter().filter(|r| r.status() != 200) {
        let expected = "state: unknown, already used or expired";
        assert_error(refused, 400, "invalid_request", expected).await;
    }
}

// ---- 5. Audit forging -------------------------------------------------------------------

#[tokio::test]
async fn ztv_audit_prints_a_field_with_a_newline_on_one_line_with_the_newline_escaped() {
    let config = ConfigFile::standard("");
    let db = config.db();
    let store = ztv::store::connect(&format!("sqlite://{}", db.display()).into())
        .await
        .unwrap();
    let forged = "mallory\n2026-01-01T00:00:00Z issued 200 admin POST /v1/s2s/token";
    store
        .append_audit(&[AuditEvent {
            at_ms: ztv::audit::now_ms(),
            request_id: Some("req-1".into()),
            caller: Some(forged.into()),
            route: "POST /v1/meeting-sdk/signature".into(),
            account: Some("prod".into()),
            target_user: None,
            target: Some(format!("123\r{forged}\u{1b}[2K")),
            outcome: "refused".into(),
            status: 403,
        }])
        .await
        .unwrap();

    let output = config.run_ok(&["audit"]);

    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("mallory\\n2026-01-01T00:00:00Z issued 200 admin"),
        "{stdout}"
    );
    assert!(stdout.contains("123\\rmallory\\n2026"), "{stdout}");
    assert!(stdout.contains("\\u{1b}[2K"), "{stdout}");
    assert!(!stdout.contains('\r') && !stdout.contains('\u{1b}'));
}

// ---- 6. SQLite permissions --------------------------------------------------------------

#[tokio::test]
async fn the_sqlite_store_is_created_private_and_config_check_warns_once_it_is_not() {
    let config = ConfigFile::empty();
    let outer = config.dir().join("state");
    let folder = outer.join("ztv");
    let db = folder.join("ztv.db");
    config.write(&test_config(&db, ""));

    let store = ztv::store::connect(&format!("sqlite://{}", db.display()).into())
        .await
        .unwrap();
    store
        .append_audit(&[AuditEvent {
            at_ms: ztv::audit::now_ms(),
            request_id: None,
            caller: Some("web".into()),
            route: "cli clients create".into(),
            account: None,
            target_user: None,
            target: Some("web".into()),
            outcome: "created".into(),
            status: 0,
        }])
        .await
        .unwrap();

    assert_eq!(mode(&outer), 0o700, "{}", outer.display());
    assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    assert_eq!(mode(&db), 0o600);
    let mut files = 1;
    for suffix in ["-wal", "-shm"] {
        let path = folder.join(format!("ztv.db{suffix}"));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
    }
    assert!(files >= 2, "a write in WAL mode leaves a -wal file");
    let quiet = config.run_ok(&["config", "check"]);
    assert!(!String::from_utf8_lossy(&quiet.stdout).contains("readable by other users"));

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = config.run_ok(&["config", "check"]);

    let stdout = String::from_utf8(warned.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "warning: {} is readable by other users",
            db.display()
        )),
        "{stdout}"
    );
    assert_eq!(stdout.matches("readable by other users").count(), 1);
    drop(store);
}

// ---- 7. email_verified ------------------------------------------------------------------

#[tokio::test]
async fn by_default_an_email_that_is_not_verified_or_not_said_to_be_is_refused() {
    let (app, provider, key) = end_user_app(r#""meeting-sdk:signature""#, "").await;
    let body = json!({"meetingNumber": "123456789", "role": 0});
    let unverified = token_with(
        &provider,
        &key,
        ALICE_EMAIL,
        json!({"email_verified": false}),
    );
    let unsaid = token_with(
        &provider,
        &key,
        ALICE_EMAIL,
        json!({"email_verified": null}),
    );
    let verified = token_with(
        &provider,
        &key,
        ALICE_EMAIL,
        json!({"email_verified": true}),
    );

    let unverified = app.signature(&unverified, body.clone()).await;
    let unsaid = app.signature(&unsaid, body.clone()).await;
    let verified = app.signature(&verified, body).await;

    assert_error(unverified, 401, "unauthenticated", "email_verified").await;
    assert_error(unsaid, 401, "unauthenticated", "email_verified").await;
    assert_eq!(verified.status(), 200);
}

#[tokio::test]
async fn without_require_email_verified_a_token_may_omit_the_claim_but_never_say_false() {
    let (app, provider, key) = end_user_app(
        r#""meeting-sdk:signature""#,
        "require_email_verified = false\n",
    )
    .await;
    let body = json!({"meetingNumber": "123456789", "role": 0});
    let unsaid = token_with(
        &provider,
        &key,
        ALICE_EMAIL,
        json!({"email_verified": null}),
    );
    let unverified = token_with(
        &provider,
        &key,
        ALICE_EMAIL,
        json!({"email_verified": false}),
    );

    let unsaid = app.signature(&unsaid, body.clone()).await;
    let unverified = app.signature(&unverified, body).await;

    assert_eq!(unsaid.status(), 200);
    assert_error(unverified, 401, "unauthenticated", "email_verified").await;
}

// ---- 8. URLs ----------------------------------------------------------------------------

#[test]
fn urls_ztv_fetches_from_must_be_https_unless_they_are_loopback() {
    let db = std::env::temp_dir().join("ztv-never-opened.db");
    let load = |extra: &str| ztv::config::Settings::from_toml(&test_config(&db, extra));
    let end_users = |issuer: &str, jwks: &str| {
        format!(
            "[end_users]\nissuer = \"{issuer}\"\naudience = \"a\"\njwks_url = \"{jwks}\"\n\
             account = \"prod\"\n"
        )
    };

    let zoom = load("[zoom]\napi_url = \"http://zoom.example.com/v2\"\n").unwrap_err();
    let jwks = load(&end_users(
        "https://idp.example.com",
        "http://idp.example.com/jwks",
    ))
    .unwrap_err();
    let discovered = load(&end_users("http://idp.example.com", "")).unwrap_err();

    for (error, key) in [
        (zoom, "zoom.api_url"),
        (jwks, "end_users.jwks_url"),
        (discovered, "end_users.issuer"),
    ] {
        let error = error.to_string();
        assert!(
            error.contains(&format!("{key}: must be an https URL")),
            "{error}"
        );
    }
    load("[zoom]\napi_url = \"http://127.0.0.1:9/v2\"\noauth_url = \"http://localhost:9\"\n")
        .unwrap();
    load(&end_users(
        "http://idp.example.com",
        "http://127.0.0.1:9/jwks",
    ))
    .unwrap();
}

#[tokio::test]
async fn an_identity_providers_redirect_is_not_followed_for_its_keys() {
    let (provider, key) = Idp::start_with_rsa_key().await;
    let real_keys = format!("{}/keys", provider.issuer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting = format!("http://{}/jwks", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let to = real_keys.clone();
            async move { (axum::http::StatusCode::FOUND, [("location", to)]) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = TestApp::builder()
        .end_users(&provider, r#""meeting-sdk:signature""#)
        .config(&format!("jwks_url = \"{redirecting}\"\n"))
        .build()
        .await;

    let response = app
        .signature(
            &provider.token(&key, ALICE_EMAIL),
            json!({"meetingNumber": "123456789", "role": 0}),
        )
        .await;

    assert_error(
        response,
        401,
        "unauthenticated",
        "the identity provider's keys cannot be fetched",
    )
    .await;
    assert_eq!(provider.jwks_fetches(), 0, "the redirect was not followed");
}

// ---- 9. OBF single use ------------------------------------------------------------------

#[tokio::test]
async fn twenty_concurrent_obf_requests_for_one_meeting_mint_twenty_tokens() {
    let app = TestApp::builder()
        .zoom()
        .zoom_keys(PATIENT)
        .config(NO_RATE_LIMIT)
        .build()
        .await;
    let key = app.key("svc", &[Scope::ObfRead], Some("prod")).await;
    let path = format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=123456789");

    let requests = (0..20).map(|_| app.get_with(&path, &key));
    let responses = futures_util::future::join_all(requests).await;

    let mut tokens = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        tokens.insert(body["obfToken"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 20, "no token handed to two callers");
    assert_eq!(app.zoom.calls(Endpoint::Obf), 20);
}

#[tokio::test]
async fn each_join_with_obf_mints_its_own_token_while_a_zak_is_reused() {
    let app = TestApp::builder()
        .zoom()
        .config(NO_RATE_LIMIT)
        .build()
        .await;
    let key = app
        .key(
            "svc",
            &[Scope::MeetingSdkSignature, Scope::ObfRead, Scope::ZakRead],
            Some("prod"),
        )
        .await;
    let join =
        json!({"meetingNumber": "123456789", "role": 0, "userId": ALICE_ID, "withObf": true});

    let first: Value = app.join(&key, join.clone()).await.json().await.unwrap();
    let second: Value = app.join(&key, join).await.json().await.unwrap();
    let zaks = [
        app.zak(&key, ALICE_ID).await.status(),
        app.zak(&key, ALICE_ID).await.status(),
    ];

    assert!(first["obfToken"].is_string(), "{first}");
    assert!(second["obfToken"].is_string(), "{second}");
    assert_ne!(first["obfToken"], second["obfToken"]);
    assert_eq!(app.zoom.calls(Endpoint::Obf), 2);
    assert_eq!(zaks, [200, 200]);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1, "a ZAK is still reused");
}

// ---- 10. Upstream budget ----------------------------------------------------------------

const BUDGET_OF_THREE: &str = "[rate_limit]\nupstream_per_minute = 3\n";

async fn obf(app: &ZoomApp, key: &str, meeting: u64) -> reqwest::Response {
    app.get_with(
        &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber={meeting}"),
        key,
    )
    .await
}

/// Asserts a refusal for a spent budget of Zoom calls, with a `Retry-After`.
async fn assert_budget_spent(response: reqwest::Response, limit: &str) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let needle = format!("budget of {limit} Zoom calls is spent");
    assert_error(response, 429, "rate_limited", &needle).await;
}

#[tokio::test]
async fn a_caller_who_spent_its_budget_of_zoom_calls_is_refused_before_zoom_is_asked() {
    let app = TestApp::builder()
        .zoom()
        .config(BUDGET_OF_THREE)
        .build()
        .await;
    let first = app.key("first", &[Scope::ObfRead], Some("prod")).await;
    let second = app.key("second", &[Scope::ObfRead], Some("prod")).await;
    let zaks = app.key("zaks", &[Scope::ZakRead], Some("prod")).await;

    let mut answers = Vec::new();
    for meeting in 123_456_780..123_456_785 {
        answers.push(obf(&app, &first, meeting).await);
    }
    let obf_calls_for_first = app.zoom.calls(Endpoint::Obf);
    let second_answer = obf(&app, &second, 123_456_789).await;
    let mut zak_statuses = Vec::new();
    for _ in 0..11 {
        zak_statuses.push(app.zak(&zaks, ALICE_ID).await.status().as_u16());
    }

    let refused = answers.split_off(3);
    let granted: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(granted, [200, 200, 200]);
    for response in refused {
        assert_budget_spent(response, "3/min").await;
    }
    assert_eq!(obf_calls_for_first, 3, "Zoom was not asked past the budget");
    assert_eq!(
        second_answer.status(),
        200,
        "another key has its own budget"
    );
    assert_eq!(app.zoom.calls(Endpoint::Obf), 4);
    assert_eq!(zak_statuses, [200; 11]);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1, "cached ZAKs cost nothing");
}

#[tokio::test]
async fn a_key_with_its_own_budget_gets_exactly_that_many_zoom_calls() {
    let app = TestApp::builder()
        .zoom()
        .config(BUDGET_OF_THREE)
        .build()
        .await;
    let key = app.key("bigger", &[Scope::ObfRead], Some("prod")).await;
    assert!(
        app.store
            .set_client_upstream_limit("bigger", Some(5), now())
            .await
            .unwrap()
    );
    app.wait_for_two_key_refreshes().await;

    let mut statuses = Vec::new();
    for meeting in 123_456_780..123_456_785 {
        statuses.push(obf(&app, &key, meeting).await.status().as_u16());
    }
    let sixth = obf(&app, &key, 123_456_785).await;

    assert_eq!(statuses, [200; 5]);
    assert_budget_spent(sixth, "5/min").await;
    assert_eq!(app.zoom.calls(Endpoint::Obf), 5);
}

#[tokio::test]
async fn the_zak_cache_keeps_at_most_user_token_cache_entries() {
    let app = TestApp::builder()
        .zoom()
        .zoom_keys("user_token_cache_entries = 2")
        .build()
        .await;
    app.zoom.add_user(S2S_ACCOUNT_ID, KATE_ID, KATE_EMAIL);
    let key = app.key("svc", &[Scope::ZakRead], Some("prod")).await;

    for user in [ALICE_ID, BOB_ID, KATE_ID, ALICE_ID] {
        assert_eq!(app.zak(&key, user).await.status(), 200, "{user}");
    }
    assert_eq!(
        app.zoom.calls(Endpoint::Zak),
        4,
        "Alice's ZAK made room for Kate's"
    );
    assert_eq!(app.zak(&key, ALICE_ID).await.status(), 200);
    assert_eq!(app.zoom.calls(Endpoint::Zak), 4, "and hers is cached again");
}

// ---- 11. Caches -------------------------------------------------------------------------

#[tokio::test]
async fn every_v1_answer_tokens_and_refusals_alike_is_marked_no_store() {
    let app = TestApp::builder().zoom().build().await;
    let key = app
        .key(
            "svc",
            &[
                Scope::MeetingSdkSignature,
                Scope::VideoSdkToken,
                Scope::ZakRead,
                Scope::ObfRead,
                Scope::S2sToken,
            ],
            Some("prod"),
        )
        .await;
    let meeting = json!({"meetingNumber": "123456789", "role": 0});
    let join =
        json!({"meetingNumber": "123456789", "role": 0, "userId": ALICE_ID, "withZak": true});

    let answers = [
        ("signature", app.signature(&key, meeting).await),
        (
            "video token",
            app.video_token(&key, json!({"sessionName": "s", "role": 0}))
                .await,
        ),
        ("ZAK", app.zak(&key, ALICE_ID).await),
        ("OBF token", obf(&app, &key, 123456789).await),
        ("S2S token", app.s2s_token(&key).await),
        ("join", app.join(&key, join).await),
        ("refusal", app.zak("ztv_not-a-key", ALICE_ID).await),
    ];

    for (what, response) in answers {
        let expected = if what == "refusal" { 401 } else { 200 };
        assert_eq!(response.status(), expected, "{what}");
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{what}: no browser or proxy may keep it"
        );
    }
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.headers().get("cache-control").is_none());
}
