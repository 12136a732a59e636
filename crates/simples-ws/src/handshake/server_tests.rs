//! Tests of the server handshake (kept apart from `server.rs` to keep both
//! files short).

use super::*;
use proptest::prelude::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn default_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Origin", "http://example.com"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Version", "13"),
    ]
}

fn build(request_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn valid() -> Vec<u8> {
    build("GET /chat?room=1 HTTP/1.1", &default_headers())
}

/// The default request with header `name` removed (if `value` is None) or
/// replaced by `value`.
fn with(name: &str, value: Option<&str>) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = default_headers();
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    if let Some(v) = value {
        headers.push((name, v));
    }
    build("GET /chat?room=1 HTTP/1.1", &headers)
}

fn adding(name: &'static str, value: &'static str) -> Vec<u8> {
    let mut headers = default_headers();
    headers.push((name, value));
    build("GET /chat?room=1 HTTP/1.1", &headers)
}

fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HandshakeError> {
    parse_request(buf, &ServerConfig::default())
}

fn ok(buf: &[u8]) -> Request {
    match parse(buf) {
        Ok(Some((req, n))) => {
            assert_eq!(n, buf.len());
            req
        }
        other => panic!("expected a request, got {other:?}"),
    }
}

#[track_caller]
fn rejects(buf: &[u8], status: u16, needle: &str) -> HandshakeError {
    match parse(buf) {
        Err(e) => {
            assert_eq!(e.status(), status, "reason: {}", e.reason());
            e.assert_mentions(needle);
            e
        }
        other => panic!("expected rejection, got {other:?}"),
    }
}

#[test]
fn parses_valid_request() {
    let req = ok(&valid());
    assert_eq!(req.method(), "GET");
    assert_eq!(req.target(), "/chat?room=1");
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("room=1"));
    assert_eq!(req.host(), Some("server.example.com"));
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(req.key(), KEY);
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
    assert_eq!(req.extensions().count(), 0);
    assert_eq!(req.headers().count(), 7);
}

#[test]
fn every_split_point_and_trailing_bytes() {
    let head = valid();
    let mut buf = head.clone();
    buf.extend_from_slice(b"\x81\x05hello");
    let expected = ok(&head);
    for i in 0..=buf.len() {
        match parse(&buf[..i]) {
            Ok(None) => assert!(i < head.len(), "incomplete at {i}"),
            Ok(Some((req, n))) => {
                assert!(i >= head.len());
                assert_eq!(n, head.len(), "trailing bytes must not be consumed");
                assert_eq!(req, expected);
            }
            Err(e) => panic!("split at {i}: {e}"),
        }
    }
}

#[test]
fn head_too_large() {
    let cfg = ServerConfig {
        max_head_size: 100,
        ..ServerConfig::default()
    };
    let buf = valid();
    assert!(buf.len() > 100);
    // Complete head, too large.
    let e = parse_request(&buf, &cfg).unwrap_err();
    assert_eq!(e.status(), 431);
    assert!(e.reason().contains("100 bytes"), "{}", e.reason());
    // Incomplete and already over the limit: no need to wait for more.
    let e = parse_request(&buf[..101], &cfg).unwrap_err();
    assert_eq!(e.status(), 431);
    // Incomplete at exactly the limit: still waiting.
    assert_eq!(parse_request(&buf[..100], &cfg), Ok(None));
    // A head of exactly max_head_size bytes is fine.
    let exact = ServerConfig {
        max_head_size: buf.len(),
        ..ServerConfig::default()
    };
    assert!(matches!(parse_request(&buf, &exact), Ok(Some(_))));
    // A huge never-ending header is refused.
    let mut endless = b"GET / HTTP/1.1\r\nX: ".to_vec();
    endless.resize(10_000, b'a');
    rejects(&endless, 431, "8192");
}

#[test]
fn too_many_headers() {
    let cfg = ServerConfig {
        max_headers: 7,
        ..ServerConfig::default()
    };
    assert!(matches!(parse_request(&valid(), &cfg), Ok(Some(_))));
    let e = parse_request(&adding("X-Extra", "1"), &cfg).unwrap_err();
    assert_eq!(e.status(), 431);
    assert!(e.reason().contains("more than 7 header"), "{}", e.reason());
    let zero = ServerConfig {
        max_headers: 0,
        ..ServerConfig::default()
    };
    assert_eq!(parse_request(&valid(), &zero).unwrap_err().status(), 431);
}

