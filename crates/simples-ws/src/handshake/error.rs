//! The single error type of the handshake layer.
//!
//! A [`HandshakeError`] is a [`HandshakeErrorKind`] (what went wrong, and on
//! the server side which HTTP status to answer with) plus a human-readable
//! reason. On the server, [`HandshakeError::to_response`] renders the
//! complete HTTP error response to write back before closing the connection.
//!
//! Needing more bytes is *not* an error: the parsers return `Ok(None)`.

use std::borrow::Cow;
use std::fmt;

/// What kind of handshake failure occurred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeErrorKind {
    /// The client's request is malformed or is not a valid WebSocket
    /// upgrade (server answers `400 Bad Request`).
    BadRequest,
    /// The request method is not `GET` (server answers
    /// `405 Method Not Allowed` with `Allow: GET`). RFC 6455 §4.2.1 item 1.
    MethodNotAllowed,
    /// `Sec-WebSocket-Version` is missing or not `13` (server answers
    /// `426 Upgrade Required` with `Sec-WebSocket-Version: 13`).
    /// RFC 6455 §4.2.2 item 4.
    UpgradeRequired,
    /// The request head (or, on the client, the response head) exceeds the
    /// configured size or header-count limit (server answers
    /// `431 Request Header Fields Too Large`).
    HeadTooLarge,
    /// The application refused the handshake (see
    /// [`server::reject`](super::server::reject)); `status` is in `400..=599`.
    Rejected {
        /// The HTTP status the server answers with.
        status: u16,
    },
    /// Client side: the server's response is malformed, not `101`, has a
    /// wrong `Sec-WebSocket-Accept`, or selects a subprotocol/extension that
    /// was not offered. RFC 6455 §4.1 (client requirements).
    BadResponse,
    /// The `ws://` / `wss://` URL is invalid. RFC 6455 §3.
    BadUrl,
    /// A header name or value supplied by the application (extra headers,
    /// subprotocols, extensions, origin) cannot be sent: it contains CR/LF,
    /// is not a valid token, or clashes with a header the handshake owns.
    InvalidHeader,
    /// The operating system's random number generator failed while
    /// generating a `Sec-WebSocket-Key`.
    RandomUnavailable,
}

/// A failed opening handshake: a [`HandshakeErrorKind`] plus a
/// human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    kind: HandshakeErrorKind,
    reason: Cow<'static, str>,
}

impl HandshakeError {
    /// Creates an error of `kind` with a human-readable `reason`.
    ///
    /// A [`HandshakeErrorKind::Rejected`] status outside `400..=599` is
    /// replaced by `500`.
    pub fn new(kind: HandshakeErrorKind, reason: impl Into<Cow<'static, str>>) -> Self {
        let kind = match kind {
            HandshakeErrorKind::Rejected { status } if !(400..=599).contains(&status) => {
                HandshakeErrorKind::Rejected { status: 500 }
            }
            other => other,
        };
        HandshakeError {
            kind,
            reason: reason.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &HandshakeErrorKind {
        &self.kind
    }

    /// The human-readable reason (also the body of
    /// [`to_response`](Self::to_response)).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The HTTP status a server answers with: 400, 405, 426, 431, the
    /// application's status for [`HandshakeErrorKind::Rejected`], and 500 for
    /// the kinds that are not the peer's fault (or are client-side only).
    pub fn status(&self) -> u16 {
        match self.kind {
            HandshakeErrorKind::BadRequest => 400,
            HandshakeErrorKind::MethodNotAllowed => 405,
            HandshakeErrorKind::UpgradeRequired => 426,
            HandshakeErrorKind::HeadTooLarge => 431,
            HandshakeErrorKind::Rejected { status } => status,
            HandshakeErrorKind::BadResponse
            | HandshakeErrorKind::BadUrl
            | HandshakeErrorKind::InvalidHeader
            | HandshakeErrorKind::RandomUnavailable => 500,
        }
    }

    /// The headers the refusal's status requires: for 426,
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2 item 4) and `Upgrade:
    /// websocket` (RFC 7231 §6.5.15); for 405, `Allow: GET` (RFC 7231
    /// §6.5.5); none otherwise.
    ///
    /// ```
    /// use simples_ws::handshake::{HandshakeError, HandshakeErrorKind};
    ///
    /// let e = HandshakeError::new(HandshakeErrorKind::MethodNotAllowed, "use GET");
    /// assert_eq!(e.response_headers(), [("Allow", "GET")]);
    /// ```
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self.status() {
            426 => &[("Sec-WebSocket-Version", super::WEBSOCKET_VERSION), ("Upgrade", "websocket")],
            405 => &[("Allow", "GET")],
            _ => &[],
        }
    }

    /// The full HTTP/1.1 error response a server writes before closing:
    /// status line, `Content-Type: text/plain; charset=utf-8`,
    /// `Content-Length`, `Connection: close`, plus
    /// [`response_headers`](Self::response_headers); the body is the reason
    /// followed by `\n`.
    pub fn to_response(&self) -> Vec<u8> {
        let status = self.status();
        let body_len = self.reason.len() + 1;
        let mut out = Vec::with_capacity(160 + body_len);
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status} {}\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {body_len}\r\n\
                 Connection: close\r\n",
                reason_phrase(status)
            )
            .as_bytes(),
        );
        for (name, value) in self.response_headers() {
            // (written here, not with `http::push_header`: `http` returns
            // this module's error, and error pages are a cold path)
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.reason.as_bytes());
        out.push(b'\n');
        out
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            HandshakeErrorKind::BadRequest => "bad handshake request",
            HandshakeErrorKind::MethodNotAllowed => "handshake method not allowed",
            HandshakeErrorKind::UpgradeRequired => "unsupported WebSocket version",
            HandshakeErrorKind::HeadTooLarge => "handshake head too large",
            HandshakeErrorKind::Rejected { .. } => "handshake rejected",
            HandshakeErrorKind::BadResponse => "bad handshake response",
            HandshakeErrorKind::BadUrl => "bad WebSocket URL",
            HandshakeErrorKind::InvalidHeader => "invalid handshake header",
            HandshakeErrorKind::RandomUnavailable => "random number generator unavailable",
        };
        write!(f, "{what}: {}", self.reason)
    }
}

