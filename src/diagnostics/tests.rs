//! Every finding, triggered by a token built to trigger it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::config::Settings;
use crate::signing::{self, MeetingNumber, MeetingSdkClaimsInput, VideoSdkClaimsInput};

const NOW: i64 = 1_780_000_000;
const SECRETS: [&str; 6] = [
    "prodMeetingSecret0123456789abcdef",
    "devMeetingSecret0123456789abcdefg",
    "prodVideoSecret0123456789abcdefgh",
    "devVideoSecret0123456789abcdefghi",
    "prodS2sSecret0123456789abcdefghij",
    "strangerSecret0123456789abcdefghi",
];

fn settings() -> Settings {
    Settings::from_toml(&format!(
        "[accounts.prod.meeting_sdk]\nclient_id = \"prodMeetingKey\"\nclient_secret = \"{}\"\n\
         [accounts.prod.video_sdk]\nkey = \"prodVideoKey\"\nsecret = \"{}\"\n\
         [accounts.prod.s2s]\naccount_id = \"zoomProdAccount\"\nclient_id = \"prodS2s\"\n\
         client_secret = \"{}\"\n\
         [accounts.dev.meeting_sdk]\nclient_id = \"devMeetingKey\"\nclient_secret = \"{}\"\n\
         [accounts.dev.video_sdk]\nkey = \"devVideoKey\"\nsecret = \"{}\"\n",
        SECRETS[0], SECRETS[2], SECRETS[4], SECRETS[1], SECRETS[3]
    ))
    .expect("test settings")
}

