//! The audit log: an event for every `/v1` request and every key change, never a token, and
//! nothing queued lost on SIGTERM.

use serde_json::{Value, json};
use ztv::scope::Scope;

use crate::helpers::*;

#[tokio::test]
async fn issued_and_refused_requests_are_audited_without_the_token() {
    let app = TestApp::builder().build().await;
    let key = app
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;

    let issued = app
        .signature(&key, json!({"meetingNumber": "123456789", "role": 0}))
        .await;
    let request_id = issued.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let token = issued.json::<Value>().await.unwrap()["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let forbidden = app
        .video_token(&key, json!({"sessionName": "s", "role": 0}))
        .await;
    assert_eq!(forbidden.status(), 403);
    let unknown = app
        .signature("ztv_unknownunknownunknownunknownunknownunknown1", json!({}))
        .await;
    assert_eq!(unknown.status(), 401);

    let events = app
        .audit_until(|events| {
            events
                .iter()
                .any(|e| e.request_id.as_deref() == Some(&request_id))
                && events.iter().any(|e| e.route == "POST /v1/video-sdk/token")
                && events.iter().any(|e| e.status == 401 && e.caller.is_none())
        })
        .await;
    let issued = events
        .iter()
        .find(|e| e.request_id.as_deref() == Some(&request_id))
        .unwrap();
    assert_eq!(issued.route, "POST /v1/meeting-sdk/signature");
    assert_eq!(issued.caller.as_deref(), Some("web"));
    assert_eq!(issued.account.as_deref(), Some("prod"));
    assert_eq!(issued.target.as_deref(), Some("123456789"));
    assert_eq!((&*issued.outcome, issued.status), ("issued", 200));
    let refused = events
        .iter()
        .find(|e| e.route == "POST /v1/video-sdk/token")
        .unwrap();
    assert_eq!((&*refused.outcome, refused.status), ("refused", 403));
    assert_eq!(refused.caller.as_deref(), Some("web"));
    assert!(events.iter().any(|e| e.status == 401 && e.caller.is_none()));
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains(&token) && !all.contains(&key),
        "no token or key in the audit log"
    );
}

#[tokio::test]
async fn zak_events_name_the_user_and_the_account() {
    let app = TestApp::builder().zoom().build().await;
    let key = app.key("svc", &[Scope::ObfRead], Some("prod")).await;

    let response = app
        .get_with(
            &format!("/v1/users/{ALICE_ID}/obf-token?meetingNumber=987654321"),
            &key,
        )
        .await;
    assert_eq!(response.status(), 200);

    let events = app
        .audit_until(|e| e.iter().any(|e| e.route.ends_with("/obf-token")))
        .await;
    let obf = events
        .iter()
        .find(|e| e.route.ends_with("/obf-token"))
        .unwrap();
    // Identities are audited as one form: ASCII case folded.
    let alice = ALICE_ID.to_ascii_lowercase();
    assert_eq!(obf.target_user.as_deref(), Some(alice.as_str()));
    assert_eq!(obf.target.as_deref(), Some("987654321"));
    assert_eq!(obf.account.as_deref(), Some("prod"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_followed_by_sigterm_loses_no_event_and_key_changes_are_audited() {
    let config = ConfigFile::standard("");
    let key = config.create_key(&[
        "--name",
        "burst",
        "--scope",
        "meeting-sdk:signature",
        "--account",
        "prod",
        "--rate-limit",
        "100000/100000",
    ]);
    let mut child = config.serve(&[]);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/meeting-sdk/signature", child.base());

    let burst = (0..300).map(|_| http.post(&url).bearer_auth(&key).send());
    let statuses = futures_util::future::join_all(burst).await;
    assert!(statuses.iter().all(|r| r.as_ref().unwrap().status() == 200));
    // At once, while events are still queued.
    child.signal("TERM");
    assert!(child.wait().unwrap().success());

    let listed = config.run(&["audit", "--since", "1h", "--limit", "1000", "--json"]);
    let events: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let signatures = events
        .iter()
        .filter(|e| e["route"] == "POST /v1/meeting-sdk/signature" && e["status"] == 200)
        .count();
    assert_eq!(
        signatures, 300,
        "every event of the burst was written before exit"
    );
    assert!(
        events
            .iter()
            .any(|e| e["route"] == "cli clients create" && e["target"] == "burst")
    );
    let by_caller = config.run(&["audit", "--caller", "burst", "--limit", "5"]);
    assert_eq!(
        String::from_utf8_lossy(&by_caller.stdout).lines().count(),
        5
    );
}