impl std::error::Error for HandshakeError {}

/// The canonical reason phrase of `status` (RFC 7231 §6.1, RFC 6585).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            4 => "Client Error",
            5 => "Server Error",
            _ => "Unknown",
        },
    }
}

#[cfg(test)]
impl HandshakeError {
    /// Test helper: the reason mentions `needle`.
    #[track_caller]
    pub(crate) fn assert_mentions(&self, needle: &str) {
        assert!(self.reason().contains(needle), "reason {:?} should mention {needle:?}", self.reason());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: &HandshakeError) -> String {
        String::from_utf8(e.to_response()).unwrap()
    }

    #[test]
    fn status_mapping() {
        let cases = [
            (HandshakeErrorKind::BadRequest, 400),
            (HandshakeErrorKind::MethodNotAllowed, 405),
            (HandshakeErrorKind::UpgradeRequired, 426),
            (HandshakeErrorKind::HeadTooLarge, 431),
            (HandshakeErrorKind::Rejected { status: 403 }, 403),
            (HandshakeErrorKind::InvalidHeader, 500),
        ];
        for (kind, status) in cases {
            assert_eq!(HandshakeError::new(kind, "x").status(), status);
        }
        let e = HandshakeError::new(HandshakeErrorKind::Rejected { status: 200 }, "x");
        assert_eq!(e.kind(), &HandshakeErrorKind::Rejected { status: 500 });
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn response_400() {
        let e = HandshakeError::new(HandshakeErrorKind::BadRequest, "missing Host header");
        assert_eq!(
            text(&e),
            "HTTP/1.1 400 Bad Request\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 20\r\n\
             Connection: close\r\n\
             \r\n\
             missing Host header\n"
        );
        assert_eq!(e.to_string(), "bad handshake request: missing Host header");
    }

    #[test]
    fn response_426_and_405_extra_headers() {
        let e = HandshakeError::new(HandshakeErrorKind::UpgradeRequired, "v");
        let t = text(&e);
        assert!(t.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(t.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(!t.contains("Allow:"));
        let e = HandshakeError::new(HandshakeErrorKind::MethodNotAllowed, "m");
        let t = text(&e);
        assert!(t.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(t.contains("\r\nAllow: GET\r\n"));
        assert!(!t.contains("Sec-WebSocket-Version"));
    }

    #[test]
    fn response_is_parseable_and_length_matches() {
        let e = HandshakeError::new(HandshakeErrorKind::Rejected { status: 403 }, "bad origin ü");
        let bytes = e.to_response();
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(&bytes).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        assert_eq!(resp.code, Some(403));
        assert_eq!(resp.reason, Some("Forbidden"));
        let len = resp
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .unwrap();
        assert_eq!(len, bytes.len() - n);
        assert_eq!(&bytes[n..], "bad origin ü\n".as_bytes());
    }
}
