//! The web example (`examples/web`) in real headless Chromium, against ztv and the Zoom
//! emulator over real HTTP: the page's origin passes CORS and gets a join bundle whose
//! signature verifies and whose join arguments carry no `sdkKey`; the same page on another
//! origin is refused by the browser and nothing is signed; a user authorises Zoom in the
//! browser and the grant is stored. Skipped (loudly) without Chromium, failed in CI.

#[path = "../../examples/web/server.rs"]
mod web_server;

use std::net::SocketAddr;

use serde_json::Value;
use ztv::emulator::Endpoint;
use ztv::scope::Scope;
use ztv::zoom_user::ZoomUser;

use crate::helpers::chromium::{Chromium, Dom};
use crate::helpers::*;

const MEETING: &str = "85746065432";
/// The issuer's client ID, which ztv takes as the audience.
const CLIENT_ID: &str = "ztv-web-example";
/// The `sub` the demo issuer gives Alice, which names her in ztv's audit log.
const ALICE_SUB: &str = "demo-alice@example.com";

/// The example's server on a port of its own, signing in Alice (the emulator's consenting
/// user); its issuer may also send tokens to the pages of `redirect_origins`.
async fn page_server(listener: tokio::net::TcpListener, redirect_origins: &[&str]) {
    let mut options = web_server::Options::new(ALICE_EMAIL);
    options.user_name = "Alice".into();
    options.client_id = CLIENT_ID.into();
    options.redirect_origins = redirect_origins.iter().map(|o| o.to_string()).collect();
    tokio::spawn(web_server::serve(listener, options));
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// ztv with the emulator and user OAuth, signing in the users of the example's issuer at
/// `issuer_addr`, allowing browsers of `origin` only, and sending them back to it after Zoom.
async fn ztv_for(issuer_addr: SocketAddr, origin: &str) -> ZoomApp {
    let done = url::Url::parse(&format!("{origin}/")).unwrap();
    TestApp::builder()
        .zoom()
        .grants()
        .config(&format!(
            "[end_users]\nissuer = \"{issuer}\"\naudience = \"{CLIENT_ID}\"\n\
             scopes = [\"meeting-sdk:signature\", \"zak:read\", \"obf:read\"]\naccount = \"prod\"\n\
             [cors]\nallowed_origins = [\"{origin}\"]\n",
            issuer = web_server::issuer_url(issuer_addr),
        ))
        .adjust(move |settings| {
            let app = settings.accounts.get_mut("prod").unwrap();
            app.user_oauth.as_mut().unwrap().done_url = Some(done);
        })
        .build()
        .await
}

/// The page's URL on `origin` with `query` (ztv's base URL added).
fn page_url(origin: &str, app: &ZoomApp, query: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{origin}/")).unwrap();
    url.query_pairs_mut()
        .append_pair("ztv", &app.base)
        .extend_pairs(query);
    url.into()
}

/// The page's last outcome, with the status line for the failure message.
fn outcome(dom: &Dom) -> (Value, String) {
    (dom.json("outcome"), dom.text("status").unwrap_or_default())
}

#[tokio::test]
async fn the_pages_origin_gets_a_join_bundle_and_zooms_join_arguments_without_sdk_key() {
    let Some(chromium) = Chromium::find_or_skip() else {
        return;
    };
    let (pages, addr) = listener().await;
    let origin = format!("http://{addr}");
    page_server(pages, &[]).await;
    let app = ztv_for(addr, &origin).await;

    let before = now();
    let dom = chromium
        .dom_after(
            &page_url(
                &origin,
                &app,
                &[("auto", "join"), ("mn", MEETING), ("with", "zak")],
            ),
            &[],
        )
        .await;
    let after = now();

    // The preflight passed and the POST was answered: the page read ztv's answer and the
    // request ID it sent, which ztv kept and exposed.
    let (outcome, status) = outcome(&dom);
    assert_eq!(outcome["action"], "join", "{status}");
    assert_eq!(outcome["ok"], true, "{status}");
    assert_eq!(outcome["status"], 200);
    let answered = outcome["answered"].as_array().unwrap();
    for field in ["signature", "sdkKey", "zak"] {
        assert!(answered.contains(&field.into()), "ztv answered {field}");
    }
    let request_id = outcome["requestId"].as_str().unwrap().to_string();
    assert!(request_id.starts_with("web-"), "{request_id}");
    assert!(dom.text("user").unwrap().contains(ALICE_EMAIL));

    // ztv served that very request, for Alice as signed in at the example's issuer.
    let events = app
        .audit_until(|events| {
            events
                .iter()
                .any(|e| e.request_id.as_deref() == Some(&request_id))
        })
        .await;
    let event = events
        .iter()
        .find(|e| e.request_id.as_deref() == Some(&request_id))
        .unwrap();
    assert_eq!(event.route, "POST /v1/join");
    assert_eq!((&*event.outcome, event.status), ("issued", 200));
    assert_eq!(event.caller.as_deref(), Some(ALICE_SUB));
    assert_eq!(event.target.as_deref(), Some(MEETING));
    assert_eq!(app.zoom.calls(Endpoint::Zak), 1, "the ZAK came from Zoom");

    // Zoom's join arguments as documented today: no sdkKey, the key is in the signature.
    let args = dom.json("join-args");
    let mut keys: Vec<&str> = args
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "meetingNumber",
            "passWord",
            "signature",
            "userEmail",
            "userName",
            "zak"
        ]
    );
    assert_eq!(args["meetingNumber"], MEETING);
    assert_eq!(args["userName"], "Alice");
    assert_eq!(args["userEmail"], ALICE_EMAIL);
    assert_eq!(args["passWord"], "");
    assert!(!args["zak"].as_str().unwrap().is_empty());

    // The signature verifies under the account's Meeting SDK secret, with Zoom's claims.
    let claims = decode_jwt(args["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(claims["appKey"], SDK_KEY);
    assert_eq!(claims["sdkKey"], SDK_KEY);
    assert_eq!(claims["mn"], MEETING);
    assert_eq!(claims["role"], 0);
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&iat),
        "iat is the time of signing"
    );
    assert_eq!(exp - iat, 7200, "ztv's default life");
    assert!(
        (1800..=172_800).contains(&(exp - iat)),
        "Zoom: 30 min to 48 h"
    );
    assert_eq!(claims["tokenExp"], claims["exp"]);
}

