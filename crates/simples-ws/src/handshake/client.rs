//! Client side of the opening handshake (RFC 6455 §4.1).
//!
//! 1. [`ClientHandshake::new`] generates a fresh `Sec-WebSocket-Key` and
//!    returns the `GET` request bytes to write.
//! 2. Feed the bytes read back to [`ClientHandshake::parse_response`] until
//!    it returns `Ok(Some((response, n)))`; bytes after `n` are already
//!    WebSocket frames. `Ok(None)` means "read more and call again".
//! 3. Any `Err` means the connection MUST be failed (RFC 6455 §4.1: "the
//!    client MUST _Fail the WebSocket Connection_").

use std::borrow::Cow;

use base64::Engine as _;
use httparse::Status;

use super::error::{HandshakeError, HandshakeErrorKind};
use super::http::{self, Headers, Single};
use super::url::{check_url, WsUrl};
use super::{accept_key, WEBSOCKET_VERSION};

/// What the client offers and sends in its handshake request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order of
    /// preference; each must be a unique, non-empty token (RFC 6455 §4.1
    /// item 10). Default: empty (header not sent).
    pub protocols: Vec<String>,
    /// Raw `Sec-WebSocket-Extensions` offer (RFC 6455 §4.1 item 11).
    /// Default: `None` (header not sent, and any extension in the response
    /// is an error).
    pub extensions: Option<String>,
    /// `Origin` header to send (RFC 6455 §4.1 item 8). Default: `None`.
    pub origin: Option<String>,
    /// Extra request headers (e.g. `Authorization`, `Cookie`), appended in
    /// order. Must not repeat a header the handshake writes itself.
    /// Default: empty.
    pub headers: Vec<(String, String)>,
    /// Largest accepted response head in bytes. Default: `8192`.
    pub max_head_size: usize,
    /// Largest accepted number of response header fields. Default: `64`.
    pub max_headers: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            protocols: Vec::new(),
            extensions: None,
            origin: None,
            headers: Vec::new(),
            max_head_size: 8192,
            max_headers: 64,
        }
    }
}

/// Request headers an application may not add through
/// [`ClientConfig::headers`] because the handshake writes them (or because
/// the handshake request has no body).
const RESERVED_REQUEST_HEADERS: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Origin",
    "Content-Length",
    "Transfer-Encoding",
];

/// The state of a client handshake in flight: the key sent, the accept
/// value expected back and what was offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    key: String,
    accept: String,
    protocols: Vec<String>,
    extensions_offered: bool,
    max_head_size: usize,
    max_headers: usize,
}

/// The server's validated `101 Switching Protocols` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (always `101` once validated).
    pub status: u16,
    /// The subprotocol selected by the server, if any (always one of the
    /// offered ones).
    pub protocol: Option<String>,
    /// Raw values of the `Sec-WebSocket-Extensions` headers, for the
    /// extension layer to check against its offer (empty if none).
    pub extensions: Vec<String>,
    headers: Headers,
}

impl Response {
    /// The first value of header `name` (case-insensitive), whitespace
    /// trimmed; `None` if absent or not UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        http::first_str(&self.headers, name)
    }

    /// All header fields in arrival order as (name, raw value bytes).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

fn bad(reason: impl Into<Cow<'static, str>>) -> HandshakeError {
    HandshakeError::new(HandshakeErrorKind::BadResponse, reason)
}

