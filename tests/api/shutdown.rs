//! Graceful shutdown: a request in flight when the signal arrives still gets its answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use ztv::app::Application;
use ztv::auth::api_clients::{self, NewClient};
use ztv::auth::scope::Scope;
use ztv::config::Settings;
use ztv::store;

use crate::helpers::test_config;

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_answered_before_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_toml(&test_config(&dir.path().join("ztv.db"), "")).unwrap();
    let store = store::connect(&settings.database.url).await.unwrap();
    let (_, key) = api_clients::create(
        store.as_ref(),
        &settings,
        NewClient {
            name: "web",
            scopes: vec![Scope::MeetingSdkSignature],
            account: Some("prod".into()),
            expires_in: None,
            rate_limit: None,
            upstream_per_minute: None,
        },
    )
    .await
    .unwrap();
    let app = Application::build_with_store(settings, Arc::clone(&store))
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    // Half a request: headers and the first part of the body.
    let body = r#"{"meetingNumber":"123456789","role":0}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/meeting-sdk/signature HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        key.expose(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"signature\""));
    let outcome = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(outcome, Ok(Ok(Ok(())))), "server stopped cleanly");
}
