//! The one rule that decides whether a request is a valid WebSocket
//! opening handshake (RFC 6455 §4.2.1), over any parsed request head.
//!
//! [`Offer::from_head`] is used by every server in the crate and the
//! framework: the raw request parser of the tokio driver and the event loop
//! ([`parse_request`](super::server::parse_request)), the `http`-typed
//! decision ([`ServerPolicy::decide`](super::ServerPolicy::decide)) that
//! hyper and axum applications use, and the `simples` framework's hosts.

use std::borrow::Cow;

use base64::Engine as _;

use super::error::{HandshakeError, HandshakeErrorKind};
use super::http::{is_ows, trim_ows};
use super::{header_has_token, WEBSOCKET_VERSION};

/// What a server reads from a request head to decide on an upgrade: the
/// method, the HTTP version and the header fields.
///
/// Implemented for the crate's own parsed [`Request`](super::server::Request)
/// and, with the `http` feature (on by default), for
/// `http::request::Parts`, `http::Request<B>` and
/// [`HttpHead`](super::HttpHead).
///
/// ```
/// use simples_ws::handshake::{Offer, RequestHead, NonUpgrade};
///
/// /// A request head kept as plain strings.
/// struct Head(Vec<(&'static str, &'static str)>);
///
/// impl RequestHead for Head {
///     fn method(&self) -> &str { "GET" }
///     fn is_http11(&self) -> bool { true }
///     fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
///         self.0.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_bytes())
///     }
/// }
///
/// let head = Head(vec![
///     ("Host", "example.com"),
///     ("Upgrade", "websocket"),
///     ("Connection", "Upgrade"),
///     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
///     ("Sec-WebSocket-Version", "13"),
/// ]);
/// let offer = Offer::from_head(&head, NonUpgrade::BadRequest).unwrap();
/// assert_eq!(offer.key(), "dGhlIHNhbXBsZSBub25jZQ==");
/// ```
pub trait RequestHead {
    /// The request method, e.g. `GET`.
    fn method(&self) -> &str;
    /// Whether the request is HTTP/1.1: the only version an upgrade can be
    /// made on (RFC 6455 §4.2.1 item 1; HTTP/2 has no `Upgrade`, RFC 9113
    /// §8.6).
    fn is_http11(&self) -> bool;
    /// Every value of header `name` (ASCII case-insensitive), in order, as
    /// sent (surrounding whitespace is trimmed by the rule).
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

/// The answer to a request that is no upgrade at all: no `Upgrade:
/// websocket` or no `Connection: upgrade` (a plain `GET`).
///
/// ```
/// # #[cfg(feature = "http")] {
/// use simples_ws::handshake::{NonUpgrade, Offer};
///
/// let plain = http::Request::get("/ws").header("Host", "example.com").body(()).unwrap();
/// assert_eq!(Offer::from_head(&plain, NonUpgrade::BadRequest).unwrap_err().status(), 400);
/// assert_eq!(Offer::from_head(&plain, NonUpgrade::UpgradeRequired).unwrap_err().status(), 426);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonUpgrade {
    /// `400 Bad Request`: the request is malformed for a server that only
    /// speaks WebSocket (the tokio driver and the event loop).
    #[default]
    BadRequest,
    /// `426 Upgrade Required` with `Upgrade: websocket` and
    /// `Sec-WebSocket-Version: 13` (RFC 7231 §6.5.15): the resource exists
    /// but is served only over WebSocket (a route of a web application:
    /// axum, the `simples` framework).
    UpgradeRequired,
}

/// A validated client handshake: the key and what the client offers.
///
/// Built by [`Offer::from_head`], which applies every check of RFC 6455
/// §4.2.1; negotiated by [`ServerPolicy::negotiate`](super::ServerPolicy::negotiate).
///
/// ```
/// # #[cfg(feature = "http")] {
/// use simples_ws::handshake::{NonUpgrade, Offer};
///
/// let req = http::Request::get("/chat")
///     .header("Host", "example.com")
///     .header("Upgrade", "websocket")
///     .header("Connection", "keep-alive, Upgrade")
///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("Sec-WebSocket-Version", "13")
///     .header("Sec-WebSocket-Protocol", "chat.v2, chat.v1")
///     .body(())
///     .unwrap();
/// let offer = Offer::from_head(&req, NonUpgrade::BadRequest).unwrap();
/// assert_eq!(offer.protocols(), ["chat.v2", "chat.v1"]);
///
/// let plain = http::Request::get("/chat").header("Host", "example.com").body(()).unwrap();
/// let refused = Offer::from_head(&plain, NonUpgrade::UpgradeRequired).unwrap_err();
/// assert_eq!(refused.status(), 426);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
}