impl ClientHandshake {
    /// Builds the opening handshake request for `url` (RFC 6455 §4.1) with a
    /// fresh random 16-byte key from the OS CSPRNG. The `Host` header
    /// includes the port only when it is not the scheme's default.
    ///
    /// Errors: [`HandshakeErrorKind::InvalidHeader`] for CR/LF/NUL in any
    /// header value, an invalid or duplicate subprotocol, or an extra header
    /// that the handshake writes itself; [`HandshakeErrorKind::BadUrl`] for
    /// a hand-built [`WsUrl`] with an unusable host or path;
    /// [`HandshakeErrorKind::RandomUnavailable`] if the OS RNG fails.
    pub fn new(
        url: &WsUrl,
        config: &ClientConfig,
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        // RFC 6455 §4.1 item 7: "a randomly selected 16-byte value".
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).map_err(|e| {
            HandshakeError::new(
                HandshakeErrorKind::RandomUnavailable,
                format!("cannot generate Sec-WebSocket-Key: {e}"),
            )
        })?;
        Self::with_nonce(url, config, nonce)
    }

    fn with_nonce(
        url: &WsUrl,
        config: &ClientConfig,
        nonce: [u8; 16],
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        check_url(url)?;
        let invalid = |r: String| HandshakeError::new(HandshakeErrorKind::InvalidHeader, r);
        // RFC 6455 §4.1 item 10: each subprotocol is a non-empty token
        // (U+0021..U+007E minus separators) and they are all unique.
        for (i, p) in config.protocols.iter().enumerate() {
            if !http::is_token(p) {
                return Err(invalid(format!("subprotocol {p:?} is not a valid token")));
            }
            if config.protocols[..i].contains(p) {
                return Err(invalid(format!("subprotocol {p:?} is offered twice")));
            }
        }
        let extensions = config
            .extensions
            .as_deref()
            .map(|e| e.trim_matches(http::is_ows))
            .filter(|e| !e.is_empty());
        if let Some(e) = extensions {
            http::check_value("Sec-WebSocket-Extensions", e)?;
        }
        if let Some(origin) = &config.origin {
            http::check_value("Origin", origin)?;
        }
        for (name, value) in &config.headers {
            http::check_header(name, value)?;
            http::check_not_reserved(name, RESERVED_REQUEST_HEADERS)?;
        }

        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let mut out = Vec::with_capacity(256);
        // RFC 6455 §4.1 items 2-3: "GET <resource name> HTTP/1.1".
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(url.path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // RFC 6455 §4.1 item 4: Host, with the port unless it is the default.
        http::push_header(&mut out, "Host", &url.host_header());
        // RFC 6455 §4.1 items 5-7 and 9.
        http::push_header(&mut out, "Upgrade", "websocket");
        http::push_header(&mut out, "Connection", "Upgrade");
        http::push_header(&mut out, "Sec-WebSocket-Key", &key);
        http::push_header(&mut out, "Sec-WebSocket-Version", WEBSOCKET_VERSION);
        // RFC 6455 §4.1 item 8 (Origin), 10 (protocols), 11 (extensions).
        if let Some(origin) = &config.origin {
            http::push_header(&mut out, "Origin", origin);
        }
        if !config.protocols.is_empty() {
            http::push_header(
                &mut out,
                "Sec-WebSocket-Protocol",
                &config.protocols.join(", "),
            );
        }
        if let Some(e) = extensions {
            http::push_header(&mut out, "Sec-WebSocket-Extensions", e);
        }
        // RFC 6455 §4.1 item 12: other header fields (cookies, auth...).
        for (name, value) in &config.headers {
            http::push_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");

        let handshake = ClientHandshake {
            accept: accept_key(key.as_bytes()),
            key,
            protocols: config.protocols.clone(),
            extensions_offered: extensions.is_some(),
            max_head_size: config.max_head_size,
            max_headers: config.max_headers,
        };
        Ok((handshake, out))
    }

    /// The `Sec-WebSocket-Key` sent in the request.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` value the server must answer with.
    pub fn expected_accept(&self) -> &str {
        &self.accept
    }

    /// Parses and validates the server's response (RFC 6455 §4.1, client
    /// requirements 1-6).
    ///
    /// * `Ok(None)`: incomplete; call again with a longer buffer.
    /// * `Ok(Some((response, n)))`: the head is the first `n` bytes; bytes
    ///   after `n` are WebSocket frames.
    /// * `Err(e)` ([`HandshakeErrorKind::BadResponse`], or `HeadTooLarge`
    ///   past the configured limits): status not 101 (the reason names it,
    ///   e.g. "server answered 403 Forbidden"), missing/wrong `Upgrade` or
    ///   `Connection`, wrong or missing `Sec-WebSocket-Accept`, a subprotocol
    ///   or extensions that were not offered, or malformed HTTP.
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let result = self.parse_inner(buf);
        if let Err(e) = &result {
            tracing::debug!(reason = e.reason(), "WebSocket handshake response rejected");
        }
        result
    }

    fn parse_inner(&self, buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let too_large = || {
            HandshakeError::new(
                HandshakeErrorKind::HeadTooLarge,
                format!("response head is larger than {} bytes", self.max_head_size),
            )
        };
        let window = http::bounded(buf, self.max_head_size);
        // Each header line needs at least 3 bytes, see server::parse_request.
        let mut slots = vec![httparse::EMPTY_HEADER; self.max_headers.min(window.len() / 3 + 1)];
        let mut parsed = httparse::Response::new(&mut slots);
        let head_len = match parsed.parse(window) {
            Ok(Status::Complete(n)) if n <= self.max_head_size => n,
            Ok(Status::Complete(_)) => return Err(too_large()),
            Ok(Status::Partial) if window.len() > self.max_head_size => return Err(too_large()),
            Ok(Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HandshakeError::new(
                    HandshakeErrorKind::HeadTooLarge,
                    format!("response has more than {} header fields", self.max_headers),
                ))
            }
            Err(e) => return Err(bad(format!("malformed HTTP response: {e}"))),
        };
        let (Some(version), Some(status)) = (parsed.version, parsed.code) else {
            return Err(bad("malformed HTTP status line"));
        };

        // RFC 6455 §4.1 client requirement 1: "If the status code received
        // from the server is not 101, the client handles the response per
        // HTTP procedures" -- for us, a failed handshake naming the status.
        if status != 101 {
            let phrase = match parsed.reason {
                Some(r) if !r.trim().is_empty() => r.trim(),
                _ => super::error::reason_phrase(status),
            };
            return Err(bad(format!("server answered {status} {phrase}")));
        }
        if version != 1 {
            return Err(bad("101 response must be HTTP/1.1"));
        }
        let headers = http::own_headers(parsed.headers);

        // RFC 6455 §4.1 client requirement 2: Upgrade must be "websocket"
        // (ASCII case-insensitive).
        if http::values(&headers, "Upgrade").next().is_none() {
            return Err(bad("response lacks an Upgrade header"));
        }
        if !http::any_has_token(&headers, "Upgrade", "websocket") {
            return Err(bad("response Upgrade header is not \"websocket\""));
        }
        // RFC 6455 §4.1 client requirement 3: Connection must contain the
        // token "Upgrade" (ASCII case-insensitive).
        if !http::any_has_token(&headers, "Connection", "upgrade") {
            return Err(bad(
                "response Connection header does not contain \"Upgrade\"",
            ));
        }
        // RFC 6455 §4.1 client requirement 4: Sec-WebSocket-Accept must be
        // base64(SHA-1(key + GUID)), compared after trimming whitespace.
        match http::single(&headers, "Sec-WebSocket-Accept", false) {
            Single::Missing => return Err(bad("response lacks a Sec-WebSocket-Accept header")),
            Single::Many => {
                return Err(bad(
                    "response has more than one Sec-WebSocket-Accept header",
                ))
            }
            Single::One(a) if a != self.accept.as_bytes() => {
                return Err(bad("Sec-WebSocket-Accept does not match the key sent"))
            }
            Single::One(_) => {}
        }

        // RFC 6455 §4.1 client requirement 5: extensions not present in the
        // client's handshake fail the connection. Which ones were accepted
        // is checked by the extension layer against its own offer.
        let mut extensions = Vec::new();
        for value in http::values(&headers, "Sec-WebSocket-Extensions") {
            if value.is_empty() {
                continue;
            }
            if !self.extensions_offered {
                return Err(bad("server selected extensions but none were offered"));
            }
            let value = std::str::from_utf8(value)
                .map_err(|_| bad("Sec-WebSocket-Extensions is not valid UTF-8"))?;
            extensions.push(value.to_owned());
        }

        // RFC 6455 §4.1 client requirement 6: the subprotocol, if any, must
        // be one the client offered; only one may be selected (§4.2.2 5.5).
        // An empty value is treated as absent.
        let protocol = match http::single(&headers, "Sec-WebSocket-Protocol", true) {
            Single::Missing => None,
            Single::Many => {
                return Err(bad(
                    "response has more than one Sec-WebSocket-Protocol header",
                ))
            }
            Single::One(_) if self.protocols.is_empty() => {
                return Err(bad("server selected a subprotocol but none was offered"))
            }
            Single::One(p) => match self.protocols.iter().find(|o| o.as_bytes() == p) {
                Some(offered) => Some(offered.clone()),
                None if p.contains(&b',') => {
                    return Err(bad("server selected more than one subprotocol"))
                }
                None => return Err(bad("server selected a subprotocol that was not offered")),
            },
        };

        let response = Response {
            status,
            protocol,
            extensions,
            headers,
        };
        Ok(Some((response, head_len)))
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