/// Signs as Zoom's official auth-endpoint samples do (jsrsasign's `KJUR.jws.JWS.sign`):
/// base64url of the header and payload JSON texts, HMAC-SHA256 of `header.payload`.
fn sample_sign(header: &Value, payload: &Value, secret: &str) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signed = format!("{}.{}", encode(header), encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// The Meeting SDK sample's payload: `iat` 30 s back, `exp` = `tokenExp` = `iat` + 2 h.
fn meeting_payload(key: &str) -> Value {
    let iat = NOW - 30;
    json!({
        "appKey": key, "sdkKey": key, "mn": "85746065432", "role": 0,
        "iat": iat, "exp": iat + 7200, "tokenExp": iat + 7200, "video_webrtc_mode": 0,
    })
}

/// The Video SDK sample's payload.
fn video_payload(key: &str) -> Value {
    let iat = NOW - 30;
    json!({
        "app_key": key, "tpc": "Cool Cars", "role_type": 1, "session_key": "session123",
        "user_identity": "user123", "version": 1, "iat": iat, "exp": iat + 7200,
    })
}

fn with(mut payload: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().expect("an object") {
        match value {
            Value::Null => payload.as_object_mut().expect("an object").remove(name),
            _ => payload
                .as_object_mut()
                .expect("an object")
                .insert(name.clone(), value.clone()),
        };
    }
    payload
}

fn diagnose_as(token: &str, meeting: Option<&str>, viewer: Option<&str>) -> Diagnosis {
    let secrets = Secrets::from_settings(&settings(), viewer);
    let diagnosis = diagnose(
        &Question {
            token,
            meeting_number: meeting,
            now: NOW,
        },
        &secrets,
    );
    let shown = serde_json::to_string(&diagnosis).expect("serialises");
    for secret in SECRETS {
        assert!(!shown.contains(secret), "a secret in {shown}");
    }
    assert!(!shown.contains(token), "the token echoed in {shown}");
    diagnosis
}

fn check(token: &str) -> Diagnosis {
    diagnose_as(token, None, None)
}

/// The one finding of `name`, which must have failed.
fn failed(diagnosis: &Diagnosis, name: &str) -> String {
    let finding = diagnosis
        .findings
        .iter()
        .find(|f| f.check == name)
        .unwrap_or_else(|| panic!("no {name} finding in {diagnosis:#?}"));
    assert!(!finding.ok, "{name} passed: {diagnosis:#?}");
    assert!(!diagnosis.ok);
    assert!(
        diagnosis.verdict.contains(&finding.message),
        "{}",
        diagnosis.verdict
    );
    finding.message.clone()
}

fn passed(diagnosis: &Diagnosis) {
    assert!(
        diagnosis.ok,
        "{:#?}",
        diagnosis
            .findings
            .iter()
            .filter(|f| !f.ok)
            .collect::<Vec<_>>()
    );
}

#[test]
fn ztv_signatures_pass_every_check() {
    let settings = settings();
    let app = settings.accounts["prod"].meeting_sdk.as_ref().unwrap();
    let input = MeetingSdkClaimsInput {
        meeting: Some((MeetingNumber::Text("85746065432".into()), 1)),
        expiration_seconds: 7200,
        video_webrtc_mode: Some(1),
    };
    let signed = signing::meeting_sdk_signature(app, &input, NOW, 30);
    let d = check(&signed.token);
    passed(&d);
    assert_eq!(d.kind, TokenKind::MeetingSdk);
    assert_eq!(d.account.as_deref(), Some("prod"));
    assert_eq!(d.expires_at, Some(signed.expires_at));
    assert_eq!(
        d.verdict,
        "Meeting SDK JWT: signed by account `prod`, for meeting 85746065432 as host, expires in 1h 59m"
    );

    let app = settings.accounts["dev"].video_sdk.as_ref().unwrap();
    let input = VideoSdkClaimsInput {
        session_name: "Daily stand-up #4".into(),
        role: 0,
        expiration_seconds: 1800,
        geo_regions: Some("US,DE".into()),
        ..VideoSdkClaimsInput::default()
    };
    let d = check(&signing::video_sdk_token(app, &input, NOW, 0).token);
    passed(&d);
    assert_eq!(d.kind, TokenKind::VideoSdk);
    assert_eq!(d.account.as_deref(), Some("dev"));
}

#[test]
fn tokens_signed_by_zoom_samples_algorithm_pass() {
    let d = check(&sample_sign(
        &hs256(),
        &meeting_payload("prodMeetingKey"),
        SECRETS[0],
    ));
    passed(&d);
    assert_eq!(d.account.as_deref(), Some("prod"));
    let d = diagnose_as(
        &sample_sign(&hs256(), &meeting_payload("prodMeetingKey"), SECRETS[0]),
        Some("85746065432"),
        None,
    );
    passed(&d);
    let d = check(&sample_sign(
        &hs256(),
        &video_payload("prodVideoKey"),
        SECRETS[2],
    ));
    passed(&d);
    assert_eq!(d.account.as_deref(), Some("prod"));
    assert!(
        d.verdict.contains("session \"Cool Cars\" as host"),
        "{}",
        d.verdict
    );
}

#[test]
fn secrets_mixed_up_between_accounts_are_named() {
    let token = sample_sign(&hs256(), &meeting_payload("prodMeetingKey"), SECRETS[1]);
    assert_eq!(
        failed(&check(&token), "signature"),
        "signed with account `dev`'s Meeting SDK secret but carries account `prod`'s Meeting SDK key"
    );
    // A caller bound to `prod` does not learn the other account's name.
    assert_eq!(
        failed(&diagnose_as(&token, None, Some("prod")), "signature"),
        "signed with another account's Meeting SDK secret but carries account `prod`'s Meeting \
         SDK key"
    );
    let token = sample_sign(&hs256(), &meeting_payload("someOtherKey"), SECRETS[0]);
    assert_eq!(
        failed(&check(&token), "signature"),
        "signed with account `prod`'s Meeting SDK secret but carries a Meeting SDK key no \
         configured account has"
    );
}

#[test]
fn secrets_of_the_wrong_app_are_named() {
    let token = sample_sign(&hs256(), &meeting_payload("prodMeetingKey"), SECRETS[2]);
    assert_eq!(
        failed(&check(&token), "signature"),
        "signed with account `prod`'s Video SDK secret: a Meeting SDK JWT is signed with the \
         Meeting SDK secret"
    );
    let token = sample_sign(&hs256(), &video_payload("prodVideoKey"), SECRETS[4]);
    assert_eq!(
        failed(&check(&token), "signature"),
        "signed with account `prod`'s Server-to-Server OAuth client secret: a Video SDK JWT is \
         signed with the Video SDK secret"
    );
}

#[test]
fn tokens_signed_by_no_configured_secret_say_so() {
    let token = sample_sign(&hs256(), &meeting_payload("prodMeetingKey"), SECRETS[5]);
    let message = failed(&check(&token), "signature");
    assert!(
        message.starts_with("signed by none of the configured secrets"),
        "{message}"
    );
    assert!(
        message.ends_with("it carries account `prod`'s Meeting SDK key"),
        "{message}"
    );
    // A changed payload under a real signature is the same finding.
    let good = sample_sign(&hs256(), &meeting_payload("prodMeetingKey"), SECRETS[0]);
    let forged = sample_sign(
        &hs256(),
        &with(meeting_payload("prodMeetingKey"), json!({"role": 1})),
        SECRETS[5],
    );
    let spliced = format!(
        "{}.{}",
        forged.rsplit_once('.').unwrap().0,
        good.rsplit_once('.').unwrap().1
    );
    failed(&check(&spliced), "signature");
}

#[test]
fn clocks_ahead_and_lifetimes_outside_zooms_window_are_found() {
    let payload = meeting_payload("prodMeetingKey");
    let ahead = with(
        payload.clone(),
        json!({"iat": NOW + 240, "exp": NOW + 7440, "tokenExp": NOW + 7440}),
    );
    assert_eq!(
        failed(&check(&sample_sign(&hs256(), &ahead, SECRETS[0])), "iat"),
        "issued 4m in the future: the clock of the host that signed it is ahead of ztv's"
    );
    let short = with(
        payload.clone(),
        json!({"exp": NOW + 870, "tokenExp": NOW + 1770}),
    );
    assert_eq!(
        failed(
            &check(&sample_sign(&hs256(), &short, SECRETS[0])),
            "lifetime"
        ),
        "exp − iat is 900 s: under Zoom's minimum of 1800 s (30m)"
    );
    let long = with(payload.clone(), json!({"exp": NOW + 200_000}));
    assert!(
        failed(
            &check(&sample_sign(&hs256(), &long, SECRETS[0])),
            "lifetime"
        )
        .contains("over Zoom's maximum of 172800 s (2days)")
    );
    let expired = with(
        payload.clone(),
        json!({"iat": NOW - 9000, "exp": NOW - 1800, "tokenExp": NOW - 1800}),
    );
    assert_eq!(
        failed(
            &check(&sample_sign(&hs256(), &expired, SECRETS[0])),
            "expiry"
        ),
        "expired 30m ago"
    );
    let early = with(payload.clone(), json!({"tokenExp": NOW + 60}));
    assert_eq!(
        failed(
            &check(&sample_sign(&hs256(), &early, SECRETS[0])),
            "tokenExp"
        ),
        "tokenExp is 90 s after iat: Zoom wants at least 1800 s"
    );
    let millis = with(payload.clone(), json!({"iat": (NOW - 30) * 1000}));
    assert!(
        failed(&check(&sample_sign(&hs256(), &millis, SECRETS[0])), "iat").contains("milliseconds")
    );
    let text = with(payload, json!({"exp": "1780007170", "tokenExp": null}));
    let d = check(&sample_sign(&hs256(), &text, SECRETS[0]));
    assert_eq!(
        failed(&d, "exp"),
        "exp is the text \"1780007170\": Zoom wants a number, without quotes"
    );
    assert!(failed(&d, "tokenExp").starts_with("tokenExp is missing"));
}

#[test]
fn meeting_claims_of_the_wrong_shape_are_found() {
    let payload = meeting_payload("prodMeetingKey");
    let sign = |changes: Value| {
        check(&sample_sign(
            &hs256(),
            &with(payload.clone(), changes),
            SECRETS[0],
        ))
    };
    assert_eq!(
        failed(&sign(json!({"role": "1"})), "role"),
        "role is the text \"1\": Zoom wants a number, without quotes"
    );
    assert_eq!(
        failed(&sign(json!({"role": 2})), "role"),
        "role is 2: Zoom allows 0 (participant) or 1 (host)"
    );
    assert_eq!(
        failed(&sign(json!({"role": null})), "role"),
        "role is missing: with mn, Zoom wants role 0 or 1"
    );
    assert_eq!(
        failed(&sign(json!({"mn": "857 4606 5432"})), "mn"),
        "mn is \"857 4606 5432\" with spaces or dashes: Zoom wants the digits only"
    );
    assert_eq!(
        failed(&sign(json!({"mn": 12345})), "mn"),
        "mn has 5 digits: a meeting number has 9 to 12"
    );
    assert_eq!(
        failed(&sign(json!({"mn": "my-meeting"})), "mn"),
        "mn is \"my-meeting\": Zoom wants the meeting's digits"
    );
    assert_eq!(
        failed(&sign(json!({"sdkKey": "devMeetingKey"})), "sdkKey"),
        "appKey and sdkKey differ: both carry the same Meeting SDK key"
    );
    assert!(failed(&sign(json!({"appKey": null})), "appKey").contains("only sdkKey is set"));
    assert_eq!(
        failed(&sign(json!({"video_webrtc_mode": 2})), "video_webrtc_mode"),
        "video_webrtc_mode is 2: Zoom allows 0 or 1"
    );
    // The native-SDK form: no mn, no role.
    passed(&sign(json!({"mn": null, "role": null})));
}

#[test]
fn a_token_for_another_meeting_is_found() {
    let token = sample_sign(&hs256(), &meeting_payload("prodMeetingKey"), SECRETS[0]);
    let d = diagnose_as(&token, Some("99988877766"), None);
    assert_eq!(
        failed(&d, "meetingNumber"),
        "signed for meeting 85746065432, not 99988877766"
    );
}

#[test]
fn headers_other_than_hs256_jwt_are_found() {
    let payload = meeting_payload("prodMeetingKey");
    let d = check(&sample_sign(
        &json!({"alg": "HS512", "typ": "JWT"}),
        &payload,
        SECRETS[0],
    ));
    assert_eq!(
        failed(&d, "header.alg"),
        "alg is \"HS512\": Zoom wants HS256"
    );
    assert!(d.findings.iter().all(|f| f.check != "signature"));
    let d = check(&sample_sign(&json!({"alg": "none"}), &payload, SECRETS[0]));
    assert!(failed(&d, "header.alg").starts_with("alg is none"));
    let d = check(&sample_sign(
        &json!({"alg": "HS256", "typ": "JWS"}),
        &payload,
        SECRETS[0],
    ));
    assert_eq!(failed(&d, "header.typ"), "typ is \"JWS\": Zoom wants JWT");
}

#[test]
fn what_is_not_a_jwt_is_said_plainly() {
    for (token, message) in [
        (
            "ztv_abc",
            "not a JWT: a JWT is three base64url parts joined by dots, this has 1",
        ),
        (
            "\"a.b.c\"",
            "wrapped in quotes: pass the token without them",
        ),
        (
            "a!.b.c",
            "the header is not base64url (RFC 7515, without padding)",
        ),
        ("e30.W10.c2ln", "the payload is JSON but not an object"),
    ] {
        let d = check(token);
        assert_eq!(d.kind, TokenKind::Unknown);
        assert_eq!(failed(&d, "format"), message);
    }
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert!(failed(&check(&long), "format").starts_with("longer than"));
    let d = check(&sample_sign(&hs256(), &json!({"sub": "x"}), SECRETS[0]));
    assert!(failed(&d, "kind").starts_with("not a Zoom token"));
}

#[test]
fn video_claims_are_checked_against_zooms_rules() {
    let payload = video_payload("prodVideoKey");
    let sign = |changes: Value| {
        check(&sample_sign(
            &hs256(),
            &with(payload.clone(), changes),
            SECRETS[2],
        ))
    };
    assert_eq!(
        failed(&sign(json!({"tpc": "stand/up"})), "tpc"),
        "tpc has the character '/', which Zoom does not allow in session names"
    );
    assert_eq!(
        failed(&sign(json!({"tpc": "x".repeat(201)})), "tpc"),
        "tpc has 201 characters: Zoom allows 200"
    );
    assert!(failed(&sign(json!({"tpc": ""})), "tpc").starts_with("tpc is empty"));
    assert_eq!(
        failed(&sign(json!({"role_type": 2})), "role_type"),
        "role_type is 2: Zoom allows 0 (participant) or 1 (host)"
    );
    assert!(failed(&sign(json!({"role_type": "1"})), "role_type").contains("the text"));
    assert_eq!(
        failed(&sign(json!({"user_key": "u".repeat(37)})), "user_key"),
        "user_key has 37 characters: Zoom allows 36"
    );
    assert_eq!(
        failed(
            &sign(json!({"user_identity": "u".repeat(36)})),
            "user_identity"
        ),
        "user_identity has 36 characters: Zoom allows 35"
    );
    assert_eq!(
        failed(&sign(json!({"session_key": "k".repeat(37)})), "session_key"),
        "session_key has 37 characters: Zoom allows 36"
    );
    assert!(
        failed(&sign(json!({"geo_regions": "US,XX"})), "geo_regions")
            .starts_with("geo_regions names \"XX\", not Zoom's")
    );
    assert_eq!(
        failed(&sign(json!({"version": 2})), "version"),
        "version is 2: Zoom wants 1"
    );
    assert_eq!(
        failed(
            &sign(json!({"cloud_recording_option": 3})),
            "cloud_recording_option"
        ),
        "cloud_recording_option is 3: Zoom allows 0 or 1"
    );
    assert!(failed(&sign(json!({"app_key": null})), "app_key").starts_with("app_key is missing"));
    let d = check(&sample_sign(&hs256(), &payload, SECRETS[0]));
    assert_eq!(
        failed(&d, "signature"),
        "signed with account `prod`'s Meeting SDK secret: a Video SDK JWT is signed with the \
         Video SDK secret"
    );
    let d = check(&sample_sign(
        &hs256(),
        &video_payload("devVideoKey"),
        SECRETS[2],
    ));
    assert_eq!(
        failed(&d, "signature"),
        "signed with account `prod`'s Video SDK secret but carries account `dev`'s Video SDK key"
    );
}

#[test]
fn zaks_and_obf_tokens_are_read_but_not_verified() {
    // The claims the emulator's (and Zoom's) user tokens carry; signed with a key ztv lacks.
    let zak = json!({
        "uid": "KdYKjnimT4KPd8FFgQt9FQ", "type": "zak", "aid": "zoomProdAccount",
        "iat": NOW - 60, "exp": NOW + 7140, "jti": "x",
    });
    let d = check(&sample_sign(&hs256(), &zak, "zoom's own key"));
    passed(&d);
    assert_eq!(d.kind, TokenKind::Zak);
    assert_eq!(d.account.as_deref(), Some("prod"));
    assert_eq!(
        d.verdict,
        "ZAK: for user \"KdYKjnimT4KPd8FFgQt9FQ\", expires in 1h 59m (Zoom verifies its signature)"
    );
    let expired = with(zak.clone(), json!({"iat": NOW - 7300, "exp": NOW - 100}));
    assert_eq!(
        failed(&check(&sample_sign(&hs256(), &expired, "k")), "expiry"),
        "expired 1m 40s ago"
    );
    let obf = with(zak, json!({"type": "onbehalf", "mid": "85746065432"}));
    let token = sample_sign(&hs256(), &obf, "k");
    let d = diagnose_as(&token, Some("85746065432"), None);
    passed(&d);
    assert_eq!(d.kind, TokenKind::Obf);
    assert!(d.findings.iter().any(|f| f.check == "single-use"));
    let d = diagnose_as(&token, Some("11122233344"), None);
    assert_eq!(
        failed(&d, "meetingNumber"),
        "issued for meeting \"85746065432\", not 11122233344"
    );
    // A bound caller does not learn which account a Zoom account ID belongs to.
    let d = diagnose_as(&token, None, Some("dev"));
    assert_eq!(d.account, None);
}

/// The one check of `settings` named `key`.
fn account_check(settings: &Settings, key: &str) -> AccountCheck {
    check_accounts(settings)
        .into_iter()
        .find(|c| c.key == key)
        .unwrap_or_else(|| panic!("no check {key}"))
}

#[test]
fn pasted_surroundings_and_placeholders_are_named_without_the_secret() {
    for (id, secret, named) in [
        (
            "prod MeetingKey",
            SECRETS[0],
            "client_id has a space or line break",
        ),
        (
            "prodMeetingKey",
            "\"quotedSecret0123456789abc\"",
            "client_secret has a quote",
        ),
        (
            "prodMeetingKey",
            "secret0123456789abcdéf",
            "a character outside ASCII",
        ),
        (
            "prodMeetingKey",
            "s3cr3t-0123",
            "shorter than Zoom's secrets",
        ),
        (
            "prodMeetingKey",
            "CHANGEME-0123456789abcdef",
            "client_secret looks like a placeholder",
        ),
        (
            "sdk/key+0123456",
            SECRETS[0],
            "client_id is not shaped as Zoom issues them",
        ),
        (
            "your-sdk-key",
            SECRETS[0],
            "client_id looks like a placeholder",
        ),
        (
            "prodMeetingKey0123456789",
            "prodMeetingKey0123456789",
            "the ID was pasted into both",
        ),
    ] {
        let settings = Settings::from_toml(&format!(
            "[accounts.prod.meeting_sdk]\nclient_id = {id:?}\nclient_secret = {secret:?}\n"
        ))
        .unwrap();
        let check = account_check(&settings, "accounts.prod.meeting_sdk");
        assert_eq!(check.level, Level::Warning, "{id} {secret}");
        assert!(check.message.contains(named), "{}", check.message);
        assert!(!check.message.contains(secret.trim_matches('"')));
    }
    let settings = settings();
    for key in ["accounts.prod.meeting_sdk", "accounts.dev.video_sdk"] {
        assert_eq!(account_check(&settings, key).level, Level::Ok, "{key}");
    }
}

#[test]
fn a_secret_shared_by_two_accounts_is_named_on_both_without_quoting_it() {
    let settings = Settings::from_toml(&format!(
        "[accounts.prod.video_sdk]\nkey = \"prodVideoKey\"\nsecret = \"{0}\"\n\
         [accounts.dev.video_sdk]\nkey = \"devVideoKey\"\nsecret = \"{0}\"\n",
        SECRETS[2]
    ))
    .unwrap();
    for (key, other) in [
        ("accounts.prod.video_sdk", "dev"),
        ("accounts.dev.video_sdk", "prod"),
    ] {
        let check = account_check(&settings, key);
        assert_eq!(check.level, Level::Warning);
        assert!(
            check.message.starts_with(&format!(
                "the same secret as account `{other}`'s Video SDK app"
            )),
            "{}",
            check.message
        );
    }
}

#[test]
fn a_redirect_uri_must_be_ztvs_callback_exactly() {
    for (uri, level, named) in [
        (
            "https://ztv.example.org/v1/oauth/callback",
            Level::Ok,
            "is ztv's callback",
        ),
        (
            "https://ztv.example.org/v1/oauth/done",
            Level::Problem,
            "is not ztv's callback",
        ),
        (
            "https://ztv.example.org/v1/oauth/callback?x=1",
            Level::Problem,
            "query or fragment",
        ),
        (
            "http://ztv.example.org/v1/oauth/callback",
            Level::Warning,
            "is not https",
        ),
        (
            "http://127.0.0.1:8080/v1/oauth/callback",
            Level::Ok,
            "is ztv's callback",
        ),
    ] {
        let settings = Settings::from_toml(&format!(
            "[accounts.prod.user_oauth]\nclient_id = \"prodOAuthClient\"\n\
             client_secret = \"{}\"\nredirect_uri = \"{uri}\"\n\
             webhook_secret_token = \"whsec0123456789\"\n\
             [grants]\nencryption_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n",
            SECRETS[5]
        ))
        .unwrap();
        let check = account_check(&settings, "accounts.prod.user_oauth.redirect_uri");
        assert_eq!(check.level, level, "{uri}: {}", check.message);
        assert!(check.message.contains(named), "{}", check.message);
        let webhook = account_check(&settings, "accounts.prod.user_oauth.webhook_secret_token");
        assert_eq!(webhook.level, Level::Ok);
        assert!(!webhook.message.contains("whsec"));
    }
}
