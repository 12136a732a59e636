//! [`Message`]: what the application sends and receives.

use crate::close::CloseFrame;
use crate::text::Utf8Bytes;
use bytes::Bytes;

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

/// A WebSocket message or control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A complete text message.
    Text(Utf8Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping. Received pings are answered automatically.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame; `None` when it carried no status code.
    Close(Option<CloseFrame>),
    /// A piece of a data message. Received only when
    /// `Config::stream_messages` is on; when sent, it becomes one frame of a
    /// fragmented message (`last` sets FIN). For text, a piece may end in the
    /// middle of a character; the whole message is still validated.
    Fragment {
        /// Text or binary; the same for every piece of one message.
        kind: DataKind,
        /// The bytes of this piece.
        data: Bytes,
        /// True for the final piece of the message.
        last: bool,
    },
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<Utf8Bytes>) -> Message {
        Message::Text(s.into())
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Message {
        Message::Binary(b.into())
    }

    /// A close frame with a code and a reason.
    pub fn close(code: crate::CloseCode, reason: impl Into<String>) -> Message {
        Message::Close(Some(CloseFrame { code, reason: reason.into() }))
    }

    /// True for text and binary messages and fragments.
    pub fn is_data(&self) -> bool {
        matches!(self, Message::Text(_) | Message::Binary(_) | Message::Fragment { .. })
    }

    /// The payload bytes (empty for a close).
    pub fn payload(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
            Message::Fragment { data, .. } => data,
            Message::Close(_) => &[],
        }
    }
}