fn bad(reason: impl Into<Cow<'static, str>>) -> HandshakeError {
    HandshakeError::new(HandshakeErrorKind::BadRequest, reason)
}

/// The values of header `name`, trimmed.
fn values<'a, H: RequestHead + ?Sized>(head: &'a H, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    head.header_values(name).map(trim_ows)
}

/// The UTF-8 values of header `name`, trimmed; others are skipped.
fn str_values<'a, H: RequestHead + ?Sized>(head: &'a H, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    values(head, name).filter_map(|v| std::str::from_utf8(v).ok())
}

/// The value of a header that must appear exactly once: `Ok(None)` when
/// missing, `Err(())` when repeated.
fn single<'a, H: RequestHead + ?Sized>(head: &'a H, name: &'a str) -> Result<Option<&'a [u8]>, ()> {
    let mut found = values(head, name);
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(()),
    }
}

/// The subprotocols of `Sec-WebSocket-Protocol` values, in order: each
/// comma-separated token, trimmed (RFC 6455 §4.2.1 item 8).
pub(crate) fn protocol_tokens<'a>(values: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    values.flat_map(|v| v.split(',')).map(|p| p.trim_matches(is_ows)).filter(|p| !p.is_empty())
}

impl Offer {
    /// Checks a request head against RFC 6455 §4.2.1 and returns what the
    /// client offers, or the refusal to answer with:
    ///
    /// - `405` (with `Allow: GET`) when the method is not `GET`;
    /// - `400` for HTTP/1.0 (or HTTP/2), a missing, repeated or empty
    ///   `Host`, a missing, repeated or malformed `Sec-WebSocket-Key`, or a
    ///   body;
    /// - for a request without `Upgrade: websocket` or `Connection:
    ///   upgrade`: `400`, or `426` as `non_upgrade` says;
    /// - `426` (with `Sec-WebSocket-Version: 13`) when
    ///   `Sec-WebSocket-Version` is missing, repeated or not `13`.
    ///
    /// Every refusal is the client's error (4xx) and carries a reason.
    pub fn from_head<H: RequestHead + ?Sized>(head: &H, non_upgrade: NonUpgrade) -> Result<Offer, HandshakeError> {
        // RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
        if head.method() != "GET" {
            return Err(HandshakeError::new(
                HandshakeErrorKind::MethodNotAllowed,
                "the WebSocket handshake must use the GET method",
            ));
        }
        if !head.is_http11() {
            return Err(bad("the WebSocket handshake requires HTTP/1.1"));
        }

        // RFC 6455 §4.2.1 item 2: "A |Host| header field containing the
        // server's authority." (RFC 7230 §5.4: exactly one, else 400.)
        match single(head, "Host") {
            Ok(None) => return Err(bad("missing Host header")),
            Err(()) => return Err(bad("more than one Host header")),
            Ok(Some(host)) if host.is_empty() || std::str::from_utf8(host).is_err() => {
                return Err(bad("empty or non-UTF-8 Host header"))
            }
            Ok(Some(_)) => {}
        }

        let not_upgrade = |reason: &'static str| match non_upgrade {
            NonUpgrade::BadRequest => bad(reason),
            NonUpgrade::UpgradeRequired => HandshakeError::new(HandshakeErrorKind::UpgradeRequired, reason),
        };
        let has_token = |name, token| str_values(head, name).any(|v| header_has_token(v, token));
        // RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the
        // value "websocket", treated as an ASCII case-insensitive value."
        if values(head, "Upgrade").next().is_none() {
            return Err(not_upgrade("missing Upgrade header: not a WebSocket handshake"));
        }
        if !has_token("Upgrade", "websocket") {
            return Err(not_upgrade("Upgrade header does not contain \"websocket\""));
        }
        // RFC 6455 §4.2.1 item 4: "A |Connection| header field that
        // includes the token "Upgrade", treated as an ASCII case-insensitive
        // value."
        if !has_token("Connection", "upgrade") {
            return Err(not_upgrade("Connection header does not contain \"Upgrade\""));
        }

