//! The frame layer (RFC 6455 §5.2): header parsing and encoding.
//!
//! Parsing is resumable in the httparse manner: [`parse_header`] looks at the
//! bytes received so far and answers `Ok(None)` when it needs more, or the
//! header and how many bytes it took. It checks everything a header alone can
//! tell (opcode, control frame rules, length encoding); rules that depend on
//! the connection (masking direction, reserved bits, continuation, size
//! limits) are applied by the protocol state machine in [`crate::proto`],
//! still before any payload byte is buffered for the frame.

mod header;

pub use header::{encode_header, parse_header, FrameHeader, MAX_HEADER_LEN};

/// A frame opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode; `None` for the reserved values
    /// (0x3-0x7 and 0xB-0xF), which a receiver must reject (RFC 6455 §5.2).
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames have opcodes with the high bit set (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// Reserved bit RSV1 in the first header byte (used by permessage-deflate).
pub const RSV1: u8 = 0x40;
/// Reserved bit RSV2.
pub const RSV2: u8 = 0x20;
/// Reserved bit RSV3.
pub const RSV3: u8 = 0x10;
/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
