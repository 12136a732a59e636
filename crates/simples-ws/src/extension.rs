//! The extension hook in the frame pipeline (RFC 6455 §9).
//!
//! An extension negotiated in the opening handshake (for example
//! permessage-deflate, RFC 7692) gives a meaning to reserved bits and
//! transforms data payloads. The protocol state machine calls it:
//! - on receive, for every data frame of a message whose first frame carried
//!   one of the extension's RSV bits, in order, before UTF-8 validation and
//!   after unmasking;
//! - on send, once per whole data message, before framing; the RSV bits it
//!   returns go on the first frame only.
//!
//! Control frames never pass through an extension, and RSV bits on control
//! or continuation frames are always a protocol error.

use crate::message::DataKind;
use crate::proto::ProtocolError;
use bytes::Bytes;

/// A negotiated WebSocket extension.
pub trait Extension: Send + 'static {
    /// The RSV bits (mask of 0x70) this extension defines.
    fn rsv_bits(&self) -> u8;

    /// Decodes one received data frame of a message whose first frame
    /// carried `message_rsv`. `last` is true on the message's final frame.
    /// The decoded output may grow the message by at most `limit` bytes;
    /// past that, return [`ProtocolError::MessageTooBig`].
    fn decode(&mut self, message_rsv: u8, payload: Bytes, last: bool, limit: usize) -> Result<Bytes, ProtocolError>;

    /// Encodes an outgoing message payload; returns the RSV bits for its
    /// first frame and the bytes to frame.
    fn encode(&mut self, kind: DataKind, payload: Bytes) -> Result<(u8, Bytes), ProtocolError>;
}