#[test]
fn malformed_http() {
    rejects(
        b"GET /chat HTTP/1.1\r\nBad Header\r\n\r\n",
        400,
        "malformed",
    );
    rejects(b"\x00\x01\x02\r\n\r\n", 400, "malformed");
    rejects(b"GET /chat HTTP/2.0\r\n\r\n", 400, "malformed");
    // obs-fold is not accepted in requests.
    rejects(b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400, "malformed");
}

#[test]
fn method_must_be_get() {
    let mut buf = valid();
    buf.splice(..3, b"POST".iter().copied());
    let e = rejects(&buf, 405, "GET");
    assert!(String::from_utf8(e.to_response())
        .unwrap()
        .contains("\r\nAllow: GET\r\n"));
}

#[test]
fn http_1_0_rejected() {
    let buf = build("GET /chat HTTP/1.0", &default_headers());
    rejects(&buf, 400, "HTTP/1.1");
}

#[test]
fn host_rules() {
    rejects(&with("Host", None), 400, "Host");
    rejects(&adding("Host", "other.example"), 400, "Host");
    rejects(&with("Host", Some("")), 400, "Host");
}

#[test]
fn upgrade_rules() {
    rejects(&with("Upgrade", None), 400, "Upgrade");
    rejects(&with("Upgrade", Some("h2c")), 400, "websocket");
    rejects(&with("Upgrade", Some("websocketx")), 400, "websocket");
    ok(&with("Upgrade", Some("h2c, WebSocket")));
    ok(&with("Upgrade", Some("WEBSOCKET")));
}

#[test]
fn connection_rules() {
    rejects(&with("Connection", None), 400, "Connection");
    rejects(&with("Connection", Some("keep-alive")), 400, "Connection");
    ok(&with("Connection", Some("keep-alive, upgrade")));
    // The token may be in any of several Connection headers.
    let mut headers = default_headers();
    headers.retain(|(n, _)| *n != "Connection");
    headers.push(("Connection", "keep-alive"));
    headers.push(("connection", "Upgrade"));
    ok(&build("GET / HTTP/1.1", &headers));
}

#[test]
fn key_rules() {
    rejects(&with("Sec-WebSocket-Key", None), 400, "Sec-WebSocket-Key");
    rejects(&adding("Sec-WebSocket-Key", KEY), 400, "Sec-WebSocket-Key");
    // 15 bytes, 17 bytes, unpadded, not base64, non-canonical trailing bits.
    for bad in [
        "AAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZ!==",
        "dGhlIHNhbXBsZSBub25jZR==",
    ] {
        rejects(
            &with("Sec-WebSocket-Key", Some(bad)),
            400,
            "Sec-WebSocket-Key",
        );
    }
}

#[test]
fn version_rules() {
    let e = rejects(
        &with("Sec-WebSocket-Version", None),
        426,
        "Sec-WebSocket-Version",
    );
    let text = String::from_utf8(e.to_response()).unwrap();
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    rejects(
        &with("Sec-WebSocket-Version", Some("8")),
        426,
        "Sec-WebSocket-Version",
    );
    rejects(
        &with("Sec-WebSocket-Version", Some("13, 8")),
        426,
        "Sec-WebSocket-Version",
    );
    rejects(
        &adding("Sec-WebSocket-Version", "13"),
        426,
        "Sec-WebSocket-Version",
    );
    // A plain HTTP request is a 400, not a 426.
    rejects(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "Upgrade");
}

#[test]
fn body_rejected() {
    rejects(&adding("Content-Length", "5"), 400, "body");
    rejects(&adding("Content-Length", "abc"), 400, "body");
    rejects(&adding("Transfer-Encoding", "chunked"), 400, "body");
    ok(&adding("Content-Length", "0"));
}

#[test]
fn request_target_forms() {
    let req = ok(&build(
        "GET ws://example.com:9001/chat?x=1 HTTP/1.1",
        &default_headers(),
    ));
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("x=1"));
    let req = ok(&build(
        "GET WSS://example.com?x HTTP/1.1",
        &default_headers(),
    ));
    assert_eq!(req.path(), "/");
    assert_eq!(req.query(), Some("x"));
    for (request_line, reason) in [
        ("GET /chat#frag HTTP/1.1", "fragment"),
        ("GET * HTTP/1.1", "request-target"),
        ("GET example.com:80 HTTP/1.1", "request-target"),
        ("GET ws:///chat HTTP/1.1", "authority"),
    ] {
        rejects(&build(request_line, &default_headers()), 400, reason);
    }
}

