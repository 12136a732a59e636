//! The send path: messages in, frames out (RFC 6455 §5.2-§5.6).

use super::output::COPY_THRESHOLD;
use super::{Protocol, ProtocolError, Role, State};
use crate::close::{CloseCode, CloseFrame};
use crate::extension::PreparedEncoding;
use crate::frame::{encode_header, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::message::{DataKind, Message};
use bytes::{BufMut, Bytes};

/// A frame encoded once, to be queued on many server connections without
/// copying (broadcast). Only unmasked (server) frames can be shared: a
/// client masks every frame with its own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedFrame {
    bytes: Bytes,
    /// Set when an extension encoded the payload (e.g. compressed).
    encoded: Option<Encoded>,
}

/// An extension-encoded frame's encoding and its plain message, sent
/// instead on connections that cannot take the encoded form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Encoded {
    encoding: PreparedEncoding,
    opcode: OpCode,
    payload: Bytes,
}

impl PreparedFrame {
    /// Encodes a whole message as one unmasked frame.
    pub fn new(message: &Message) -> Result<PreparedFrame, ProtocolError> {
        let (opcode, payload): (OpCode, &[u8]) = match message {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
            Message::Ping(b) => (OpCode::Ping, b),
            Message::Pong(b) => (OpCode::Pong, b),
            _ => return Err(ProtocolError::InvalidSend("only whole messages and pings can be prepared")),
        };
        if opcode.is_control() && payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::InvalidSend("control frame payload longer than 125 bytes"));
        }
        let mut buf = bytes::BytesMut::with_capacity(MAX_HEADER_LEN + payload.len());
        encode_header(&mut buf, true, 0, opcode, None, payload.len() as u64);
        buf.put_slice(payload);
        Ok(PreparedFrame { bytes: buf.freeze(), encoded: None })
    }

    /// Compresses a whole message once (permessage-deflate, RFC 7692) with
    /// a fresh context and a 15-bit window, as one frame with RSV1 set.
    /// `level` is zlib's, 0 to 9.
    ///
    /// [`Protocol::send_prepared`] sends the compressed frame on any server
    /// connection that negotiated permessage-deflate with a server window
    /// at least as large (here: 15 bits; see
    /// [`PreparedFrame::compressed_with_window`]); with context takeover,
    /// that connection's compression context restarts after it. On every
    /// other connection (no permessage-deflate, or a smaller window), it
    /// falls back to sending the message uncompressed, so one prepared
    /// frame serves a mixed audience.
    ///
    /// Pings and pongs are never compressed (RFC 7692 §6.1): they are
    /// prepared as by [`PreparedFrame::new`], as are messages that do not
    /// get smaller. Close and fragments are refused.
    #[cfg(feature = "deflate")]
    pub fn compressed(message: &Message, level: u32) -> Result<PreparedFrame, ProtocolError> {
        PreparedFrame::compressed_with_window(message, level, crate::deflate::MAX_WINDOW_BITS)
    }

    /// As [`PreparedFrame::compressed`], with an LZ77 window of
    /// `window_bits` (8..=15): usable on connections whose negotiated
    /// `server_max_window_bits` is at least that.
    #[cfg(feature = "deflate")]
    pub fn compressed_with_window(message: &Message, level: u32, window_bits: u8) -> Result<PreparedFrame, ProtocolError> {
        let (opcode, payload) = match message {
            Message::Text(t) => (OpCode::Text, t.as_bytes().clone()),
            Message::Binary(b) => (OpCode::Binary, b.clone()),
            _ => return PreparedFrame::new(message),
        };
        let window_bits = window_bits.clamp(crate::deflate::MIN_WINDOW_BITS, crate::deflate::MAX_WINDOW_BITS);
        let Some(data) = crate::deflate::compress_message(&payload, level, window_bits) else {
            return PreparedFrame::new(message);
        };
        let mut buf = bytes::BytesMut::with_capacity(MAX_HEADER_LEN + data.len());
        encode_header(&mut buf, true, crate::deflate::RSV1, opcode, None, data.len() as u64);
        buf.put_slice(&data);
        let encoding = PreparedEncoding::Deflate { window_bits };
        Ok(PreparedFrame { bytes: buf.freeze(), encoded: Some(Encoded { encoding, opcode, payload }) })
    }

    /// The encoded frame.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// How an extension encoded the payload (`None` for a plain frame).
    pub fn encoding(&self) -> Option<PreparedEncoding> {
        self.encoded.as_ref().map(|e| e.encoding)
    }
}

