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

use httparse::Status;

use super::decision::{check_extra_header, check_protocol, switching_headers, write_switching};
use super::error::{HandshakeError, HandshakeErrorKind};
use super::http;
use super::offer::{NonUpgrade, Offer, RequestHead};

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
    let headers = http::own_headers(parsed.headers);
    // RFC 6455 §4.2.1: the one rule every server of the crate applies.
    let head = RawHead { method, version, headers: &headers };
    let key = Offer::from_head(&head, NonUpgrade::BadRequest)?.key().to_owned();
    let (path_start, path_end) = split_target(target)?;

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

/// The head `httparse` parsed, seen by the rule.
struct RawHead<'a> {
    method: &'a str,
    version: u8,
    headers: &'a http::Headers,
}

impl RequestHead for RawHead<'_> {
    fn method(&self) -> &str {
        self.method
    }

    fn is_http11(&self) -> bool {
        self.version == 1
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        http::values(self.headers, name)
    }
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
    if let Some(p) = protocol {
        check_protocol(req.protocols(), p)?;
    }
    let extensions = extensions
        .map(|e| e.trim_matches(http::is_ows))
        .filter(|e| !e.is_empty());
    if let Some(e) = extensions {
        http::check_value("Sec-WebSocket-Extensions", e)?;
        // RFC 6455 §9.1: the server MUST NOT answer with extensions the
        // client did not request.
        if req.extensions().next().is_none() {
            return Err(HandshakeError::new(
                HandshakeErrorKind::InvalidHeader,
                "extensions were not offered by the client",
            ));
        }
    }
    for (name, value) in extra_headers {
        check_extra_header(name, value)?;
    }
    Ok(write_switching(&switching_headers(req.key(), protocol, extensions, extra_headers)))
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
