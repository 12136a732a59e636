//! The receive path: bytes in, messages out.

use super::{Incoming, Protocol, ProtocolError, Reading, Role, State};
use crate::close::CloseFrame;
use crate::frame::{parse_header, FrameHeader, OpCode};
use crate::mask::apply_mask;
use crate::message::{DataKind, Message};
use crate::text::Utf8Bytes;
use crate::utf8::Utf8Validator;
use bytes::{Bytes, BytesMut};

/// Smallest read the driver is asked to make room for.
const MIN_READ: usize = 4096;
/// Largest single reservation for a big frame's payload.
const MAX_READ_RESERVE: usize = 1 << 20;
/// Output backlog above which pongs are not queued: a peer that sends
/// pings but never reads must not grow our memory. RFC 6455 §5.5.3 lets
/// an endpoint answer only the most recent ping, which is kept and
/// answered once the backlog drains.
pub(crate) const PONG_BACKLOG: usize = 64 * 1024;

impl Protocol {
    /// The receive buffer, with room for at least one more read: THE way
    /// in for input. A driver reads the transport straight into it (no
    /// intermediate copy), then reports the read with
    /// [`Protocol::notify_received`].
    ///
    /// The room reserved grows with the frame being received (up to 1 MiB
    /// at a time), so large frames arrive in few reads: the frame's
    /// remaining bytes and 4 KiB more, so that the read that ends the frame
    /// comes back short when nothing follows it (a driver's sign that the
    /// socket is empty). Once the room holds that, it is not grown again:
    /// growing copies the frame's buffered bytes.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.read_buf_from(|_| None)
    }

    /// As [`Protocol::read_buf`], but when the buffer must grow, it grows
    /// into `spare(capacity)` if that gives an empty buffer of at least
    /// `capacity` bytes (one [`Protocol::take_read_buffer`] took, from any
    /// connection), the bytes buffered so far copied into it, instead of
    /// into a new allocation. For drivers that keep the buffers of large
    /// frames for the next ones.
    pub fn read_buf_from(&mut self, spare: impl FnOnce(usize) -> Option<BytesMut>) -> &mut BytesMut {
        let room = self.read.capacity() - self.read.len();
        let want = match self.reading {
            Reading::Payload { hdr, done, .. } => {
                let missing = hdr.len as usize - done;
                let missing = missing.saturating_sub(self.read.len());
                if missing > 0 && room > missing {
                    return &mut self.read;
                }
                (missing + MIN_READ).min(MAX_READ_RESERVE)
            }
            Reading::Header => MIN_READ,
        };
        if room < want / 2 || room == 0 {
            let capacity = self.read.len() + want;
            match spare(capacity).filter(|b| b.is_empty() && b.capacity() >= capacity) {
                Some(mut buf) => {
                    buf.extend_from_slice(&self.read);
                    self.read = buf;
                }
                None => self.read.reserve(want),
            }
        }
        &mut self.read
    }

    /// Takes the receive buffer, for a driver to hand to a later
    /// [`Protocol::read_buf_from`] (of this connection or another), when
    /// it is worth keeping: nothing buffered, no partial frame, no message
    /// handed out still sharing it, and at least `min` bytes. Its
    /// capacity is then its whole allocation (a driver can bound what it
    /// keeps by it), and the protocol holds none (as after
    /// [`Protocol::shrink_buffers`]).
    pub fn take_read_buffer(&mut self, min: usize) -> Option<BytesMut> {
        if !self.is_between_frames() {
            return None;
        }
        // Between frames the buffer is a view at the end of its allocation,
        // past the frames handed out, and its capacity only that view's
        // room. Asking for one byte more than the room moves it to the
        // allocation's start, whole, when nothing shares the allocation any
        // more (and fails otherwise, or when it starts there already: then
        // it is freed, as before).
        let room = self.read.capacity();
        if !self.read.try_reclaim(room + 1) || self.read.capacity() < min {
            return None;
        }
        Some(std::mem::take(&mut self.read))
    }

    /// Reports one read of the transport: `n` bytes were appended to
    /// [`Protocol::read_buf`], or, with `n == 0`, the transport's read side
    /// reached its end (as `read(2)` reports it). Then call
    /// [`Protocol::poll_message`].
    pub fn notify_received(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
            return;
        }
        if self.state == State::Closed || self.close_received {
            // RFC 6455 §5.5.1: nothing after a close frame is data.
            self.read.clear();
            return;
        }
        // Activity for the idle timer (stamped at the next clock reading).
        self.received = true;
    }

    /// Copies bytes read elsewhere in, as [`Protocol::read_buf`] and
    /// [`Protocol::notify_received`] would (empty `data` is no read, not the
    /// end of stream). For drivers that read into a buffer shared by many
    /// connections while [`Protocol::is_between_frames`], and for tests.
    pub fn receive(&mut self, data: &[u8]) {
        if data.is_empty() || self.state == State::Closed || self.close_received {
            return;
        }
        // Exactly the bytes' room: an idle connection keeps a small buffer.
        self.read.extend_from_slice(data);
        self.notify_received(data.len());
    }

    /// True when no partial frame is buffered, so the next bytes start a
    /// new frame: a driver may then read into a buffer shared by many
    /// connections and pass the bytes to [`Protocol::receive`], so idle
    /// connections hold no receive buffer of their own; inside a frame,
    /// [`Protocol::read_buf`] is sized for the frame and saves the copy.
    pub fn is_between_frames(&self) -> bool {
        self.read.is_empty() && matches!(self.reading, Reading::Header)
    }

    /// The next complete message or control frame, `Ok(None)` when more
    /// bytes are needed (or the connection is closed).
    ///
    /// An `Err` fails the connection: the close frame with the error's code
    /// is already queued in [`Protocol::output`], and later calls return
    /// `Ok(None)`.
    pub fn poll_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if let Some(rare) = self.timers.extra_if_made() {
            if let Some(err) = rare.pending_error.take() {
                return Err(err);
            }
            if self.out.len() <= PONG_BACKLOG && !self.close_sent {
                if let Some(payload) = rare.deferred_pong.take() {
                    self.queue_control(OpCode::Pong, &payload);
                }
            }
        }
        loop {
            if self.state == State::Closed || self.close_received {
                // RFC 6455 §5.5.1: nothing after a close frame is data;
                // drop whatever a driver read in meanwhile.
                self.read.clear();
                return Ok(None);
            }
            let step = match self.reading {
                Reading::Header => self.read_header(),
                Reading::Payload { .. } => self.read_payload(),
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Message(m)) => return Ok(Some(m)),
                Ok(Step::NeedMore) => {
                    if self.eof {
                        // RFC 6455 §7.1.5: the TCP connection closed before
                        // the closing handshake: close code 1006.
                        return Err(self.fail(ProtocolError::ConnectionReset));
                    }
                    return Ok(None);
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn read_header(&mut self) -> Result<Step, ProtocolError> {
        let Some((hdr, n)) = parse_header(&self.read)? else {
            return Ok(Step::NeedMore);
        };
        self.check_header(&hdr)?;
        bytes::Buf::advance(&mut self.read, n);
        self.reading = Reading::Payload { hdr, done: 0, ready: 0 };
        if matches!(hdr.opcode, OpCode::Text | OpCode::Binary) {
            let kind = if hdr.opcode == OpCode::Text { DataKind::Text } else { DataKind::Binary };
            self.incoming = Some(Incoming { kind, rsv: hdr.rsv, fragments: None, size: 0, utf8: Utf8Validator::new() });
        }
        Ok(Step::Continue)
    }

    /// Rules that depend on the connection, applied before any payload byte
    /// is buffered.
    fn check_header(&self, hdr: &FrameHeader) -> Result<(), ProtocolError> {
        // RFC 6455 §5.1: a server MUST close the connection upon receiving
        // an unmasked frame; a client MUST close it upon a masked one.
        match (self.role, hdr.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // RFC 6455 §5.2: RSV1-3 MUST be 0 unless an extension is negotiated
        // that defines meanings for them; extensions apply to the first frame
        // of a data message only (RFC 7692 §6.1).
        if hdr.rsv != 0 {
            let allowed = match (hdr.opcode, &self.extension) {
                (OpCode::Text | OpCode::Binary, Some(ext)) => ext.rsv_bits(),
                _ => 0,
            };
            if hdr.rsv & !allowed != 0 {
                return Err(ProtocolError::ReservedBits(hdr.rsv));
            }
        }
        if hdr.len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig { size: hdr.len, max: self.config.max_frame_size });
        }
        let max = self.config.max_message_size;
        match hdr.opcode {
            // RFC 6455 §5.4: a continuation frame continues a fragmented
            // message; data frames of another message may not interleave.
            OpCode::Continuation => {
                let Some(msg) = &self.incoming else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                if msg.rsv == 0 && msg.size + hdr.len > max as u64 {
                    return Err(ProtocolError::MessageTooBig { size: msg.size + hdr.len, max });
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.incoming.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if hdr.rsv == 0 && hdr.len > max as u64 {
                    return Err(ProtocolError::MessageTooBig { size: hdr.len, max });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn read_payload(&mut self) -> Result<Step, ProtocolError> {
        let Reading::Payload { hdr, mut done, mut ready } = self.reading else {
            return Ok(Step::Continue);
        };
        // Limits were checked against usize-sized values in `check_header`.
        let len = hdr.len as usize;
        let avail = (len - done).min(self.read.len());
        if avail > ready {
            if let Some(key) = hdr.mask {
                apply_mask(&mut self.read[ready..avail], key, done + ready);
            }
            // RFC 6455 §8.1: fail as soon as text stops being UTF-8, even in
            // the middle of a frame (payloads no extension transforms).
            if !hdr.opcode.is_control() {
                if let Some(msg) = self.incoming.as_mut() {
                    if msg.kind == DataKind::Text && msg.rsv == 0 {
                        msg.utf8.feed(&self.read[ready..avail]).map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                }
            }
            ready = avail;
        }
        let complete = done + ready == len;
        if self.config.stream_messages && !hdr.opcode.is_control() {
            if ready == 0 && !(complete && hdr.fin) {
                self.reading = Reading::Payload { hdr, done, ready };
                return Ok(if complete { self.end_frame() } else { Step::NeedMore });
            }
            let piece = self.read.split_to(ready).freeze();
            done += ready;
            self.reading = Reading::Payload { hdr, done, ready: 0 };
            let last = complete && hdr.fin;
            let msg = self.data_piece(piece, last)?;
            if complete {
                self.end_frame();
            }
            return Ok(Step::Message(msg));
        }
        self.reading = Reading::Payload { hdr, done, ready };
        if !complete {
            return Ok(Step::NeedMore);
        }
        let payload = if self.read.len() == len && self.read.capacity() == len {
            // The buffer holds this payload and has no room left (a small
            // message read alone, copied in by `receive`): hand the buffer
            // out whole. A split would make it shared, one allocation more
            // per message, to keep a buffer with no room to read into.
            std::mem::take(&mut self.read).freeze()
        } else {
            self.read.split_to(len).freeze()
        };
        self.reading = Reading::Header;
        if hdr.opcode.is_control() {
            return self.control_frame(hdr.opcode, payload);
        }
        self.data_frame(payload, hdr.fin)
    }

    fn end_frame(&mut self) -> Step {
        self.reading = Reading::Header;
        Step::Continue
    }

    /// Passes a data payload through the extension if the message uses one,
    /// validates decoded text, and accounts the message size.
    fn decode(&mut self, payload: Bytes, last: bool) -> Result<Bytes, ProtocolError> {
        let max = self.config.max_message_size;
        let Some(msg) = self.incoming.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let payload = if msg.rsv != 0 {
            let ext = self.extension.as_mut().ok_or(ProtocolError::ReservedBits(msg.rsv))?;
            let limit = (max as u64).saturating_sub(msg.size) as usize;
            let decoded = ext.decode(msg.rsv, payload, last, limit)?;
            if decoded.len() > limit {
                return Err(ProtocolError::MessageTooBig { size: msg.size + decoded.len() as u64, max });
            }
            if msg.kind == DataKind::Text {
                msg.utf8.feed(&decoded).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            decoded
        } else {
            payload
        };
        msg.size += payload.len() as u64;
        if last && msg.kind == DataKind::Text {
            msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(payload)
    }

    fn data_piece(&mut self, piece: Bytes, last: bool) -> Result<Message, ProtocolError> {
        let data = self.decode(piece, last)?;
        let kind = self.incoming.as_ref().map_or(DataKind::Binary, |m| m.kind);
        if last {
            self.incoming = None;
        }
        Ok(Message::Fragment { kind, data, last })
    }

    fn data_frame(&mut self, payload: Bytes, fin: bool) -> Result<Step, ProtocolError> {
        let data = self.decode(payload, fin)?;
        let Some(msg) = self.incoming.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        if !fin {
            msg.fragments.get_or_insert_with(Box::default).extend_from_slice(&data);
            return Ok(Step::Continue);
        }
        let data = match msg.fragments.take() {
            Some(mut fragments) if !fragments.is_empty() => {
                fragments.extend_from_slice(&data);
                (*fragments).freeze()
            }
            _ => data,
        };
        let kind = msg.kind;
        self.incoming = None;
        Ok(Step::Message(match kind {
            DataKind::Text => Message::Text(Utf8Bytes::from_validated(data)),
            DataKind::Binary => Message::Binary(data),
        }))
    }

    fn control_frame(&mut self, opcode: OpCode, payload: Bytes) -> Result<Step, ProtocolError> {
        if matches!(opcode, OpCode::Ping | OpCode::Pong) {
            self.timers.count_control(&self.config)?;
        }
        match opcode {
            OpCode::Ping => {
                // RFC 6455 §5.5.2/§5.5.3: answer a ping with a pong carrying
                // the same payload, unless we already sent a close frame.
                if self.close_sent {
                    // No pong after our close frame.
                } else if self.out.len() > PONG_BACKLOG {
                    self.rare().deferred_pong = Some(payload.clone());
                } else {
                    self.queue_control(OpCode::Pong, &payload);
                }
                Ok(Step::Message(Message::Ping(payload)))
            }
            OpCode::Pong => Ok(Step::Message(Message::Pong(payload))),
            OpCode::Close => {
                let frame = CloseFrame::parse(&payload).map_err(ProtocolError::InvalidClose)?;
                if !self.close_sent {
                    // RFC 6455 §5.5.1: an endpoint that receives a close
                    // frame and has not sent one MUST send one in response,
                    // typically echoing the status code it received.
                    self.sending = None;
                    match &frame {
                        Some(f) => self.queue_close(&CloseFrame { code: f.code, reason: String::new() }),
                        None => self.queue_close_empty(),
                    }
                    self.close_sent = true;
                }
                // §7.1.4: the closing handshake is complete; nothing more
                // is read (§5.5.1: no data after a close frame).
                self.state = State::Closed;
                self.close_received = true;
                self.rare().close_frame = Some(frame.clone());
                self.read = BytesMut::new();
                self.incoming = None;
                Ok(Step::Message(Message::Close(frame)))
            }
            // Data opcodes never reach this function.
            _ => Ok(Step::Continue),
        }
    }
}

/// What one parsing step produced.
enum Step {
    /// Progress was made; keep going.
    Continue,
    /// More bytes are needed.
    NeedMore,
    /// A message for the application.
    Message(Message),
}
