//! The WebSocket opening handshake (RFC 6455 §4), sans-IO.
//!
//! This module never touches a socket. It turns bytes into parsed values and
//! parsed values into bytes:
//!
//! * [`server::parse_request`] parses (and validates) a client's upgrade
//!   request from a buffer that may still be incomplete, and
//!   [`server::accept_response`] builds the `101 Switching Protocols` answer.
//!   A rejected request is a [`HandshakeError`] whose
//!   [`to_response`](HandshakeError::to_response) is the HTTP error answer.
//! * [`client::ClientHandshake::new`] builds the client's `GET` request for a
//!   [`WsUrl`] and [`client::ClientHandshake::parse_response`] validates the
//!   server's answer.
//!
//! Both parsers are resumable: `Ok(None)` means "feed me more bytes and call
//! again with the longer buffer". Once the head is complete they report how
//! many bytes it took; whatever follows already belongs to the WebSocket
//! stream.
//!
//! HTTP syntax is parsed with `httparse`; this module layers the WebSocket
//! rules on top, each one annotated with the RFC section it comes from.

pub mod client;
pub mod server;

mod error;
mod http;
mod request;
mod url;

pub use error::{HandshakeError, HandshakeErrorKind};
pub use http::header_has_token;
pub use url::{parse_ws_url, WsUrl};

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// The GUID appended to the client's key before hashing
/// (RFC 6455 §1.3, §4.2.2 item 5.4).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this implementation speaks (RFC 6455 §4.1
/// item 9: "The value of this header field MUST be 13").
pub const WEBSOCKET_VERSION: &str = "13";

/// Computes the `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
///
/// `key` is the key exactly as sent on the wire (the base64 text, not the
/// decoded bytes). RFC 6455 §4.2.2 item 5.4.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_rfc_example() {
        // RFC 6455 §1.3
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn token_lists() {
        assert!(header_has_token("keep-alive, Upgrade", "upgrade"));
        assert!(header_has_token("Upgrade", "upgrade"));
        assert!(header_has_token(" WebSocket ", "websocket"));
        assert!(header_has_token("a,\tb ,c", "b"));
        assert!(header_has_token("h2c,,websocket", "WEBSOCKET"));
        assert!(!header_has_token("keep-alive", "upgrade"));
        assert!(!header_has_token("upgrade-insecure", "upgrade"));
        assert!(!header_has_token("websocketx", "websocket"));
        assert!(!header_has_token("", "upgrade"));
        assert!(!header_has_token("a,,b", ""));
    }
}