#[tokio::test]
async fn the_same_page_on_another_origin_is_refused_by_the_browser_and_nothing_is_signed() {
    let Some(chromium) = Chromium::find_or_skip() else {
        return;
    };
    // The allowed origin runs the issuer; the other serves the same page, whose users sign
    // in at that issuer (so their tokens are good: only the origin is wrong).
    let (allowed, allowed_addr) = listener().await;
    let (other, other_addr) = listener().await;
    let allowed_origin = format!("http://{allowed_addr}");
    let other_origin = format!("http://{other_addr}");
    page_server(allowed, &[&other_origin]).await;
    page_server(other, &[]).await;
    let app = ztv_for(allowed_addr, &allowed_origin).await;

    let dom = chromium
        .dom_after(
            &page_url(
                &other_origin,
                &app,
                &[
                    ("auto", "join"),
                    ("mn", MEETING),
                    ("with", "zak"),
                    ("issuer", &web_server::issuer_url(allowed_addr)),
                ],
            ),
            &[],
        )
        .await;

    let (outcome, status) = outcome(&dom);
    assert!(
        dom.text("user").unwrap().contains(ALICE_EMAIL),
        "signed in: {status}"
    );
    assert_eq!(outcome["action"], "join", "{status}");
    assert_eq!(outcome["ok"], false, "{status}");
    assert_eq!(
        outcome["error"], "TypeError: Failed to fetch",
        "the browser refused"
    );
    assert_eq!(dom.json("join-args"), Value::Null);

    // Why: ztv's preflight answer does not name that origin.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/join"))
        .header("origin", &other_origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // And ztv signed nothing and asked Zoom for nothing.
    let events = app.settled_audit().await;
    assert!(
        events.iter().all(|e| e.route != "POST /v1/join"),
        "{events:?}"
    );
    assert_eq!(app.zoom.calls(Endpoint::Zak), 0);
}

#[tokio::test]
async fn a_user_authorises_zoom_in_the_browser_and_the_grant_is_stored() {
    let Some(chromium) = Chromium::find_or_skip() else {
        return;
    };
    let (pages, addr) = listener().await;
    let origin = format!("http://{addr}");
    page_server(pages, &[]).await;
    let app = ztv_for(addr, &origin).await;
    // The emulator sends the browser to the OAuth app's redirect URI, http://ztv.test/…:
    // that name is this ztv for this browser.
    let ztv_test = format!("--host-resolver-rules=MAP ztv.test:80 {}", app.addr);

    // Sign in, POST /v1/oauth/authorize, Zoom's consent page, ztv's callback, back to the page.
    let dom = chromium
        .dom_after(
            &page_url(&origin, &app, &[("auto", "connect")]),
            &[ztv_test],
        )
        .await;

    let (outcome, status) = outcome(&dom);
    assert_eq!(outcome["action"], "connect", "{status}");
    assert_eq!(outcome["ok"], true, "{status}");
    assert_eq!(outcome["user"], ALICE_EMAIL, "ztv sent the browser back");
    assert!(
        app.store
            .find_grant("prod", &ZoomUser::parse(ALICE_ID).unwrap())
            .await
            .unwrap()
            .is_some(),
        "the grant is stored"
    );
    let key = app.key("check", &[Scope::ZakRead], Some("prod")).await;
    let zak: Value = app.zak(&key, ALICE_EMAIL).await.json().await.unwrap();
    assert_eq!(zak["source"], "user_grant", "{zak}");
}
