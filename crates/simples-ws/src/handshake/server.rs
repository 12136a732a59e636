//! Server side of the opening handshake (RFC 6455 §4.2).
//!
//! 1. Feed the bytes read so far to [`parse_request`]. `Ok(None)` means the
//!    head is incomplete: read more and call again with the longer buffer.
//!    `Ok(Some((request, n)))` means the first `n` bytes were the handshake;
//!    anything after them is already WebSocket traffic.
//! 2. Inspect the [`Request`] (path, `Origin`, cookies, subprotocols…) and
//!    either build the `101` answer with [`accept_response`] or refuse with
//!    [`reject`].
//! 3. On any error, write [`HandshakeError::to_response`] and close.

use std::borrow::Cow;

use base64::Engine as _;
use httparse::Status;

use super::error::{HandshakeError, HandshakeErrorKind};
use super::http::{self, Single};
use super::{accept_key, WEBSOCKET_VERSION};

pub use super::request::Request;

/// Limits applied while parsing a client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest accepted request head (request line + headers + the blank
    /// line), in bytes; a larger head is answered with `431`.
    /// Default: `8192`.
    pub max_head_size: usize,
    /// Largest accepted number of header fields; more are answered with
    /// `431`. Default: `64`.
    pub max_headers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head_size: 8192,
            max_headers: 64,
        }
    }
}

/// Headers an application may not add to the `101` response because the
/// handshake writes them itself (or they are forbidden on a 1xx response,
/// RFC 7230 §3.3.1, §3.3.2).
const RESERVED_RESPONSE_HEADERS: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// Parses and validates a client's opening handshake from `buf`.
///
/// * `Ok(None)`: the head is incomplete; call again with a longer buffer.
/// * `Ok(Some((request, n)))`: the head is the first `n` bytes of `buf`;
///   bytes after `n` belong to the WebSocket stream.
/// * `Err(e)`: the request must be refused with `e.to_response()`. Status
///   431 when the head exceeds [`ServerConfig::max_head_size`] (checked even
///   while incomplete) or has more than [`ServerConfig::max_headers`] fields;
///   405 when the method is not `GET`; 426 when `Sec-WebSocket-Version` is
///   missing or not `13`; 400 for every other problem (malformed HTTP,
///   HTTP/1.0, missing `Host`, `Upgrade` without `websocket`, `Connection`
///   without `upgrade`, bad or repeated `Sec-WebSocket-Key`, a body).
pub fn parse_request(
    buf: &[u8],
    config: &ServerConfig,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let result = parse_inner(buf, config);
    if let Err(e) = &result {
        tracing::debug!(
            status = e.status(),
            reason = e.reason(),
            "rejecting WebSocket handshake request"
        );
    }
    result
}

fn bad(reason: impl Into<Cow<'static, str>>) -> HandshakeError {
    HandshakeError::new(HandshakeErrorKind::BadRequest, reason)
}

