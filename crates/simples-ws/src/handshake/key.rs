//! The handshake's constants and the `Sec-WebSocket-Accept` computation (a
//! leaf: every other handshake module may use it).

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
