//! The sans-IO WebSocket state machine (RFC 6455 §5-§7), after the opening
//! handshake.
//!
//! [`Protocol`] never touches a socket or a clock. The driver contract:
//! 1. **input**: read from the transport into [`Protocol::read_buf`] and
//!    report each read with [`Protocol::notify_received`]`(n)`, where
//!    `n == 0` is the end of stream, as `read(2)` reports it
//!    ([`Protocol::receive`] copies bytes read elsewhere, e.g. into a
//!    buffer shared by many connections while
//!    [`Protocol::is_between_frames`]);
//! 2. **messages**: call [`Protocol::poll_message`] until it returns
//!    `Ok(None)` ("need more data" is a normal result);
//! 3. **output**: write [`Protocol::output`] to the transport (pongs, close
//!    replies and everything the application sent are queued there);
//! 4. **time**: pass the time read from the driver's clock to
//!    [`Protocol::poll_timeout`] (when to wake up next) and
//!    [`Protocol::handle_timeout`] (when that time came);
//! 5. **transport**: do what [`Protocol::transport_action`] says: keep
//!    the transport open, or go through the closing sequence it spells out
//!    (see [`TransportAction`]).
//!
//! Every method is synchronous and keeps its state between calls, so a
//! driver's futures can be dropped at any await point without losing data.

mod config;
mod error;
mod output;
mod recv;
mod send;
mod timers;
mod transport;

pub use config::{Config, Role};
pub use error::ProtocolError;
pub use output::Output;
pub use send::PreparedFrame;
pub use transport::TransportAction;

use crate::close::CloseFrame;
use crate::extension::Extension;
use crate::frame::FrameHeader;
use crate::message::DataKind;
use crate::utf8::Utf8Validator;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Instant;
use timers::Timers;

/// Where the connection is in its life (RFC 6455 §4.1, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (§7.1.2). Messages
    /// still arrive; nothing more may be sent.
    Closing,
    /// Both close frames were exchanged, or the connection failed.
    Closed,
}

/// One WebSocket connection's protocol state: frames in, messages out;
/// messages in, frames out.
pub struct Protocol {
    role: Role,
    /// Shared by every connection of a server that passes an `Arc`.
    config: Arc<Config>,
    state: State,
    /// Received bytes not yet consumed. While a frame's payload is being
    /// received, it starts at the payload's first unconsumed byte.
    read: BytesMut,
    reading: Reading,
    /// The data message being received.
    incoming: Option<Incoming>,
    out: Output,
    /// The negotiated extension, behind a second box: a thin pointer (8
    /// bytes per connection, not 16; one more indirection per message of
    /// the connections that negotiated one).
    #[allow(clippy::redundant_allocation)]
    extension: Option<Box<Box<dyn Extension>>>,
    /// Kind of the fragmented message being sent, if one is open.
    sending: Option<DataKind>,
    close_sent: bool,
    /// The peer's close frame was received (the frame is in `Rare`).
    close_received: bool,
    /// The peer's end of stream was seen.
    eof: bool,
    /// The connection failed (peer violation, reset or timeout).
    failed: bool,
    /// Data arrived since the timers were last told the time (the idle
    /// timer's activity; here, not in `Timers`, where it would take a
    /// word of its own).
    received: bool,
    /// With, in the same box, the state that only closing or misbehaving
    /// connections need (`Rare`), so an idle connection stays small.
    timers: Timers<Rare>,
}

/// See `Protocol::timers`.
#[derive(Debug, Default)]
struct Rare {
    /// The peer's close frame (`Some(None)`: it had no code).
    close_frame: Option<Option<CloseFrame>>,
    /// An error to report from the next `poll_message`.
    pending_error: Option<ProtocolError>,
    /// The latest ping's payload, when its pong could not be queued
    /// because the output was backlogged (see `recv::PONG_BACKLOG`).
    deferred_pong: Option<bytes::Bytes>,
}

/// Progress through the current frame.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// Waiting for a complete frame header.
    Header,
    /// The header was consumed; its payload is arriving.
    Payload {
        /// The header; its `len` is the payload's (checked in
        /// `check_header` to fit a `usize`).
        hdr: FrameHeader,
        /// Payload bytes already handed out (streaming mode).
        done: usize,
        /// Bytes at the front of `read` already unmasked and validated.
        ready: usize,
    },
}

/// The data message being received.
#[derive(Debug)]
struct Incoming {
    kind: DataKind,
    /// RSV bits of the first frame: which extension transform applies.
    rsv: u8,
    /// Fragments received so far (unused in streaming mode), boxed: most
    /// messages are one frame and never need it.
    fragments: Option<Box<BytesMut>>,
    /// Message bytes so far (after decoding), for `max_message_size`.
    size: u64,
    utf8: Utf8Validator,
}