fn parse_inner(
    buf: &[u8],
    config: &ServerConfig,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let too_large = || {
        HandshakeError::new(
            HandshakeErrorKind::HeadTooLarge,
            format!("request head is larger than {} bytes", config.max_head_size),
        )
    };
    let window = http::bounded(buf, config.max_head_size);
    // Every header line takes at least 3 bytes ("a:\n"), so this many slots
    // can never be exhausted by a window that stays within `max_headers`.
    let slots = config.max_headers.min(window.len() / 3 + 1);
    let mut slots = vec![httparse::EMPTY_HEADER; slots];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(window) {
        Ok(Status::Complete(n)) if n <= config.max_head_size => n,
        Ok(Status::Complete(_)) => return Err(too_large()),
        Ok(Status::Partial) if window.len() > config.max_head_size => return Err(too_large()),
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::new(
                HandshakeErrorKind::HeadTooLarge,
                format!("request has more than {} header fields", config.max_headers),
            ))
        }
        Err(e) => return Err(bad(format!("malformed HTTP request: {e}"))),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(bad("malformed HTTP request line"));
    };

    // RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if method != "GET" {
        return Err(HandshakeError::new(
            HandshakeErrorKind::MethodNotAllowed,
            "the WebSocket handshake must use the GET method",
        ));
    }
    if version != 1 {
        return Err(bad("the WebSocket handshake requires HTTP/1.1"));
    }
    let (path_start, path_end) = split_target(target)?;
    let headers = http::own_headers(parsed.headers);
    let count = |name: &str| http::values(&headers, name).count();

    // RFC 6455 §4.2.1 item 2: "A |Host| header field containing the
    // server's authority." (RFC 7230 §5.4: exactly one, else 400.)
    match http::single(&headers, "Host", false) {
        Single::Missing => return Err(bad("missing Host header")),
        Single::Many => return Err(bad("more than one Host header")),
        Single::One(host) if host.is_empty() || std::str::from_utf8(host).is_err() => {
            return Err(bad("empty or non-UTF-8 Host header"))
        }
        Single::One(_) => {}
    }

    // RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the
    // value "websocket", treated as an ASCII case-insensitive value."
    if count("Upgrade") == 0 {
        return Err(bad("missing Upgrade header: not a WebSocket handshake"));
    }
    if !http::any_has_token(&headers, "Upgrade", "websocket") {
        return Err(bad("Upgrade header does not contain \"websocket\""));
    }

    // RFC 6455 §4.2.1 item 4: "A |Connection| header field that includes
    // the token "Upgrade", treated as an ASCII case-insensitive value."
    if !http::any_has_token(&headers, "Connection", "upgrade") {
        return Err(bad("Connection header does not contain \"Upgrade\""));
    }

    // RFC 6455 §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with
    // a value of 13." RFC 6455 §4.2.2 item 4: otherwise answer with an
    // error such as 426 and the version(s) we understand.
    let version_error =
        |reason: &'static str| HandshakeError::new(HandshakeErrorKind::UpgradeRequired, reason);
    match http::single(&headers, "Sec-WebSocket-Version", false) {
        Single::Missing => return Err(version_error("missing Sec-WebSocket-Version header")),
        Single::Many => return Err(version_error("more than one Sec-WebSocket-Version header")),
        Single::One(v) if v != WEBSOCKET_VERSION.as_bytes() => {
            return Err(version_error(
                "unsupported Sec-WebSocket-Version (only 13 is supported)",
            ))
        }
        Single::One(_) => {}
    }

    // RFC 6455 §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a
    // base64-encoded value that, when decoded, is 16 bytes in length."
    // RFC 6455 §11.3.1: it MUST NOT appear more than once in a request.
    let key = match http::single(&headers, "Sec-WebSocket-Key", false) {
        Single::Missing => return Err(bad("missing Sec-WebSocket-Key header")),
        Single::Many => return Err(bad("more than one Sec-WebSocket-Key header")),
        Single::One(k) => k,
    };
    let decoded_len = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(|d| d.len());
    // 16 bytes encode to exactly 24 characters with "==" padding.
    if key.len() != 24 || decoded_len != Ok(16) {
        return Err(bad(
            "Sec-WebSocket-Key is not the base64 encoding of 16 bytes",
        ));
    }
    // Valid base64 is ASCII, so this conversion cannot fail.
    let key = String::from_utf8_lossy(key).into_owned();

    // RFC 6455 §4.1 item 1 / RFC 7230 §3.3: the handshake is a GET without
    // a body; bytes after the head are WebSocket frames, never a body.
    if count("Transfer-Encoding") > 0 {
        return Err(bad(
            "the handshake request must not have a body (Transfer-Encoding)",
        ));
    }
    if http::values(&headers, "Content-Length").any(|v| v != b"0") {
        return Err(bad(
            "the handshake request must not have a body (Content-Length)",
        ));
    }

    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        path_start,
        path_end,
        headers,
        key,
    };
    Ok(Some((request, head_len)))
}

/// Locates the path inside a request-target; returns `(start, end)` where
/// `end` is the position of `?` or the end of the target.
fn split_target(target: &str) -> Result<(usize, usize), HandshakeError> {
    // RFC 6455 §3: fragment identifiers are meaningless in WebSocket URIs;
    // RFC 7230 §5.3 does not allow them in a request-target either.
    if target.contains('#') {
        return Err(bad("request-target contains a fragment ('#')"));
    }
    // RFC 6455 §4.2.1 item 1: the Request-URI is a resource name (origin
    // form) or an absolute ws/wss URI (RFC 7230 §5.3.2 absolute form).
    let start = if target.starts_with('/') {
        0
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let scheme_len = ["ws://", "wss://", "http://", "https://"]
            .iter()
            .find(|s| lower.starts_with(*s))
            .map(|s| s.len())
            .ok_or_else(|| bad("request-target must be a path or an absolute ws/wss URI"))?;
        let rest = target.get(scheme_len..).unwrap_or_default();
        let authority_end = rest
            .find(['/', '?'])
            .map_or(target.len(), |i| scheme_len + i);
        if authority_end == scheme_len {
            return Err(bad("request-target has an empty authority"));
        }
        authority_end
    };
    let end = target
        .get(start..)
        .and_then(|rest| rest.find('?'))
        .map_or(target.len(), |i| start + i);
    Ok((start, end))
}