impl Protocol {
    /// Bytes of state the negotiated extension holds now (e.g.
    /// permessage-deflate's compression contexts), 0 without one.
    pub fn extension_memory(&self) -> usize {
        self.extension.as_ref().map_or(0, |e| e.memory())
    }

    /// Queues a message. Pings and pongs may be sent until our close frame
    /// is; `Message::Close` starts (or answers) the closing handshake.
    pub fn send(&mut self, message: Message) -> Result<(), ProtocolError> {
        match message {
            Message::Text(t) => self.send_data(DataKind::Text, t.into_bytes()),
            Message::Binary(b) => self.send_data(DataKind::Binary, b),
            Message::Ping(b) => self.send_control(OpCode::Ping, &b),
            Message::Pong(b) => self.send_control(OpCode::Pong, &b),
            Message::Close(frame) => match frame {
                Some(f) => self.close(f.code, &f.reason),
                None => self.close_without_code(),
            },
            Message::Fragment { kind, data, last } => self.send_fragment(kind, data, last),
        }
    }

    /// Queues a pre-encoded frame (server role only). A frame an extension
    /// encoded (e.g. [`PreparedFrame::compressed`]) goes out as it is only
    /// if this connection's extension accepts it
    /// ([`Extension::accept_prepared`](crate::Extension::accept_prepared));
    /// otherwise its message is sent unencoded, as one frame.
    #[inline]
    pub fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<(), ProtocolError> {
        if self.role != Role::Server {
            return Err(ProtocolError::InvalidSend("prepared frames are unmasked: server role only"));
        }
        self.check_can_send_data()?;
        if self.sending.is_some() {
            return Err(ProtocolError::InvalidSend("a fragmented message is being sent"));
        }
        if let Some(enc) = &frame.encoded {
            if !self.extension.as_mut().is_some_and(|e| e.accept_prepared(enc.encoding)) {
                self.send_unencoded(enc);
                return Ok(());
            }
        }
        let b = &frame.bytes;
        if b.len() < COPY_THRESHOLD {
            let tail = self.out.tail_mut();
            tail.put_slice(b);
            self.out.commit(b.len());
        } else {
            self.out.push_shared(b.clone());
        }
        Ok(())
    }

    /// A prepared frame's plain message, for a connection that cannot take
    /// its encoded form: out of the way of the per-frame path of a burst.
    #[cold]
    fn send_unencoded(&mut self, enc: &Encoded) {
        self.queue_frame(true, 0, enc.opcode, enc.payload.clone());
    }

