//! The protocol layer's one error type.

use crate::close::{ClosePayloadError, CloseCode};
use std::fmt;

/// Everything that can go wrong in the WebSocket protocol layer.
///
/// Errors caused by the peer carry the close code that the connection was
/// failed with ([`ProtocolError::close_code`]); the state machine has already
/// queued that close frame when it returns the error (RFC 6455 §7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reserved opcode (RFC 6455 §5.2). Close 1002.
    UnknownOpcode(u8),
    /// A control frame without FIN (§5.5). Close 1002.
    FragmentedControlFrame,
    /// A control frame longer than 125 bytes (§5.5). Close 1002.
    ControlFrameTooLong,
    /// A length not in its minimal encoding (§5.2). Close 1002.
    NonMinimalLength,
    /// A 64-bit length with its most significant bit set (§5.2). Close 1002.
    LengthOverflow,
    /// RSV bits set that no negotiated extension defines (§5.2). Close 1002.
    ReservedBits(u8),
    /// A client frame that is not masked (§5.1). Close 1002.
    UnmaskedFrame,
    /// A server frame that is masked (§5.1). Close 1002.
    MaskedFrame,
    /// A continuation frame with no message to continue (§5.4). Close 1002.
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is open (§5.4). Close 1002.
    ExpectedContinuation,
    /// A frame larger than the configured limit. Close 1009.
    FrameTooBig {
        /// The frame's declared length.
        size: u64,
        /// `Config::max_frame_size`.
        max: usize,
    },
    /// A message larger than the configured limit. Close 1009.
    MessageTooBig {
        /// Bytes the message would have reached.
        size: u64,
        /// `Config::max_message_size`.
        max: usize,
    },
    /// Text that is not UTF-8 (§8.1). Close 1007.
    InvalidUtf8,
    /// A malformed close frame body (§5.5.1, §7.4). Close 1002, or 1007
    /// for a reason that is not UTF-8.
    InvalidClose(ClosePayloadError),
    /// An extension rejected a frame; it names the close code to send.
    Extension {
        /// What went wrong.
        reason: String,
        /// The close code to fail the connection with.
        code: CloseCode,
    },
    /// The peer sent more control frames (pings and pongs) in one second
    /// than `Config::max_control_frames_per_second`. Close 1008.
    ControlFrameFlood {
        /// `Config::max_control_frames_per_second`.
        max: u32,
    },
    /// The peer closed the TCP connection without a closing handshake
    /// (abnormal closure, 1006: nothing is sent).
    ConnectionReset,
    /// The peer stayed silent for `Config::idle_timeout`; a close 1001 was
    /// sent and the peer did not answer it in time either.
    IdleTimeout,
    /// The peer did not answer our close frame within
    /// `Config::close_timeout` (abnormal closure: nothing more is sent).
    CloseTimeout,
    /// The application tried to send after the closing handshake started,
    /// or a message that the protocol does not allow. Nothing is sent.
    SendAfterClose,
    /// The application misused the sending API (for example a text
    /// fragment without a message in progress). Nothing is sent.
    InvalidSend(&'static str),
}

impl ProtocolError {
    /// The close code this error fails the connection with, if a close
    /// frame is sent for it.
    pub fn close_code(&self) -> Option<CloseCode> {
        use ProtocolError::*;
        Some(match self {
            UnknownOpcode(_) | FragmentedControlFrame | ControlFrameTooLong | NonMinimalLength | LengthOverflow
            | ReservedBits(_) | UnmaskedFrame | MaskedFrame | UnexpectedContinuation | ExpectedContinuation => {
                CloseCode::PROTOCOL_ERROR
            }
            FrameTooBig { .. } | MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            InvalidUtf8 | InvalidClose(ClosePayloadError::InvalidUtf8) => CloseCode::INVALID_PAYLOAD,
            InvalidClose(_) => CloseCode::PROTOCOL_ERROR,
            Extension { code, .. } => *code,
            ControlFrameFlood { .. } => CloseCode::POLICY_VIOLATION,
            IdleTimeout => CloseCode::GOING_AWAY,
            ConnectionReset | CloseTimeout | SendAfterClose | InvalidSend(_) => return None,
        })
    }

    /// True for errors caused by what the peer sent (as opposed to timeouts
    /// and misuse of the API).
    pub fn is_peer_violation(&self) -> bool {
        !matches!(
            self,
            ProtocolError::ConnectionReset
                | ProtocolError::IdleTimeout
                | ProtocolError::CloseTimeout
                | ProtocolError::SendAfterClose
                | ProtocolError::InvalidSend(_)
        )
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        match self {
            UnknownOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            FragmentedControlFrame => f.write_str("fragmented control frame"),
            ControlFrameTooLong => f.write_str("control frame payload longer than 125 bytes"),
            NonMinimalLength => f.write_str("payload length not minimally encoded"),
            LengthOverflow => f.write_str("64-bit payload length with the most significant bit set"),
            ReservedBits(bits) => write!(f, "reserved bits {bits:#x} set without a negotiated extension"),
            UnmaskedFrame => f.write_str("client frame is not masked"),
            MaskedFrame => f.write_str("server frame is masked"),
            UnexpectedContinuation => f.write_str("continuation frame without a message in progress"),
            ExpectedContinuation => f.write_str("new data frame while a fragmented message is in progress"),
            FrameTooBig { size, max } => write!(f, "frame of {size} bytes exceeds the limit of {max}"),
            MessageTooBig { size, max } => write!(f, "message of {size} bytes exceeds the limit of {max}"),
            InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            InvalidClose(ClosePayloadError::Truncated) => f.write_str("close frame with a one-byte payload"),
            InvalidClose(ClosePayloadError::InvalidCode(c)) => write!(f, "close code {c} is not allowed on the wire"),
            InvalidClose(ClosePayloadError::InvalidUtf8) => f.write_str("close reason is not valid UTF-8"),
            Extension { reason, .. } => write!(f, "extension error: {reason}"),
            ControlFrameFlood { max } => write!(f, "more than {max} control frames in one second"),
            ConnectionReset => f.write_str("connection closed without a closing handshake"),
            IdleTimeout => f.write_str("idle timeout"),
            CloseTimeout => f.write_str("peer did not complete the closing handshake in time"),
            SendAfterClose => f.write_str("cannot send after the closing handshake started"),
            InvalidSend(why) => write!(f, "invalid send: {why}"),
        }
    }
}

impl std::error::Error for ProtocolError {}
