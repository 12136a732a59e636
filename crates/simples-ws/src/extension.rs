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

    /// Decodes the next received payload bytes of a message whose first
    /// frame carried `message_rsv`: one whole data frame, or with
    /// `Config::stream_messages` a piece of one as it arrives (so decoding
    /// must be streaming). `last` is true on the message's final bytes.
    /// The decoded output may grow the message by at most `limit` bytes;
    /// past that, return [`ProtocolError::MessageTooBig`], or stop decoding
    /// and return more than `limit` bytes (`limit + 1` suffice): the
    /// protocol then fails the message with `MessageTooBig` and its totals.
    fn decode(&mut self, message_rsv: u8, payload: Bytes, last: bool, limit: usize) -> Result<Bytes, ProtocolError>;

    /// Encodes an outgoing message payload; returns the RSV bits for its
    /// first frame and the bytes to frame.
    fn encode(&mut self, kind: DataKind, payload: Bytes) -> Result<(u8, Bytes), ProtocolError>;

    /// Bytes of state the extension holds right now (e.g. compression
    /// contexts), for memory accounting. Default: 0.
    fn memory(&self) -> usize {
        0
    }

    /// Whether a message encoded elsewhere (a
    /// [`PreparedFrame`](crate::PreparedFrame) with this `encoding`) may be
    /// sent on this connection as it is. Returning `true` also tells the
    /// extension that such a message bypassed [`Extension::encode`] (e.g.
    /// permessage-deflate restarts its compression context). Default:
    /// `false` (the protocol then sends the message unencoded).
    fn accept_prepared(&mut self, encoding: PreparedEncoding) -> bool {
        let _ = encoding;
        false
    }
}

/// How the payload of a [`PreparedFrame`](crate::PreparedFrame) was
/// encoded by an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreparedEncoding {
    /// permessage-deflate (RFC 7692) with a fresh context and an LZ77
    /// window of `window_bits` (base-2 logarithm); RSV1 is set.
    Deflate {
        /// The window the payload was compressed with.
        window_bits: u8,
    },
}