/// Builds the `101 Switching Protocols` response accepting `req`
/// (RFC 6455 §4.2.2 item 5).
///
/// `protocol` must be one of the subprotocols the client offered (typically
/// from [`Request::select_protocol`]); `extensions` is the raw
/// `Sec-WebSocket-Extensions` value agreed by the extension layer (only
/// allowed if the client offered extensions; an empty value is omitted).
/// `extra_headers` (e.g. `Set-Cookie`) are appended verbatim.
///
/// Errors ([`HandshakeErrorKind::InvalidHeader`], status 500) if any name or
/// value contains CR/LF/NUL, a name is not a token, an extra header would
/// override one the handshake writes, or the protocol/extensions were not
/// offered by the client.
pub fn accept_response(
    req: &Request,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) -> Result<Vec<u8>, HandshakeError> {
    let result = build_accept(req, protocol, extensions, extra_headers);
    if let Err(e) = &result {
        tracing::debug!(reason = e.reason(), "cannot build WebSocket 101 response");
    }
    result
}

fn build_accept(
    req: &Request,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) -> Result<Vec<u8>, HandshakeError> {
    let invalid = |reason: String| HandshakeError::new(HandshakeErrorKind::InvalidHeader, reason);
    if let Some(p) = protocol {
        // RFC 6455 §4.2.2 item 5.5: the selected value MUST be one of the
        // values the client sent.
        http::check_value("Sec-WebSocket-Protocol", p)?;
        if !req.protocols().any(|offered| offered == p) {
            return Err(invalid(format!(
                "subprotocol {p:?} was not offered by the client"
            )));
        }
    }
    let extensions = extensions
        .map(|e| e.trim_matches(http::is_ows))
        .filter(|e| !e.is_empty());
    if let Some(e) = extensions {
        http::check_value("Sec-WebSocket-Extensions", e)?;
        // RFC 6455 §9.1: the server MUST NOT answer with extensions the
        // client did not request.
        if req.extensions().next().is_none() {
            return Err(invalid(
                "extensions were not offered by the client".to_owned(),
            ));
        }
    }
    for (name, value) in extra_headers {
        http::check_header(name, value)?;
        http::check_not_reserved(name, RESERVED_RESPONSE_HEADERS)?;
    }

    let accept = accept_key(req.key().as_bytes());
    let mut out = Vec::with_capacity(160);
    // RFC 6455 §4.2.2 item 5.1-5.4: status line, Upgrade, Connection and
    // Sec-WebSocket-Accept.
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    http::push_header(&mut out, "Upgrade", "websocket");
    http::push_header(&mut out, "Connection", "Upgrade");
    http::push_header(&mut out, "Sec-WebSocket-Accept", &accept);
    // RFC 6455 §4.2.2 item 5.5 and 5.6.
    if let Some(p) = protocol {
        http::push_header(&mut out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extensions {
        http::push_header(&mut out, "Sec-WebSocket-Extensions", e);
    }
    for (name, value) in extra_headers {
        http::push_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// The application's refusal of a handshake, e.g. `reject(403, "origin not
/// allowed")`: a [`HandshakeError`] of kind
/// [`HandshakeErrorKind::Rejected`]. A `status` outside `400..=599` is
/// replaced by `500`. Send it with [`HandshakeError::to_response`].
pub fn reject(status: u16, reason: impl Into<Cow<'static, str>>) -> HandshakeError {
    let e = HandshakeError::new(HandshakeErrorKind::Rejected { status }, reason);
    tracing::debug!(
        status = e.status(),
        reason = e.reason(),
        "application rejected WebSocket handshake"
    );
    e
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
