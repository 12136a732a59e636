//! Opening handshake over real sockets: HTTP error answers for bad
//! requests, application rejections, subprotocol negotiation, what
//! `accept_with` sees, and the client's checks of the server's answer.

mod common;

use common::*;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::handshake::server::reject;
use simples_ws::handshake::HandshakeErrorKind;
use simples_ws::tokio::{connect, connect_with, Accept, Error, AcceptOptions};
use simples_ws::{handshake, CloseCode, Config, Message};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Rejects requests whose Origin is `http://evil.example` with 403.
async fn origin_checking_server() -> TestServer {
    echo_server_with(AcceptOptions::default(), |req| {
        if req.origin() == Some("http://evil.example") {
            return Err(reject(403, "origin not allowed"));
        }
        Ok(Accept::default())
    })
    .await
}

/// A good client (our own) can still open a connection and echo a message.
async fn assert_server_still_serves(server: &mut TestServer) {
    let (mut ws, _) = step("connect", connect(&server.url("/"))).await.expect("good client connects");
    ws.send(Message::text("still alive")).await.unwrap();
    assert_eq!(step("echo", ws.recv()).await.unwrap(), Message::text("still alive"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
    // Drain the server's events for this connection.
    loop {
        if let Event::Ended(r) = server.next_event().await {
            assert!(r.is_ok(), "good connection ended with {r:?}");
            break;
        }
    }
}

fn request_with(lines: &[&str]) -> String {
    let mut r = lines.join("\r\n");
    r.push_str("\r\n\r\n");
    r
}

const HOST: &str = "Host: 127.0.0.1";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const VERSION: &str = "Sec-WebSocket-Version: 13";

struct BadCase {
    name: &'static str,
    request: Vec<u8>,
    status_line: &'static str,
    body_contains: &'static str,
    header: Option<(&'static str, &'static str)>,
}

fn bad_cases() -> Vec<BadCase> {
    let case = |name, req: String, status_line, body_contains, header| BadCase {
        name,
        request: req.into_bytes(),
        status_line,
        body_contains,
        header,
    };
    let big = format!("X-Big: {}", "a".repeat(9000));
    let many: Vec<String> = (0..70).map(|i| format!("X-H{i}: v")).collect();
    let mut many_lines = vec!["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION];
    many_lines.extend(many.iter().map(String::as_str));
    vec![
        case(
            "POST",
            request_with(&["POST / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION]),
            "HTTP/1.1 405 Method Not Allowed",
            "GET",
            Some(("Allow", "GET")),
        ),
        case(
            "HTTP/1.0",
            request_with(&["GET / HTTP/1.0", HOST, UPGRADE, CONNECTION, KEY, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1",
            None,
        ),
        case(
            "missing Upgrade",
            request_with(&["GET / HTTP/1.1", HOST, CONNECTION, KEY, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Upgrade",
            None,
        ),
        case(
            "Upgrade without websocket",
            request_with(&["GET / HTTP/1.1", HOST, "Upgrade: h2c", CONNECTION, KEY, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "websocket",
            None,
        ),
        case(
            "missing Connection",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, KEY, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Connection",
            None,
        ),
        case(
            "Connection without upgrade token",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, "Connection: keep-alive, upgrade-insecure", KEY, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Connection",
            None,
        ),
        case(
            "short key",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: abc", VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Sec-WebSocket-Key",
            None,
        ),
        case(
            "key of 15 bytes",
            // base64 of 15 zero bytes: valid base64, wrong length.
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA", VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Sec-WebSocket-Key",
            None,
        ),
        case(
            "key not base64",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==", VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Sec-WebSocket-Key",
            None,
        ),
        case(
            "missing key",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Sec-WebSocket-Key",
            None,
        ),
        case(
            "missing Host",
            request_with(&["GET / HTTP/1.1", UPGRADE, CONNECTION, KEY, VERSION]),
            "HTTP/1.1 400 Bad Request",
            "Host",
            None,
        ),
        case(
            "missing version",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY]),
            "HTTP/1.1 426 Upgrade Required",
            "Sec-WebSocket-Version",
            Some(("Sec-WebSocket-Version", "13")),
        ),
        case(
            "version 8",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, "Sec-WebSocket-Version: 8"]),
            "HTTP/1.1 426 Upgrade Required",
            "13",
            Some(("Sec-WebSocket-Version", "13")),
        ),
        case(
            "head over 8 KiB",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION, &big]),
            "HTTP/1.1 431 Request Header Fields Too Large",
            "8192",
            None,
        ),
        case("too many headers", request_with(&many_lines), "HTTP/1.1 431 Request Header Fields Too Large", "64", None),
        BadCase {
            name: "garbage",
            request: b"\x00\x01\x02\xff garbage \x7f\r\n\r\n".to_vec(),
            status_line: "HTTP/1.1 400 Bad Request",
            body_contains: "malformed",
            header: None,
        },
        case(
            "request with a body",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION, "Content-Length: 5"]),
            "HTTP/1.1 400 Bad Request",
            "body",
            None,
        ),
        case(
            "origin rejected by the application",
            request_with(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION, "Origin: http://evil.example"]),
            "HTTP/1.1 403 Forbidden",
            "origin not allowed",
            None,
        ),
    ]
}

#[tokio::test]
async fn bad_requests_get_exact_status_and_reason_and_server_keeps_serving() {
    bounded(async {
        let mut server = origin_checking_server().await;
        for case in bad_cases() {
            let resp = raw_request(server.addr, &case.request).await;
            assert_eq!(resp.status_line, case.status_line, "case {:?}: {resp:?}", case.name);
            let body = resp.body_text();
            assert!(body.contains(case.body_contains), "case {:?}: body {body:?} should name the reason", case.name);
            assert!(body.ends_with('\n'), "case {:?}", case.name);
            assert_eq!(resp.header("Connection"), Some("close"), "case {:?}", case.name);
            assert_eq!(
                resp.header("Content-Type"),
                Some("text/plain; charset=utf-8"),
                "case {:?}",
                case.name
            );
            if let Some((name, value)) = case.header {
                assert_eq!(resp.header(name), Some(value), "case {:?}: {resp:?}", case.name);
            }
            if case.status_line.contains(" 426 ") {
                assert_eq!(resp.header("Allow"), None);
            }
            let err = server.handshake_failed().await;
            match &err {
                Error::Handshake(e) => {
                    assert_eq!(e.status(), resp.status(), "case {:?}", case.name);
                    assert!(body.contains(e.reason()), "case {:?}: {e}", case.name);
                }
                other => panic!("case {:?}: server reported {other:?}", case.name),
            }
            // The same server still accepts a good client.
            assert_server_still_serves(&mut server).await;
        }
    })
    .await
}

#[tokio::test]
async fn request_split_into_many_writes_is_accepted() {
    bounded(async {
        let server = echo_server(AcceptOptions::default()).await;
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let req = upgrade_request("/slow", &[]);
        for chunk in req.as_bytes().chunks(7) {
            tcp.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let resp = step("101", read_http_head(&mut tcp)).await.unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(resp.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
        assert_eq!(resp.header("Upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
        tcp.write_all(&client_frame(true, OP_TEXT, b"hi")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.masked, f.payload.as_slice()), (OP_TEXT, false, &b"hi"[..]));
    })
    .await
}

#[tokio::test]
async fn frames_sent_with_the_request_are_not_lost() {
    bounded(async {
        let server = echo_server(AcceptOptions::default()).await;
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut bytes = upgrade_request("/", &[]).into_bytes();
        bytes.extend(client_frame(true, OP_TEXT, b"first"));
        bytes.extend(client_frame(true, OP_BINARY, &[1, 2, 3]));
        tcp.write_all(&bytes).await.unwrap();
        let resp = step("101", read_http_head(&mut tcp)).await.unwrap();
        assert_eq!(resp.status(), 101);
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_TEXT, &b"first"[..]));
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_BINARY, &[1u8, 2, 3][..]));
    })
    .await
}

#[tokio::test]
async fn subprotocol_client_order_wins_and_exactly_one_is_sent() {
    bounded(async {
        let options = AcceptOptions { protocols: vec!["a".into(), "b".into()], ..AcceptOptions::default() };
        let mut server = echo_server(options).await;

        // Raw: check the response header itself.
        let (_tcp, resp) = raw_connect_with(server.addr, "/", &["Sec-WebSocket-Protocol: b, a"]).await;
        assert_eq!(resp.all("Sec-WebSocket-Protocol"), ["b"], "{resp:?}");
        // Offers spread over two header lines count in order too.
        let (_tcp2, resp) =
            raw_connect_with(server.addr, "/", &["Sec-WebSocket-Protocol: x", "Sec-WebSocket-Protocol: b, a"]).await;
        assert_eq!(resp.all("Sec-WebSocket-Protocol"), ["b"], "{resp:?}");
        // No overlap: no header at all.
        let (_tcp3, resp) = raw_connect_with(server.addr, "/", &["Sec-WebSocket-Protocol: c, d"]).await;
        assert!(resp.all("Sec-WebSocket-Protocol").is_empty(), "{resp:?}");
        // No offer: no header.
        let (_tcp4, resp) = raw_connect_with(server.addr, "/", &[]).await;
        assert!(resp.all("Sec-WebSocket-Protocol").is_empty(), "{resp:?}");

        // Our client sees the same.
        let client = ClientConfig { protocols: vec!["b".into(), "a".into()], ..ClientConfig::default() };
        let (mut ws, resp) = connect_with(&server.url("/"), &client, Config::default()).await.unwrap();
        assert_eq!(resp.protocol.as_deref(), Some("b"));
        ws.send(Message::text("x")).await.unwrap();
        assert_eq!(step("echo", ws.recv()).await.unwrap(), Message::text("x"));

        let client = ClientConfig { protocols: vec!["zz".into()], ..ClientConfig::default() };
        let (_ws, resp) = connect_with(&server.url("/"), &client, Config::default()).await.unwrap();
        assert_eq!(resp.protocol, None);

        // The server saw every request.
        let mut accepted = 0;
        while accepted < 6 {
            if let Event::Accepted(_) = server.next_event().await {
                accepted += 1;
            }
        }
    })
    .await
}

#[tokio::test]
async fn application_can_pick_protocol_and_add_headers() {
    bounded(async {
        let server = echo_server_with(AcceptOptions::default(), |req| {
            let protocol = req.protocols().last().map(str::to_owned);
            Ok(Accept {
                protocol,
                headers: vec![("Set-Cookie".into(), "sid=42; Path=/".into()), ("X-Test".into(), "yes".into())],
                config: None,
            })
        })
        .await;
        let (_tcp, resp) = raw_connect_with(server.addr, "/", &["Sec-WebSocket-Protocol: p1, p2"]).await;
        assert_eq!(resp.all("Sec-WebSocket-Protocol"), ["p2"]);
        assert_eq!(resp.header("Set-Cookie"), Some("sid=42; Path=/"));
        assert_eq!(resp.header("X-Test"), Some("yes"));

        let (_ws, resp) = connect(&server.url("/")).await.unwrap();
        assert_eq!(resp.header("X-Test"), Some("yes"));
        assert_eq!(resp.protocol, None);
    })
    .await
}

#[tokio::test]
async fn application_choosing_an_unoffered_protocol_is_a_500() {
    bounded(async {
        let mut server = echo_server_with(AcceptOptions::default(), |_| {
            Ok(Accept { protocol: Some("never-offered".into()), ..Accept::default() })
        })
        .await;
        let req = upgrade_request("/", &["Sec-WebSocket-Protocol: a"]);
        let resp = raw_request(server.addr, req.as_bytes()).await;
        assert_eq!(resp.status(), 500, "{resp:?}");
        assert!(resp.body_text().contains("never-offered"), "{resp:?}");
        assert!(matches!(server.handshake_failed().await, Error::Handshake(_)));
    })
    .await
}

#[tokio::test]
async fn accept_with_sees_path_query_cookies_and_origin() {
    bounded(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = echo_server_with(AcceptOptions::default(), move |req| {
            let cookies: Vec<(String, String)> =
                req.cookies().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
            let seen = (
                req.path().to_owned(),
                req.query().map(str::to_owned),
                cookies,
                req.origin().map(str::to_owned),
                req.header("authorization").map(str::to_owned),
                req.host().map(str::to_owned),
            );
            tx.send(seen).unwrap();
            Ok(Accept::default())
        })
        .await;
        let client = ClientConfig {
            origin: Some("https://app.example".into()),
            headers: vec![
                ("Cookie".into(), "session=abc123; theme=dark".into()),
                ("Authorization".into(), "Bearer t0k3n".into()),
            ],
            ..ClientConfig::default()
        };
        let url = format!("ws://{}/chat/room%201?id=42&x=y", server.addr);
        let (mut ws, _) = connect_with(&url, &client, Config::default()).await.unwrap();
        let (path, query, cookies, origin, auth, host) = step("request seen", rx.recv()).await.unwrap();
        assert_eq!(path, "/chat/room%201");
        assert_eq!(query.as_deref(), Some("id=42&x=y"));
        assert_eq!(cookies, [("session".to_owned(), "abc123".to_owned()), ("theme".to_owned(), "dark".to_owned())]);
        assert_eq!(origin.as_deref(), Some("https://app.example"));
        assert_eq!(auth.as_deref(), Some("Bearer t0k3n"));
        assert_eq!(host, Some(server.addr.to_string()));
        ws.send(Message::text("ok")).await.unwrap();
        assert_eq!(step("echo", ws.recv()).await.unwrap(), Message::text("ok"));
    })
    .await
}