impl Protocol {
    /// A connection whose opening handshake is complete.
    ///
    /// `config` may be a [`Config`] or an `Arc<Config>` shared by many
    /// connections (it is not copied then).
    pub fn new(role: Role, config: impl Into<Arc<Config>>) -> Protocol {
        Protocol {
            role,
            config: config.into(),
            state: State::Open,
            read: BytesMut::new(),
            reading: Reading::Header,
            incoming: None,
            out: Output::default(),
            extension: None,
            sending: None,
            close_sent: false,
            close_received: false,
            eof: false,
            failed: false,
            received: false,
            timers: Timers::default(),
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.timers.extra_mut()
    }

    /// Installs the extension negotiated in the handshake.
    pub fn set_extension(&mut self, ext: Box<dyn Extension>) {
        self.extension = Some(Box::new(ext));
    }

    /// This endpoint's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The peer's close frame, once received (`Some(None)`: it had no code).
    pub fn close_frame_received(&self) -> Option<&Option<CloseFrame>> {
        self.timers.extra().and_then(|r| r.close_frame.as_ref())
    }

    /// Bytes waiting to be written to the transport.
    pub fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// Releases buffer memory the connection does not currently need
    /// (call when idle, for a small per-connection footprint).
    pub fn shrink_buffers(&mut self) {
        if self.read.is_empty() && matches!(self.reading, Reading::Header) {
            self.read = BytesMut::new();
        }
        self.out.shrink();
    }

    /// As [`Protocol::shrink_buffers`], and the small encoding buffer it
    /// keeps for reuse is released too: for connections that stayed idle
    /// a while (the event loop's sweep, at most once a second per
    /// connection), for which reuse saves nothing.
    pub fn release_buffers(&mut self) {
        self.shrink_buffers();
        self.out.release();
    }

    /// Capacity of the buffers held (receive, send and a partial message).
    pub fn buffered_capacity(&self) -> usize {
        self.read.capacity() + self.incoming.as_ref().and_then(|m| m.fragments.as_ref()).map_or(0, |f| f.capacity())
    }

    /// Fails the connection (RFC 6455 §7.1.7): queues a close frame with
    /// the error's code if one may still be sent, drops unread input, and
    /// returns the error for the caller to report.
    fn fail(&mut self, err: ProtocolError) -> ProtocolError {
        tracing::debug!(role = ?self.role, error = %err, "failing WebSocket connection");
        if let Some(code) = err.close_code() {
            if !self.close_sent && !self.eof {
                let reason = err.to_string();
                self.queue_close(&CloseFrame { code, reason });
            }
        }
        self.close_sent = true;
        self.failed = true;
        self.state = State::Closed;
        self.read = BytesMut::new();
        self.incoming = None;
        self.reading = Reading::Header;
        err
    }

    /// True when some timer may be running, so the driver must read the
    /// clock and call [`Protocol::poll_timeout`]; false for a connection
    /// without keepalive or idle timeout that is not closing and has not
    /// received a control frame in the last second (the window of
    /// [`Config::max_control_frames_per_second`] needs the time to end).
    pub fn needs_clock(&self) -> bool {
        self.close_sent
            || self.config.ping_interval.is_some()
            || self.config.idle_timeout.is_some()
            || self.timers.counting_control()
    }

    /// Tells the state machine the time, read from the driver's clock:
    /// returns when it next needs [`Protocol::handle_timeout`] (keepalive
    /// ping, idle timeout, close timeout), if ever. Call it after each batch
    /// of input and output. The timers start at the first call.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        self.sync_timers(now);
        self.timers.next_deadline(&self.config, self.state == State::Open)
    }

    /// Tells the timers the time and what happened since they last knew it.
    fn sync_timers(&mut self, now: Instant) -> &mut timers::Marks {
        let received = std::mem::take(&mut self.received);
        self.timers.sync(now, self.close_sent, received, self.out.take_progress(), &self.config)
    }

    /// Acts on timers that are due at `now` (the driver's clock).
    pub fn handle_timeout(&mut self, now: Instant) {
        let marks = *self.sync_timers(now);
        if let Some(deadline) = self.timers.close_deadline() {
            if now >= deadline {
                self.timers.expire_close();
                if self.state != State::Closed {
                    let err = if self.timers.idle_closing() { ProtocolError::IdleTimeout } else { ProtocolError::CloseTimeout };
                    tracing::debug!(role = ?self.role, "closing handshake timed out");
                    self.failed = true;
                    self.state = State::Closed;
                    self.rare().pending_error = Some(err);
                }
                return;
            }
        }
        if self.state != State::Open {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= marks.last_rx() + idle {
                tracing::debug!(role = ?self.role, "idle timeout, closing");
                self.timers.start_idle_closing();
                // RFC 6455 §7.4.1: 1001, the endpoint is "going away".
                let _ = self.close(crate::close::CloseCode::GOING_AWAY, "idle timeout");
                self.sync_timers(now);
                return;
            }
        }
        if let Some(interval) = self.config.ping_interval {
            if now >= marks.last_rx().max(marks.last_ping()) + interval {
                self.sync_timers(now).set_last_ping(now);
                // RFC 6455 §5.5.2: a ping "MAY be sent ... as a keepalive".
                self.queue_control(crate::frame::OpCode::Ping, b"");
            }
        }
    }
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("buffered", &self.read.len())
            .field("output", &self.out.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

/// Every connection holds a `Protocol` (the tokio driver's task, the event
/// loop's slab): keep it small. 320 B before the fragment buffer was boxed
/// and the payload length kept once (commit "Protocol: 320 -> 280 B"); 232
/// with the output's chunk list and the timers' closing state boxed; 200
/// with the timers' marks 8 bytes each, the output's length in the
/// chunks' box and the extension behind a thin pointer; 192 with the
/// timers' activity flag among the protocol's flags; 184 with the
/// protocol's rare state in the timers' box.
#[cfg(test)]
#[test]
fn protocol_stays_small() {
    let size = std::mem::size_of::<Protocol>();
    println!("size_of::<Protocol>() = {size}");
    assert!(size <= 184, "Protocol is {size} bytes");
}
