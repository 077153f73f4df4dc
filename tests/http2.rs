//! HTTP/2 drained right, with the `h2` crate as the client (prior knowledge
//! on loopback): GOAWAY when Closing begins and no `connection` header on any
//! response; SSE over HTTP/2 ends with its `retry:`; an RFC 8441 WebSocket
//! gets `Close(1001, hint)`.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::Server;
use h2::{RecvStream, SendStream, client::SendRequest};
use nix::sys::signal::Signal;
use tokio::net::TcpStream;

const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "500ms"),
    ("WSDRAIN_CLOSE_WINDOW", "2s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "30s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "1s"),
    ("WSDRAIN_RETRY_AFTER_MAX", "5s"),
];

async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.ready().await.unwrap()
}

async fn body(mut body: RecvStream) -> Result<String, h2::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(out).unwrap())
}

/// GET `path`; the status, whether a `connection` header came, the body.
async fn get(
    client: &mut SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
) -> Result<(u16, bool, RecvStream), h2::Error> {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("accept", "text/event-stream")
        .body(())
        .unwrap();
    let (resp, _) = client.clone().ready().await?.send_request(req, true)?;
    let resp = resp.await?;
    let connection = resp.headers().contains_key("connection");
    Ok((resp.status().as_u16(), connection, resp.into_body()))
}

async fn readyz_h2(addr: SocketAddr) -> String {
    let mut c = connect(addr).await;
    let (_, connection, b) = get(&mut c, addr, "/readyz").await.unwrap();
    assert!(!connection, "no connection header on HTTP/2");
    body(b).await.unwrap()
}

