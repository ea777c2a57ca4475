//! Hostile callers: huge or many headers, slow-loris senders, slow bodies, connection floods,
//! pipelined requests and HTTP/2 over cleartext. Each is answered (or cut off) in bounded time,
//! and the service keeps serving everyone else. Bounds are generous: the machine is shared.

use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ztv::config::Settings;
use ztv::scope::Scope;

use crate::helpers::*;

/// The longest anything here may take; far above what it should.
const BOUND: Duration = Duration::from_secs(10);

/// Reads until the server closes the connection (a reset after an answer counts as closed);
/// fails the test when that takes longer than [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server did not close the connection within {BOUND:?}; got {:?}",
        String::from_utf8_lossy(&received)
    );
    String::from_utf8_lossy(&received).into_owned()
}

/// Reads exactly one response with a `content-length` body, leaving the connection open.
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed early: {}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = header(&text, "content-length")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return;
                }
            }
        }
    })
    .await
    .expect("an answer within the bound");
    String::from_utf8(received).unwrap()
}

/// A header's value in a raw response (names compared case-insensitively).
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The JSON body of a raw response.
fn json_body(response: &str) -> Value {
    let body = response
        .split_once("\r\n\r\n")
        .expect("a head and a body")
        .1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

async fn assert_still_serves(base: &str) {
    // A client of its own, so that no pooled connection of an earlier step is reused.
    let response = tokio::time::timeout(
        BOUND,
        reqwest::Client::new().get(format!("{base}/healthz")).send(),
    )
    .await
    .expect("answered within the bound")
    .unwrap();
    assert_eq!(response.status(), 200);
}

/// Settings in which a connection has one second to send a request's head.
fn header_timeout_1s(settings: &mut Settings) {
    settings.server.header_read_timeout = Duration::from_secs(1);
}

async fn signing_key(app: &TestApp) -> String {
    app.key("web", &[Scope::MeetingSdkSignature], Some("prod"))
        .await
}

#[tokio::test]
async fn a_huge_header_is_answered_431_and_the_connection_closed() {
    let app = TestApp::builder().build().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();

    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    // The server stops reading at its limit, so the end of this write may fail.
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;

    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_still_serves(&app.base).await;
}

#[tokio::test]
async fn a_large_but_reasonable_header_is_still_served() {
    // A long end-user JWT, say: 12 KiB is under the 16 KiB default.
    let app = TestApp::builder().build().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-large", "a".repeat(12 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn too_many_headers_are_answered_431_and_the_connection_closed() {
    let app = TestApp::builder().build().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();

    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        request.push_str(&format!("X-H{i}: v\r\n"));
    }
    request.push_str("\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;

    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_still_serves(&app.base).await;
}

/// Sends a request head one byte every 100 ms, never finishing it, until the server hangs
/// up; returns what the server sent meanwhile. Fails the test if it does not hang up within
/// [`BOUND`].
async fn trickle_a_head_until_cut_off(stream: &mut TcpStream) -> String {
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let cut_off = async {
        let mut received = Vec::new();
        tokio::time::timeout(BOUND, async {
            let mut buf = [0u8; 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("the slow sender is cut off within the bound");
        received
    };
    let received = tokio::select! {
        received = cut_off => received,
        () = trickle => panic!("the writer only stops when the server hangs up"),
    };
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_slow_loris_is_cut_off_while_others_are_served() {
    let app = TestApp::builder().adjust(header_timeout_1s).build().await;
    let mut loris = TcpStream::connect(app.addr).await.unwrap();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();

    let others = async {
        for _ in 0..3 {
            assert_still_serves(&app.base).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (received, ()) = tokio::join!(trickle_a_head_until_cut_off(&mut loris), others);

    assert!(
        !received.contains(" 200 "),
        "no answer to an unfinished head"
    );
    // A connection that never sends a byte is closed as well.
    let silence = read_until_closed(&mut silent).await;
    assert!(silence.is_empty(), "{silence}");
    assert_still_serves(&app.base).await;
}

#[tokio::test]
async fn a_slow_head_after_an_answer_is_cut_off() {
    let app = TestApp::builder().adjust(header_timeout_1s).build().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_one_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    let received = trickle_a_head_until_cut_off(&mut stream).await;

    assert!(
        received.is_empty(),
        "no answer to the unfinished head: {received}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = TestApp::builder().adjust(header_timeout_1s).build().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();

    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_one_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let rest = read_until_closed(&mut stream).await;

    assert!(rest.is_empty(), "{rest}");
}

#[tokio::test]
async fn a_slow_body_is_answered_408_in_json() {
    let app = TestApp::builder()
        .adjust(|s| s.server.request_timeout = Duration::from_secs(1))
        .build()
        .await;
    let key = signing_key(&app).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();

    let body = r#"{"meetingNumber":"123456789","role":0}"#;
    let head = format!(
        "POST /v1/meeting-sdk/signature HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let error = json_body(&answer);
    assert_eq!(error["error"]["code"], "request_timeout", "{error}");
    assert_eq!(
        error["error"]["requestId"],
        header(&answer, "x-request-id").unwrap()
    );
    assert_still_serves(&app.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_beyond_the_limit_is_refused_while_admitted_connections_are_served() {
    const LIMIT: usize = 8;
    let app = TestApp::builder()
        .adjust(|s| {
            s.server.max_connections = LIMIT;
            // Long enough that the held connections outlive the test's steps.
            s.server.header_read_timeout = Duration::from_secs(60);
        })
        .build()
        .await;
    // (`app.http` keeps a connection of its own open from here: one slot.)
    let key = signing_key(&app).await;
    // Connections are admitted in the order they were made: these take every slot left.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_one_response(&mut kept).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let mut held = Vec::new();
    for _ in 2..LIMIT {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }

    let flood: Vec<_> = (0..40)
        .map(|_| {
            let addr = app.addr;
            tokio::spawn(async move {
                let Ok(mut stream) = TcpStream::connect(addr).await else {
                    return String::new();
                };
                let _ = stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await;
                read_until_closed(&mut stream).await
            })
        })
        .collect();
    let mut busy = 0;
    for answer in flood {
        let answer = answer.await.unwrap();
        if answer.is_empty() {
            continue; // shed: closed unanswered
        }
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert_eq!(header(&answer, "retry-after"), Some("1"), "{answer}");
        let error = json_body(&answer);
        assert_eq!(error["error"]["code"], "upstream_unavailable", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("connection limit")
        );
        assert_eq!(
            error["error"]["requestId"],
            header(&answer, "x-request-id").unwrap()
        );
        busy += 1;
    }
    assert!(busy > 0, "at least some of the flood is told to come back");

    // An admitted connection is still served, signing included.
    let body = r#"{"meetingNumber":"123456789","role":0}"#;
    let request = format!(
        "POST /v1/meeting-sdk/signature HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let signed = read_one_response(&mut kept).await;
    assert!(signed.starts_with("HTTP/1.1 200"), "{signed}");
    assert!(json_body(&signed)["signature"].is_string());

    // Once the flood's holders leave, everyone is served again.
    drop(held);
    drop(kept);
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let answer = reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            break;
        }
        assert_eq!(answer.status(), 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots were never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("ztv_connections_refused_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("ztv_connections_open{"), "{metrics}");
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let app = TestApp::builder().build().await;
    let key = signing_key(&app).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();

    let body = r#"{"meetingNumber":"123456789","role":0}"#;
    let requests = [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p1\r\n\r\n".to_string(),
        format!(
            "POST /v1/meeting-sdk/signature HTTP/1.1\r\nHost: x\r\nX-Request-Id: p2\r\n\
             Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        "GET /no-such-route HTTP/1.1\r\nHost: x\r\nX-Request-Id: p3\r\n\r\n".to_string(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p4\r\n\r\n".to_string(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p5\r\nConnection: close\r\n\r\n"
            .to_string(),
    ];
    // One write: the server finds all five in its buffer at once.
    stream
        .write_all(requests.concat().as_bytes())
        .await
        .unwrap();
    let answers = read_until_closed(&mut stream).await;

    let answers: Vec<String> = answers
        .split("HTTP/1.1 ")
        .filter(|part| !part.is_empty())
        .map(|part| format!("HTTP/1.1 {part}"))
        .collect();
    let seen: Vec<(&str, &str)> = answers
        .iter()
        .map(|answer| {
            (
                &answer[9..12],
                header(answer, "x-request-id").unwrap_or("none"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("200", "p1"),
            ("200", "p2"),
            ("404", "p3"),
            ("200", "p4"),
            ("200", "p5")
        ]
    );
    assert!(json_body(&answers[1])["signature"].is_string());
    assert_eq!(json_body(&answers[2])["error"]["code"], "not_found");
}

/// An HTTP/2 connection with prior knowledge (h2c): no upgrade, the preface first.
async fn h2c(app: &TestApp) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn h2c_sign(
    client: h2::client::SendRequest<Bytes>,
    base: &str,
    key: &str,
) -> Result<(u16, Value), h2::Error> {
    let mut client = client.ready().await?;
    let request = axum::http::Request::post(format!("{base}/v1/meeting-sdk/signature"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false)?;
    // A refused stream may already be reset; the response says why.
    let _ = send.send_data(
        Bytes::from(json!({"meetingNumber": "123456789", "role": 0}).to_string()),
        true,
    );
    let response = tokio::time::timeout(BOUND, response)
        .await
        .expect("answered within the bound")?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, serde_json::from_slice(&bytes).unwrap()))
}

#[tokio::test]
async fn a_signature_is_issued_over_cleartext_http2() {
    let app = TestApp::builder().build().await;
    let key = signing_key(&app).await;

    let (status, body) = h2c_sign(h2c(&app).await, &app.base, &key).await.unwrap();

    assert_eq!(status, 200, "{body}");
    let claims = decode_jwt(body["signature"].as_str().unwrap(), SDK_SECRET);
    assert_eq!(claims["mn"], "123456789");
    assert_eq!(body["sdkKey"], SDK_KEY);
}

/// Sends `n` signature requests at once on one connection; the outcome of each.
async fn h2c_burst(
    client: &h2::client::SendRequest<Bytes>,
    app: &TestApp,
    key: &str,
    n: usize,
) -> Vec<Result<u16, h2::Error>> {
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let (client, base, key) = (client.clone(), app.base.clone(), key.to_string());
            tokio::spawn(async move { h2c_sign(client, &base, &key).await.map(|(s, _)| s) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for request in requests {
        outcomes.push(request.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_may_open_only_the_configured_number_of_streams_at_once() {
    let app = TestApp::builder()
        .adjust(|s| s.server.http2_max_concurrent_streams = 3)
        .build()
        .await;
    let key = signing_key(&app).await;

    // A client that opens streams before it has read the server's SETTINGS: whatever is over
    // the limit is refused (REFUSED_STREAM: safe to retry), the rest answered.
    let greedy = h2c(&app).await;
    for outcome in h2c_burst(&greedy, &app, &key, 12).await {
        match outcome {
            Ok(status) => assert_eq!(status, 200),
            Err(error) => assert_eq!(error.reason(), Some(h2::Reason::REFUSED_STREAM), "{error}"),
        }
    }

    // A client that has read them queues its requests and gets every answer.
    let client = h2c(&app).await;
    assert_eq!(
        h2c_sign(client.clone(), &app.base, &key).await.unwrap().0,
        200
    );
    assert_eq!(
        client.current_max_send_streams(),
        3,
        "the server's SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    for outcome in h2c_burst(&client, &app, &key, 12).await {
        assert_eq!(outcome.unwrap(), 200);
    }
    assert_still_serves(&app.base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ztv_process_survives_every_attack_at_once_and_still_serves() {
    let config = ConfigFile::standard("");
    let mut child = config.serve(&[
        ("ZTV_SERVER__MAX_CONNECTIONS", "8"),
        ("ZTV_SERVER__HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("ZTV_SERVER__REQUEST_TIMEOUT_SECONDS", "1"),
    ]);
    let addr = child.addr();

    let attack = |payload: Vec<u8>| async move {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            return;
        };
        let _ = stream.write_all(&payload).await;
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(BOUND, async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    };
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut attacks = vec![
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(100 * 1024)
        )
        .into_bytes(),
        many.into_bytes(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a".to_vec(),
        b"POST /v1/meeting-sdk/signature HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{"
            .to_vec(),
        b"PRI * HTTP/2.0\r\n".to_vec(),
    ];
    attacks.extend((0..100).map(|_| Vec::new()));
    let tasks: Vec<_> = attacks
        .into_iter()
        .map(|payload| tokio::spawn(attack(payload)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    assert!(child.try_wait().unwrap().is_none(), "the process is alive");
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let answer = reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a GET with one header of `size` bytes on a fresh h2c connection.
async fn h2c_with_header(app: &TestApp, size: usize) -> Result<u16, h2::Error> {
    let mut client = h2c(app).await.ready().await?;
    let request = axum::http::Request::get(format!("{}/healthz", app.base))
        .header("x-big", "a".repeat(size))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true)?;
    tokio::time::timeout(BOUND, response)
        .await
        .expect("answered within the bound")
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn a_header_list_too_large_over_http2_is_answered_431_or_the_connection_closed() {
    let app = TestApp::builder().build().await;

    // Over the limit: that stream is answered 431.
    assert_eq!(h2c_with_header(&app, 20 * 1024).await.unwrap(), 431);
    // Far over it: the whole connection is told to go away.
    let error = h2c_with_header(&app, 100 * 1024).await.unwrap_err();
    assert!(error.is_go_away(), "{error}");

    assert_still_serves(&app.base).await;
}