#[test]
fn accept_response_rfc_example() {
    let req = ok(&valid());
    let resp = accept_response(&req, None, None, &[]).unwrap();
    assert_eq!(
        resp,
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          \r\n"
    );
}

#[test]
fn accept_response_with_protocol_extensions_and_headers() {
    let req = ok(&adding("Sec-WebSocket-Extensions", "permessage-deflate"));
    let proto = req.select_protocol(&["superchat", "chat"]);
    assert_eq!(proto, Some("chat"));
    let extra = [("Set-Cookie".to_owned(), "sid=1; HttpOnly".to_owned())];
    let resp = accept_response(&req, proto, Some("permessage-deflate"), &extra).unwrap();
    let text = String::from_utf8(resp).unwrap();
    assert!(text.ends_with(
        "Sec-WebSocket-Protocol: chat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\
         Set-Cookie: sid=1; HttpOnly\r\n\r\n"
    ));
    // An empty extension value is simply omitted.
    let text = String::from_utf8(accept_response(&req, None, Some(""), &[]).unwrap()).unwrap();
    assert!(!text.contains("Extensions"));
}

#[test]
fn accept_response_validation() {
    let req = ok(&valid());
    let hdr = |n: &str, v: &str| [(n.to_owned(), v.to_owned())];
    for extra in [
        hdr("X-A", "a\r\nEvil: 1"),
        hdr("X-A", "a\nb"),
        hdr("X-A\r\nEvil", "1"),
        hdr("Bad Name", "1"),
        hdr("", "1"),
        hdr("sec-websocket-accept", "x"),
        hdr("Upgrade", "h2c"),
    ] {
        let e = accept_response(&req, None, None, &extra).unwrap_err();
        assert_eq!(e.kind(), &HandshakeErrorKind::InvalidHeader);
        assert_eq!(e.status(), 500);
    }
    let e = accept_response(&req, Some("mqtt"), None, &[]).unwrap_err();
    assert!(e.reason().contains("not offered"), "{}", e.reason());
    assert!(accept_response(&req, Some("chat\r\nX: 1"), None, &[]).is_err());
    let e = accept_response(&req, None, Some("permessage-deflate"), &[]).unwrap_err();
    assert!(e.reason().contains("extensions"), "{}", e.reason());
}

#[test]
fn reject_statuses() {
    let e = reject(403, "origin not allowed");
    assert_eq!(e.kind(), &HandshakeErrorKind::Rejected { status: 403 });
    assert_eq!(e.status(), 403);
    assert_eq!(e.reason(), "origin not allowed");
    let text = String::from_utf8(e.to_response()).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"));
    assert!(text.ends_with("\r\n\r\norigin not allowed\n"));
    assert_eq!(reject(401, String::from("login")).status(), 401);
    assert_eq!(reject(599, "x").status(), 599);
    assert_eq!(reject(200, "x").status(), 500);
    assert_eq!(reject(101, "x").status(), 500);
    assert_eq!(reject(600, "x").status(), 500);
    assert_eq!(reject(399, "x").status(), 500);
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn check_no_panic(buf: &[u8]) {
    for cfg in [
        ServerConfig::default(),
        ServerConfig {
            max_head_size: 64,
            max_headers: 3,
        },
        ServerConfig {
            max_head_size: 0,
            max_headers: 0,
        },
    ] {
        match parse_request(buf, &cfg) {
            Ok(Some((req, n))) => {
                assert!(n <= buf.len() && n <= cfg.max_head_size);
                // Exercise every accessor.
                let _ = (req.path(), req.query(), req.host(), req.origin());
                let _ = req.cookies().count() + req.extensions().count();
                let _ = req.select_protocol(&["chat"]);
                let _ = accept_response(&req, None, None, &[]);
            }
            Ok(None) => assert!(buf.len() <= cfg.max_head_size),
            Err(e) => {
                assert!(matches!(e.status(), 400 | 405 | 426 | 431));
                let _ = e.to_response();
            }
        }
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_no_panic(&buf);
    }

    #[test]
    fn never_panics_on_mutated_request(muts in proptest::collection::vec(mutation(), 1..8)) {
        let mut buf = adding("Cookie", "a=1; b=2");
        for m in muts {
            let len = buf.len();
            match m {
                Mutation::Set(i, b) if len > 0 => buf[i % len] = b,
                Mutation::Insert(i, b) => buf.insert(i % (len + 1), b),
                Mutation::Remove(i) if len > 0 => { buf.remove(i % len); }
                Mutation::Truncate(i) => buf.truncate(i % (len + 1)),
                _ => {}
            }
        }
        check_no_panic(&buf);
    }
}