        // RFC 6455 §4.2.1 item 6: "A |Sec-WebSocket-Version| header field,
        // with a value of 13." RFC 6455 §4.2.2 item 4: otherwise answer with
        // an error such as 426 and the version(s) we understand.
        let version_error = |reason: &'static str| HandshakeError::new(HandshakeErrorKind::UpgradeRequired, reason);
        match single(head, "Sec-WebSocket-Version") {
            Ok(None) => return Err(version_error("missing Sec-WebSocket-Version header")),
            Err(()) => return Err(version_error("more than one Sec-WebSocket-Version header")),
            Ok(Some(v)) if v != WEBSOCKET_VERSION.as_bytes() => {
                return Err(version_error("unsupported Sec-WebSocket-Version (only 13 is supported)"))
            }
            Ok(Some(_)) => {}
        }

        // RFC 6455 §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a
        // base64-encoded value that, when decoded, is 16 bytes in length."
        // RFC 6455 §11.3.1: it MUST NOT appear more than once in a request.
        let key = match single(head, "Sec-WebSocket-Key") {
            Ok(None) => return Err(bad("missing Sec-WebSocket-Key header")),
            Err(()) => return Err(bad("more than one Sec-WebSocket-Key header")),
            Ok(Some(k)) => k,
        };
        let decoded_len = base64::engine::general_purpose::STANDARD.decode(key).map(|d| d.len());
        // 16 bytes encode to exactly 24 characters with "==" padding.
        if key.len() != 24 || decoded_len != Ok(16) {
            return Err(bad("Sec-WebSocket-Key is not the base64 encoding of 16 bytes"));
        }
        // Valid base64 is ASCII, so this conversion is lossless.
        let key = String::from_utf8_lossy(key).into_owned();

        // RFC 6455 §4.1 item 1 / RFC 7230 §3.3: the handshake is a GET
        // without a body; bytes after the head are WebSocket frames.
        if values(head, "Transfer-Encoding").next().is_some() {
            return Err(bad("the handshake request must not have a body (Transfer-Encoding)"));
        }
        if values(head, "Content-Length").any(|v| v != b"0") {
            return Err(bad("the handshake request must not have a body (Content-Length)"));
        }

        Ok(Offer {
            key,
            protocols: protocol_tokens(str_values(head, "Sec-WebSocket-Protocol")).map(str::to_owned).collect(),
            // RFC 6455 §4.2.1 item 9: interpreting the offers is up to the
            // extension layer; empty values are skipped.
            extensions: str_values(head, "Sec-WebSocket-Extensions")
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The client's `Sec-WebSocket-Key`, exactly as sent (RFC 6455 §4.2.1
    /// item 5).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::{NonUpgrade, Offer};
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let offer = Offer::from_head(&req, NonUpgrade::BadRequest).unwrap();
    /// assert_eq!(offer.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The subprotocols the client offers, in its order of preference
    /// (RFC 6455 §4.2.1 item 8).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::{NonUpgrade, Offer};
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Protocol", "mqtt")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let offer = Offer::from_head(&req, NonUpgrade::BadRequest).unwrap();
    /// assert_eq!(offer.protocols(), ["mqtt"]);
    /// # }
    /// ```
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The raw `Sec-WebSocket-Extensions` values, in order (RFC 6455
    /// §4.2.1 item 9).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// # use simples_ws::handshake::{NonUpgrade, Offer};
    /// # let req = http::Request::get("/").header("Host", "h").header("Upgrade", "websocket")
    /// #     .header("Connection", "Upgrade").header("Sec-WebSocket-Version", "13")
    /// #     .header("Sec-WebSocket-Extensions", "permessage-deflate")
    /// #     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").body(()).unwrap();
    /// let offer = Offer::from_head(&req, NonUpgrade::BadRequest).unwrap();
    /// assert_eq!(offer.extensions(), ["permessage-deflate"]);
    /// # }
    /// ```
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}
