//! Graceful shutdown: a request in flight when the signal arrives still gets its answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ztv::scope::Scope;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_answered_before_the_server_stops() {
    let mut app = TestApp::builder().build().await;
    let key = app
        .key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await;

    // Half a request: headers and the first part of the body.
    let body = r#"{"meetingNumber":"123456789","role":0}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/meeting-sdk/signature HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let server = app.shut_down();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"signature\""));
    let outcome = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(outcome, Ok(Ok(Ok(())))), "server stopped cleanly");
}