#[tokio::test]
async fn our_client_rejected_by_application_gets_handshake_error() {
    bounded(async {
        let mut server = origin_checking_server().await;
        let client = ClientConfig { origin: Some("http://evil.example".into()), ..ClientConfig::default() };
        let err = connect_with(&server.url("/"), &client, Config::default()).await.unwrap_err();
        match err {
            Error::Handshake(e) => {
                assert_eq!(e.kind(), &HandshakeErrorKind::BadResponse);
                assert!(e.reason().contains("403"), "{e}");
            }
            other => panic!("expected a handshake error, got {other:?}"),
        }
        match server.handshake_failed().await {
            Error::Handshake(e) => assert_eq!(e.kind(), &HandshakeErrorKind::Rejected { status: 403 }),
            other => panic!("{other:?}"),
        }
        assert_server_still_serves(&mut server).await;
    })
    .await
}

// ---------------------------------------------------------------------------
// Client side against a raw TCP server
// ---------------------------------------------------------------------------

/// A one-shot raw server: reads the request head, returns the key and
/// whatever `answer` builds from it.
async fn raw_server<F>(answer: F) -> SocketAddr
where
    F: FnOnce(&str, &HttpResponse) -> Vec<u8> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        // The "status line" here is the request line.
        let req = read_http_head(&mut tcp).await.unwrap();
        let key = req.header("Sec-WebSocket-Key").unwrap().to_owned();
        let bytes = answer(&key, &req);
        tcp.write_all(&bytes).await.unwrap();
        // Keep the connection open for a while; the client decides.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    addr
}