#[tokio::test]
async fn goaway_at_closing_and_sse_over_h2() {
    let mut server = Server::start("sse", ENV, &["--interval", "1000"]);
    let addr = server.addr;
    let mut client = connect(addr).await;
    let (status, connection, _) = get(&mut client, addr, "/readyz").await.unwrap();
    assert_eq!((status, connection), (200, false));
    // 150 streams: at the minimum close rate (100/s) Closing lasts 1.5 s.
    // Spread over connections (h2's client limits small DATA frames per
    // connection), one on the connection watched for GOAWAY.
    let mut streams = Vec::new();
    let mut others = Vec::new();
    for i in 0..150 {
        let conn = if i % 30 == 0 {
            others.push(connect(addr).await);
            others.last_mut().unwrap()
        } else if i == 1 {
            &mut client
        } else {
            others.last_mut().unwrap()
        };
        let (status, _, sse) = get(conn, addr, "/events").await.unwrap();
        assert_eq!(status, 200);
        streams.push(tokio::spawn(body(sse)));
    }

    server.signal(Signal::SIGTERM);
    // Draining: the connection still takes requests, answered without a
    // `connection` header; then GOAWAY, when Closing begins.
    let start = Instant::now();
    let mut draining_seen = false;
    let goaway = loop {
        assert!(start.elapsed() < Duration::from_secs(10), "GOAWAY came");
        match get(&mut client, addr, "/readyz").await {
            Ok((status, connection, b)) => {
                assert!(!connection, "no connection header while draining");
                let b = body(b).await.unwrap_or_default();
                if status == 503 && b.contains("draining") {
                    draining_seen = true;
                }
            }
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(goaway.is_go_away() && goaway.is_remote(), "{goaway:?}");
    assert!(
        draining_seen,
        "requests served on the connection while draining"
    );
    let phase = readyz_h2(addr).await;
    assert!(
        phase.contains("closing"),
        "GOAWAY at Closing, the listener still open: {phase}"
    );

    // A new connection during Closing: an SSE request gets 200, its retry,
    // and a clean end (END_STREAM, not a reset).
    let mut late = connect(addr).await;
    let (status, connection, b) = get(&mut late, addr, "/events").await.unwrap();
    assert_eq!((status, connection), (200, false));
    let late_body = body(b).await.expect("END_STREAM");
    // An RFC 8441 upgrade during Closing: 503 + Retry-After, no `connection`.
    let connect = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{addr}/ws"))
        .extension(h2::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (refused, _) = late
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(connect, false)
        .unwrap();
    let refused = refused.await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(!refused.headers().contains_key("connection"), "{refused:?}");
    assert!(
        late_body.ends_with("\n\n") && late_body.contains("\nretry: "),
        "{late_body:?}"
    );

    // The streams opened before GOAWAY go on until their turn.
    for sse in streams {
        let sse = tokio::time::timeout(Duration::from_secs(10), sse)
            .await
            .unwrap()
            .unwrap()
            .expect("the open stream ends with END_STREAM");
        let retry = sse.trim_end().rsplit('\n').next().unwrap();
        let ms: u64 = retry.strip_prefix("retry: ").unwrap().parse().unwrap();
        assert!((1000..=5000).contains(&ms), "{ms}");
    }

    let (code, _) = server.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0));
}

fn client_frame(opcode: u8, payload: &[u8]) -> Bytes {
    assert!(payload.len() < 126);
    let mask = [7u8, 1, 2, 3];
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    Bytes::from(f)
}

/// Reads one unmasked server frame (small ones only).
async fn server_frame(recv: &mut RecvStream, buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    loop {
        if buf.len() >= 2 {
            let len = (buf[1] & 0x7f) as usize;
            assert!(len < 126, "small frames only");
            if buf.len() >= 2 + len {
                let frame = (buf[0] & 0x0f, buf[2..2 + len].to_vec());
                buf.drain(..2 + len);
                return Some(frame);
            }
        }
        let chunk = recv.data().await?.ok()?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn rfc8441_websocket_gets_going_away_over_h2() {
    let mut server = Server::start("echo", ENV, &[]);
    let addr = server.addr;
    let mut client = connect(addr).await;
    // The server's SETTINGS have come once a first answer has.
    let (status, _, _) = get(&mut client, addr, "/livez").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        client.is_extended_connect_protocol_enabled(),
        "serve enables the extended CONNECT protocol"
    );
    let req = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{addr}/ws"))
        .extension(h2::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (resp, mut send): (_, SendStream<Bytes>) = client.clone().send_request(req, false).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert!(!resp.headers().contains_key("connection"));
    let mut recv = resp.into_body();
    let mut buf = Vec::new();

    send.send_data(client_frame(0x1, b"hello"), false).unwrap();
    let echo = server_frame(&mut recv, &mut buf).await.unwrap();
    assert_eq!(echo, (0x1, b"hello".to_vec()));
    let want = r#"{"phase":"serving","sessions":1}"#;
    assert_eq!(readyz_h2(addr).await, want, "tracked as a session");

    server.signal(Signal::SIGTERM);
    let close = tokio::time::timeout(Duration::from_secs(10), server_frame(&mut recv, &mut buf))
        .await
        .unwrap()
        .expect("a Close frame");
    assert_eq!(close.0, 0x8, "Close");
    let (code, reason) = common::close_payload(&close.1);
    assert_eq!(code, 1001, "{reason}");
    let hint = common::hint_ms(&reason).expect("hint in the reason");
    assert!((1000..=5000).contains(&hint), "{hint}");
    // Our Close without END_STREAM: the server ends its side first.
    send.send_data(client_frame(0x8, &close.1[..2]), false)
        .unwrap();

    // After the handshake the server ends its side of the stream: END_STREAM
    // (the data ends), not RST_STREAM (an error).
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match recv.data().await {
                Some(Ok(b)) if b.is_empty() => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(end.is_none(), "END_STREAM, not a reset: {end:?}");
    // Our side still open, the server may follow with RST_STREAM(NO_ERROR),
    // "stop sending, no error" (RFC 9113 8.1), never an error code.
    let reset = tokio::time::timeout(
        Duration::from_millis(500),
        std::future::poll_fn(|cx| send.poll_reset(cx)),
    )
    .await;
    if let Ok(reset) = reset {
        assert_eq!(reset.unwrap(), h2::Reason::NO_ERROR);
    }

    let (code, took) = server.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10));
    let report = server
        .rest()
        .into_iter()
        .find(|l| l.starts_with("drained: "));
    let report = report.unwrap();
    assert!(
        report.contains("1 session at closing") && report.contains("1 clean"),
        "{report}"
    );
}