    /// Starts the closing handshake with `code` and `reason` (RFC 6455
    /// §7.1.2). The reason is cut to 123 bytes on a character boundary.
    /// Codes that may not be sent (1005, 1006, 1015, ...) are refused.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ProtocolError> {
        if !code.is_valid_on_wire() {
            return Err(ProtocolError::InvalidSend("close code may not be sent on the wire"));
        }
        if self.close_sent {
            return Err(ProtocolError::SendAfterClose);
        }
        self.queue_close(&CloseFrame { code, reason: reason.to_owned() });
        self.after_close_sent();
        Ok(())
    }

    /// Starts the closing handshake with an empty close frame.
    pub fn close_without_code(&mut self) -> Result<(), ProtocolError> {
        if self.close_sent {
            return Err(ProtocolError::SendAfterClose);
        }
        self.queue_close_empty();
        self.after_close_sent();
        Ok(())
    }

    fn after_close_sent(&mut self) {
        self.close_sent = true;
        self.sending = None;
        if self.state == State::Open {
            self.state = State::Closing;
        }
    }

    fn check_can_send_data(&self) -> Result<(), ProtocolError> {
        // RFC 6455 §5.5.1: after sending a close frame, the endpoint MUST
        // NOT send any more data frames.
        if self.close_sent || self.state != State::Open {
            return Err(ProtocolError::SendAfterClose);
        }
        Ok(())
    }

    fn send_data(&mut self, kind: DataKind, payload: Bytes) -> Result<(), ProtocolError> {
        self.check_can_send_data()?;
        if self.sending.is_some() {
            return Err(ProtocolError::InvalidSend("a fragmented message is being sent"));
        }
        let (rsv, payload) = match self.extension.as_mut() {
            Some(ext) => ext.encode(kind, payload)?,
            None => (0, payload),
        };
        let opcode = if kind == DataKind::Text { OpCode::Text } else { OpCode::Binary };
        match self.config.max_send_frame_size {
            Some(max) if max > 0 && payload.len() > max => {
                // RFC 6455 §5.4: the first fragment carries the opcode (and
                // the extension's RSV bits), the rest are continuations.
                let mut rest = payload;
                let mut first = true;
                while !rest.is_empty() {
                    let piece = rest.split_to(rest.len().min(max));
                    let op = if first { opcode } else { OpCode::Continuation };
                    self.queue_frame(rest.is_empty(), if first { rsv } else { 0 }, op, piece);
                    first = false;
                }
            }
            _ => self.queue_frame(true, rsv, opcode, payload),
        }
        Ok(())
    }

    fn send_fragment(&mut self, kind: DataKind, data: Bytes, last: bool) -> Result<(), ProtocolError> {
        self.check_can_send_data()?;
        let opcode = match self.sending {
            None => {
                if kind == DataKind::Text { OpCode::Text } else { OpCode::Binary }
            }
            Some(k) if k == kind => OpCode::Continuation,
            Some(_) => return Err(ProtocolError::InvalidSend("fragment kind differs from the message in progress")),
        };
        self.sending = if last { None } else { Some(kind) };
        self.queue_frame(last, 0, opcode, data);
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), ProtocolError> {
        if self.close_sent {
            return Err(ProtocolError::SendAfterClose);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::InvalidSend("control frame payload longer than 125 bytes"));
        }
        self.queue_control(opcode, payload);
        Ok(())
    }

    /// Queues a control frame (may interleave with fragments, §5.4).
    pub(super) fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        debug_assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        self.queue_frame(true, 0, opcode, Bytes::copy_from_slice(payload));
    }

    pub(super) fn queue_close(&mut self, frame: &CloseFrame) {
        self.queue_frame(true, 0, OpCode::Close, frame.encode());
    }

    pub(super) fn queue_close_empty(&mut self) {
        self.queue_frame(true, 0, OpCode::Close, Bytes::new());
    }

    /// Encodes one frame into the output: unmasked by a server, masked with
    /// a fresh key from a CSPRNG by a client (RFC 6455 §5.3).
    fn queue_frame(&mut self, fin: bool, rsv: u8, opcode: OpCode, payload: Bytes) {
        let len = payload.len();
        match self.role {
            Role::Server => {
                let tail = self.out.tail_mut();
                let before = tail.len();
                if len < COPY_THRESHOLD {
                    tail.reserve(MAX_HEADER_LEN + len);
                    encode_header(tail, fin, rsv, opcode, None, len as u64);
                    tail.put_slice(&payload);
                    let added = tail.len() - before;
                    self.out.commit(added);
                } else {
                    encode_header(tail, fin, rsv, opcode, None, len as u64);
                    let added = tail.len() - before;
                    self.out.commit(added);
                    self.out.push_shared(payload);
                }
            }
            Role::Client => {
                let key: [u8; 4] = rand::random();
                let tail = self.out.tail_mut();
                let before = tail.len();
                tail.reserve(MAX_HEADER_LEN + len);
                encode_header(tail, fin, rsv, opcode, Some(key), len as u64);
                let start = tail.len();
                tail.put_slice(&payload);
                apply_mask(&mut tail[start..], key, 0);
                let added = tail.len() - before;
                self.out.commit(added);
            }
        }
    }
}
