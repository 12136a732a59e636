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
//! * [`ServerPolicy::decide`] is the same decision on any parsed head
//!   ([`RequestHead`]: `http::Request`, `http::request::Parts`, ...), for
//!   servers that parse HTTP themselves (hyper, axum): it validates
//!   ([`Offer::from_head`], the one RFC 6455 §4.2.1 rule every server of
//!   the crate applies), negotiates the subprotocol and permessage-deflate,
//!   and builds the `101` (`Decision::response`) or the refusal
//!   (`HandshakeError::to_http_response`).
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

mod accept;
mod decision;
mod error;
mod http;
#[cfg(feature = "http")]
mod http_types;
mod key;
mod offer;
mod request;
mod url;

pub use accept::Accept;
pub use decision::{Decision, Negotiated, ServerPolicy};
pub use error::{HandshakeError, HandshakeErrorKind};
#[cfg(feature = "http")]
pub use http_types::HttpHead;
pub use offer::{NonUpgrade, Offer, RequestHead};
pub use http::header_has_token;
pub use key::{accept_key, WEBSOCKET_GUID, WEBSOCKET_VERSION};
pub use url::{parse_ws_url, WsUrl};

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
