//! Fuzzes the opening-handshake parsers: `server::parse_request` and
//! `client::ClientHandshake::parse_response`.
//!
//! Input layout: byte 0 picks a split point, the rest is the bytes received.
//! The split point is `byte0 * (len + 1) / 256` (so it covers the whole
//! input whatever its length).
//!
//! The client's `Sec-WebSocket-Key` is random, so the fuzzer could never
//! produce a matching `Sec-WebSocket-Accept` by itself: every `$$` in the
//! input is replaced with the handshake's expected accept value before
//! `parse_response` sees it (and every `%%` with the key, for the server).
//!
//! Checked:
//! - no panic (debug assertions and overflow checks on);
//! - resumability: parsing a prefix then the whole input is consistent:
//!   * if the whole input parses to `Ok(Some((x, n)))`, every prefix shorter
//!     than `n` gives `Ok(None)` (never an error: a driver would have failed
//!     a valid handshake) and every prefix of length >= `n` gives the same
//!     `Ok(Some((x, n)))`;
//!   * a prefix that parses to `Ok(Some)` gives the same on the whole input;
//!   * a prefix that is rejected is rejected with the same status on the
//!     whole input;
//! - `n` is within the input and the configured `max_head_size`;
//! - accessors of the parsed values and the error's `to_response` work.

#![no_main]

use libfuzzer_sys::fuzz_target;
use simples_ws::handshake::client::{ClientConfig, ClientHandshake, Response};
use simples_ws::handshake::server::{self, Request, ServerConfig};
use simples_ws::handshake::{parse_ws_url, HandshakeError};
use std::sync::OnceLock;

const MAX_HEAD: usize = 1024;
const MAX_HEADERS: usize = 16;

struct Clients {
    plain: ClientHandshake,
    offering: ClientHandshake,
}

fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let url = parse_ws_url("ws://example.com:9001/chat?room=1").unwrap();
        let base = ClientConfig { max_head_size: MAX_HEAD, max_headers: MAX_HEADERS, ..ClientConfig::default() };
        let (plain, _) = ClientHandshake::new(&url, &base).unwrap();
        let offering_cfg = ClientConfig {
            protocols: vec!["chat".into(), "superchat".into()],
            extensions: Some("permessage-deflate; client_max_window_bits".into()),
            origin: Some("http://example.com".into()),
            ..base
        };
        let (offering, _) = ClientHandshake::new(&url, &offering_cfg).unwrap();
        Clients { plain, offering }
    })
}

fn replace(data: &[u8], marker: &[u8; 2], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(marker) {
            out.extend_from_slice(with);
            i += 2;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

fn check_error(e: &HandshakeError) {
    let _ = e.to_string();
    let status = e.status();
    assert!((400..=599).contains(&status), "status {status} for {e:?}");
    let resp = e.to_response();
    assert!(resp.starts_with(b"HTTP/1.1 "), "error response {resp:?}");
}

fn check_request(req: &Request, n: usize, len: usize) {
    assert!(n <= len && n <= MAX_HEAD, "head length {n} of {len} bytes");
    let _ = (req.method(), req.target(), req.path(), req.query(), req.origin(), req.host());
    assert_eq!(req.key().len(), 24);
    assert!(req.target().contains(req.path()));
    for (name, value) in req.headers() {
        let _ = (name.len(), value.len(), req.header(name));
    }
    for (k, v) in req.cookies() {
        let _ = (k.len(), v.len(), req.cookie(k));
    }
    let _ = req.extensions().count();
    let offered: Vec<&str> = req.protocols().collect();
    let selected = req.select_protocol(&["chat", "superchat"]);
    if let Some(p) = selected {
        assert!(offered.contains(&p));
    }
    let resp = server::accept_response(req, selected, None, &[]);
    assert!(resp.is_ok(), "cannot accept a parsed request: {resp:?}");
}

fn check_response(hs: &ClientHandshake, resp: &Response, n: usize, len: usize) {
    assert!(n <= len && n <= MAX_HEAD, "head length {n} of {len} bytes");
    assert_eq!(resp.status, 101);
    if resp.protocol.is_some() {
        assert!(std::ptr::eq(hs, &clients().offering), "protocol selected that was not offered");
    }
    if !resp.extensions.is_empty() {
        assert!(std::ptr::eq(hs, &clients().offering), "extensions that were not offered");
    }
    for (name, _) in resp.headers() {
        let _ = resp.header(name);
    }
}

/// The resumability properties, for any parser `f` returning
/// `Result<Option<(T, usize)>, HandshakeError>`.
fn check_consistent<T: PartialEq + std::fmt::Debug>(
    what: &str,
    buf: &[u8],
    split: usize,
    f: impl Fn(&[u8]) -> Result<Option<(T, usize)>, HandshakeError>,
) -> Result<Option<(T, usize)>, HandshakeError> {
    let whole = f(buf);
    let prefix = f(&buf[..split]);
    if let Err(e) = &whole {
        check_error(e);
    }
    if let Err(e) = &prefix {
        check_error(e);
    }
    match (&prefix, &whole) {
        (Ok(Some(p)), w) => assert_eq!(Ok(Some(p)), w.as_ref().map(|o| o.as_ref()), "{what}: prefix of {split} parsed, the whole differs"),
        (Err(pe), Err(we)) => assert_eq!(pe.status(), we.status(), "{what}: prefix of {split} rejected as {pe:?}, the whole as {we:?}"),
        (Err(pe), w) => panic!("{what}: prefix of {split} rejected ({pe:?}) but the whole input gives {w:?}"),
        (Ok(None), _) => {}
    }
    if let Ok(Some((value, n))) = &whole {
        let n = *n;
        if split < n {
            assert!(matches!(prefix, Ok(None)), "{what}: prefix of {split} < head {n} gives {prefix:?}");
        }
        // The exact head parses alone; one byte less is incomplete.
        match f(&buf[..n]) {
            Ok(Some((v, m))) => assert!(m == n && &v == value, "{what}: head alone parses differently"),
            other => panic!("{what}: the {n}-byte head alone gives {other:?}"),
        }
        let shorter = f(&buf[..n - 1]);
        assert!(matches!(shorter, Ok(None)), "{what}: head minus one byte gives {shorter:?}");
    }
    whole
}

fuzz_target!(|data: &[u8]| {
    let Some((&split_byte, rest)) = data.split_first() else {
        return;
    };
    let c = clients();
    let server_cfg = ServerConfig { max_head_size: MAX_HEAD, max_headers: MAX_HEADERS };

    let req_buf = replace(rest, b"%%", c.plain.key().as_bytes());
    let split = split_byte as usize * (req_buf.len() + 1) / 256;
    if let Ok(Some((req, n))) = check_consistent("parse_request", &req_buf, split, |b| server::parse_request(b, &server_cfg)) {
        check_request(&req, n, req_buf.len());
    }

    for hs in [&c.plain, &c.offering] {
        let resp_buf = replace(rest, b"$$", hs.expected_accept().as_bytes());
        let split = split_byte as usize * (resp_buf.len() + 1) / 256;
        if let Ok(Some((resp, n))) = check_consistent("parse_response", &resp_buf, split, |b| hs.parse_response(b)) {
            check_response(hs, &resp, n, resp_buf.len());
        }
    }
});