fn switching(accept: &str, extra: &[&str]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    for l in extra {
        r.push_str(l);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

async fn client_error(addr: SocketAddr, client: ClientConfig) -> simples_ws::handshake::HandshakeError {
    let url = format!("ws://{addr}/");
    match step("client handshake", connect_with(&url, &client, Config::default())).await {
        Err(Error::Handshake(e)) => e,
        Err(other) => panic!("expected Error::Handshake, got {other:?}"),
        Ok(_) => panic!("handshake unexpectedly succeeded"),
    }
}

/// The client's handshake error against a server that answers a valid 101
/// (the right accept key) with the header lines `extra` added.
async fn error_against_101_with(extra: &'static [&'static str], client: ClientConfig) -> simples_ws::handshake::HandshakeError {
    let addr = raw_server(move |key, _| switching(&handshake::accept_key(key.as_bytes()), extra)).await;
    client_error(addr, client).await
}

#[tokio::test]
async fn client_rejects_non_101_status() {
    bounded(async {
        let addr =
            raw_server(|_, _| b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope".to_vec()).await;
        let e = client_error(addr, ClientConfig::default()).await;
        assert_eq!(e.kind(), &HandshakeErrorKind::BadResponse);
        assert!(e.reason().contains("403"), "{e}");
        assert!(e.reason().contains("Forbidden"), "{e}");
    })
    .await
}

#[tokio::test]
async fn client_rejects_wrong_accept() {
    bounded(async {
        let addr = raw_server(|_, _| switching("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &[])).await;
        let e = client_error(addr, ClientConfig::default()).await;
        assert_eq!(e.kind(), &HandshakeErrorKind::BadResponse);
        assert!(e.reason().contains("Sec-WebSocket-Accept"), "{e}");

        let addr = raw_server(|_, _| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec()
        })
        .await;
        let e = client_error(addr, ClientConfig::default()).await;
        assert!(e.reason().contains("Sec-WebSocket-Accept"), "{e}");
    })
    .await
}

#[tokio::test]
async fn client_rejects_unoffered_protocol() {
    bounded(async {
        let client = ClientConfig { protocols: vec!["a".into()], ..ClientConfig::default() };
        let e = error_against_101_with(&["Sec-WebSocket-Protocol: zzz"], client).await;
        assert_eq!(e.kind(), &HandshakeErrorKind::BadResponse);
        assert!(e.reason().contains("not offered"), "{e}");

        let e = error_against_101_with(&["Sec-WebSocket-Protocol: a"], ClientConfig::default()).await;
        assert!(e.reason().contains("none was offered"), "{e}");
    })
    .await
}

#[tokio::test]
async fn client_rejects_missing_upgrade_and_unoffered_extension() {
    bounded(async {
        let addr = raw_server(|key, _| {
            let accept = handshake::accept_key(key.as_bytes());
            format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                .into_bytes()
        })
        .await;
        let e = client_error(addr, ClientConfig::default()).await;
        assert!(e.reason().contains("Upgrade"), "{e}");

        let e = error_against_101_with(&["Sec-WebSocket-Extensions: permessage-deflate"], ClientConfig::default()).await;
        assert!(e.reason().contains("extensions"), "{e}");
    })
    .await
}

#[tokio::test]
async fn client_sends_a_valid_request_and_keeps_frames_after_the_101() {
    bounded(async {
        let addr = raw_server(|key, req| {
            // The request our client sent, checked by hand.
            assert!(req.status_line.starts_with("GET /p?q=1 HTTP/1.1"), "{req:?}");
            assert_eq!(req.header("Upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
            assert_eq!(req.header("Sec-WebSocket-Version"), Some("13"));
            assert_eq!(key.len(), 24);
            let mut out = switching(&handshake::accept_key(key.as_bytes()), &[]);
            // A frame in the same write as the 101.
            out.extend(server_frame(true, OP_TEXT, b"welcome"));
            out
        })
        .await;
        let url = format!("ws://{addr}/p?q=1");
        let (mut ws, resp) = connect(&url).await.unwrap();
        assert_eq!(resp.status, 101);
        assert_eq!(step("first frame", ws.recv()).await.unwrap(), Message::text("welcome"));
    })
    .await
}

#[tokio::test]
async fn client_fails_when_server_closes_during_handshake() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = read_http_head(&mut tcp).await;
            tcp.write_all(b"HTTP/1.1 101 Switching").await.unwrap();
            // dropped: EOF in the middle of the head
        });
        let err = step("connect", connect(&format!("ws://{addr}/"))).await.unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof), "{err:?}");
    })
    .await
}

#[tokio::test]
async fn huge_head_still_gets_its_431_while_the_client_is_writing() {
    // The server stops reading at 8 KiB and closes with input unread; the
    // error response must still reach a client that is busy writing.
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        for round in 0..5 {
            let tcp = TcpStream::connect(server.addr).await.unwrap();
            let (mut r, mut w) = tcp.into_split();
            let writer = tokio::spawn(async move {
                let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
                head.extend_from_slice(&vec![b'a'; 1 << 20]);
                let _ = w.write_all(&head).await;
                w
            });
            let resp = step("431", read_http_response(&mut r)).await;
            match resp {
                Ok(resp) => assert_eq!(resp.status(), 431),
                Err(e) => panic!("round {round}: the 431 response was lost: {e}"),
            }
            let _ = writer.await;
            assert!(matches!(server.handshake_failed().await, Error::Handshake(e) if e.status() == 431));
        }
        assert_server_still_serves(&mut server).await;
    })
    .await
}
