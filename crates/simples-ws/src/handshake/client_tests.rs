//! Tests of the client handshake (kept apart from `client.rs` to keep both
//! files short).

use super::*;
use crate::handshake::parse_ws_url;
use crate::handshake::server::{accept_response, parse_request, ServerConfig};

/// The RFC 6455 §1.3 sample nonce "the sample nonce".
const NONCE: [u8; 16] = *b"the sample nonce";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn handshake(config: &ClientConfig) -> (ClientHandshake, Vec<u8>) {
    let url = parse_ws_url("ws://example.com:9001/chat?x=1").unwrap();
    ClientHandshake::with_nonce(&url, config, NONCE).unwrap()
}

fn offering(protocols: &[&str], extensions: Option<&str>) -> ClientHandshake {
    let config = ClientConfig {
        protocols: protocols.iter().map(|p| p.to_string()).collect(),
        extensions: extensions.map(str::to_owned),
        ..ClientConfig::default()
    };
    handshake(&config).0
}

fn response(lines: &[&str]) -> Vec<u8> {
    let mut s = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const ACCEPT_LINE: &str = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn good() -> Vec<u8> {
    response(&[UPGRADE, CONNECTION, ACCEPT_LINE])
}

#[track_caller]
/// A valid 101 response with one more header line, `extra`.
fn accepted_with(extra: &str) -> Vec<u8> {
    response(&[UPGRADE, CONNECTION, ACCEPT_LINE, extra])
}

fn fails(hs: &ClientHandshake, buf: &[u8], needle: &str) {
    match hs.parse_response(buf) {
        Err(e) => {
            assert_eq!(e.kind(), &HandshakeErrorKind::BadResponse, "{}", e.reason());
            e.assert_mentions(needle);
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

/// A configuration that sets every request field: `protocols`, the
/// permessage-deflate offer, `origin` and one more `header`.
fn config_with(protocols: &[&str], origin: &str, header: (&str, &str)) -> ClientConfig {
    ClientConfig {
        protocols: protocols.iter().map(|p| p.to_string()).collect(),
        extensions: Some("permessage-deflate".into()),
        origin: Some(origin.into()),
        headers: vec![(header.0.into(), header.1.into())],
        ..ClientConfig::default()
    }
}

#[test]
fn request_bytes() {
    let config = config_with(&["chat", "superchat"], "http://example.com", ("Authorization", "Bearer t"));
    let (hs, req) = handshake(&config);
    assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(hs.expected_accept(), ACCEPT);
    assert_eq!(
        String::from_utf8(req).unwrap(),
        "GET /chat?x=1 HTTP/1.1\r\n\
         Host: example.com:9001\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Origin: http://example.com\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\
         Authorization: Bearer t\r\n\
         \r\n"
    );
}

#[test]
fn fresh_random_keys() {
    let url = parse_ws_url("wss://example.com/").unwrap();
    let (a, req) = ClientHandshake::new(&url, &ClientConfig::default()).unwrap();
    let (b, _) = ClientHandshake::new(&url, &ClientConfig::default()).unwrap();
    assert_ne!(a.key(), b.key());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(a.key())
        .unwrap();
    assert_eq!(decoded.len(), 16);
    let text = String::from_utf8(req).unwrap();
    assert!(text.contains("\r\nHost: example.com\r\n"), "{text}");
    assert!(!text.contains("Sec-WebSocket-Protocol"));
    assert!(!text.contains("Origin"));
}

#[test]
fn invalid_request_headers() {
    let url = parse_ws_url("ws://h/").unwrap();
    let protocols = |p: &[&str]| ClientConfig {
        protocols: p.iter().map(|s| s.to_string()).collect(),
        ..ClientConfig::default()
    };
    let header = |name: &str, value: &str| ClientConfig {
        headers: vec![(name.into(), value.into())],
        ..ClientConfig::default()
    };
    let bad_configs = [
        ClientConfig { origin: Some("a\r\nX: 1".into()), ..ClientConfig::default() },
        ClientConfig { extensions: Some("x\nY: 1".into()), ..ClientConfig::default() },
        protocols(&["a b"]),
        protocols(&[""]),
        protocols(&["a,b"]),
        protocols(&["a", "a"]),
        header("X-A", "1\r\n"),
        header("X A", "1"),
        header("host", "evil"),
        header("Sec-WebSocket-Key", "x"),
    ];
    for config in bad_configs {
        let e = ClientHandshake::new(&url, &config).unwrap_err();
        assert_eq!(e.kind(), &HandshakeErrorKind::InvalidHeader, "{config:?}");
    }
    let mut hand_built = url.clone();
    hand_built.path_and_query = "/\r\nEvil: 1".into();
    let e = ClientHandshake::new(&hand_built, &ClientConfig::default()).unwrap_err();
    assert_eq!(e.kind(), &HandshakeErrorKind::BadUrl);
}

#[test]
fn every_split_point() {
    let hs = offering(&["chat"], None);
    let head = accepted_with("Sec-WebSocket-Protocol: chat");
    let mut buf = head.clone();
    buf.extend_from_slice(b"\x81\x02hi");
    for i in 0..=buf.len() {
        match hs.parse_response(&buf[..i]) {
            Ok(None) => assert!(i < head.len(), "incomplete at {i}"),
            Ok(Some((resp, n))) => {
                assert!(i >= head.len());
                assert_eq!(n, head.len(), "trailing bytes must not be consumed");
                assert_eq!(resp.status, 101);
                assert_eq!(resp.protocol.as_deref(), Some("chat"));
                assert!(resp.extensions.is_empty());
                assert_eq!(resp.header("sec-websocket-accept"), Some(ACCEPT));
                assert_eq!(resp.headers().count(), 4);
            }
            Err(e) => panic!("split at {i}: {e}"),
        }
    }
}

#[test]
fn wrong_status() {
    let hs = offering(&[], None);
    fails(
        &hs,
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "server answered 403 Forbidden",
    );
    fails(&hs, b"HTTP/1.1 200 OK\r\n\r\n", "server answered 200 OK");
    fails(&hs, b"HTTP/1.1 404 \r\n\r\n", "server answered 404 Not Found");
    fails(&hs, b"HTTP/1.0 101 Switching Protocols\r\n\r\n", "HTTP/1.1");
    fails(&hs, b"HTTP/1.1 1O1 Nope\r\n\r\n", "malformed");
}

#[test]
fn upgrade_and_connection() {
    let hs = offering(&[], None);
    hs.parse_response(&response(&[
        "Upgrade: WebSocket",
        "Connection: keep-alive, upgrade",
        ACCEPT_LINE,
    ]))
    .unwrap()
    .unwrap();
    fails(&hs, &response(&[CONNECTION, ACCEPT_LINE]), "lacks an Upgrade");
    fails(&hs, &response(&["Upgrade: h2c", CONNECTION, ACCEPT_LINE]), "websocket");
    fails(&hs, &response(&[UPGRADE, ACCEPT_LINE]), "Connection");
    fails(&hs, &response(&[UPGRADE, "Connection: close", ACCEPT_LINE]), "Connection");
}

#[test]
fn accept_checks() {
    let hs = offering(&[], None);
    fails(&hs, &response(&[UPGRADE, CONNECTION]), "lacks a Sec-WebSocket-Accept");
    fails(
        &hs,
        &response(&[
            UPGRADE,
            CONNECTION,
            "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ]),
        "does not match",
    );
    fails(&hs, &response(&[UPGRADE, CONNECTION, ACCEPT_LINE, ACCEPT_LINE]), "more than one");
    // The comparison is exact (base64 is case-sensitive).
    fails(
        &hs,
        &response(&[
            UPGRADE,
            CONNECTION,
            "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=",
        ]),
        "does not match",
    );
}

#[test]
fn protocol_checks() {
    let none = offering(&[], None);
    fails(&none, &accepted_with("Sec-WebSocket-Protocol: chat"), "none was offered");
    let hs = offering(&["chat", "superchat"], None);
    fails(&hs, &accepted_with("Sec-WebSocket-Protocol: mqtt"), "not offered");
    fails(&hs, &accepted_with("Sec-WebSocket-Protocol: Chat"), "not offered");
    fails(&hs, &accepted_with("Sec-WebSocket-Protocol: chat, superchat"), "more than one");
    fails(
        &hs,
        &response(&[
            UPGRADE,
            CONNECTION,
            ACCEPT_LINE,
            "Sec-WebSocket-Protocol: chat",
            "Sec-WebSocket-Protocol: chat",
        ]),
        "more than one",
    );
    // Not selecting any protocol is allowed.
    let (resp, _) = hs.parse_response(&good()).unwrap().unwrap();
    assert_eq!(resp.protocol, None);
    let (resp, _) = hs
        .parse_response(&accepted_with("Sec-WebSocket-Protocol: superchat"))
        .unwrap()
        .unwrap();
    assert_eq!(resp.protocol.as_deref(), Some("superchat"));
}

#[test]
fn extension_checks() {
    let none = offering(&[], None);
    let with_ext = accepted_with("Sec-WebSocket-Extensions: permessage-deflate");
    fails(&none, &with_ext, "none were offered");
    let hs = offering(&[], Some("permessage-deflate; client_max_window_bits"));
    let (resp, _) = hs.parse_response(&with_ext).unwrap().unwrap();
    assert_eq!(resp.extensions, ["permessage-deflate"]);
    let (resp, _) = hs.parse_response(&good()).unwrap().unwrap();
    assert!(resp.extensions.is_empty());
}

#[test]
fn head_limits() {
    let config = ClientConfig {
        max_head_size: 64,
        max_headers: 2,
        ..ClientConfig::default()
    };
    let hs = handshake(&config).0;
    let e = hs.parse_response(&good()).unwrap_err();
    assert_eq!(e.kind(), &HandshakeErrorKind::HeadTooLarge);
    let e = hs.parse_response(&good()[..65]).unwrap_err();
    assert_eq!(e.kind(), &HandshakeErrorKind::HeadTooLarge);
    assert_eq!(hs.parse_response(&good()[..64]), Ok(None));
    let config = ClientConfig {
        max_headers: 2,
        ..ClientConfig::default()
    };
    let e = handshake(&config).0.parse_response(&good()).unwrap_err();
    assert!(e.reason().contains("more than 2 header"), "{}", e.reason());
}

#[test]
fn round_trip() {
    let url = parse_ws_url("ws://[::1]:9001/chat?room=7").unwrap();
    let config = config_with(&["v2.chat", "v1.chat"], "https://app.example", ("Cookie", "sid=abc; theme=dark"));
    let (hs, request_bytes) = ClientHandshake::new(&url, &config).unwrap();
    let (req, n) = parse_request(&request_bytes, &ServerConfig::default())
        .unwrap()
        .unwrap();
    assert_eq!(n, request_bytes.len());
    assert_eq!(req.host(), Some("[::1]:9001"));
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("room=7"));
    assert_eq!(req.origin(), Some("https://app.example"));
    assert_eq!(req.cookie("sid"), Some("abc"));
    assert_eq!(req.key(), hs.key());
    let protocol = req.select_protocol(&["v1.chat", "v2.chat"]);
    assert_eq!(protocol, Some("v2.chat"));
    assert_eq!(req.extensions().collect::<Vec<_>>(), ["permessage-deflate"]);
    let mut answer = accept_response(&req, protocol, Some("permessage-deflate"), &[]).unwrap();
    let head_len = answer.len();
    answer.extend_from_slice(b"\x81\x00");
    let (resp, n) = hs.parse_response(&answer).unwrap().unwrap();
    assert_eq!(n, head_len);
    assert_eq!(resp.status, 101);
    assert_eq!(resp.protocol.as_deref(), Some("v2.chat"));
    assert_eq!(resp.extensions, ["permessage-deflate"]);
}

#[test]
fn never_panics_on_garbage() {
    let hs = offering(&["chat"], Some("x"));
    let base = accepted_with("Sec-WebSocket-Protocol: chat");
    for i in 0..base.len() {
        for b in [0u8, b'\r', b'\n', b' ', b':', 0xff, b','] {
            let mut buf = base.clone();
            buf[i] = b;
            let _ = hs.parse_response(&buf);
        }
    }
}
