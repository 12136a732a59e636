//! A single-threaded epoll event loop (on `mio`) that owns every connection
//! in one slab: the uWebSockets model, as a second driver over the same
//! sans-IO [`Protocol`](crate::Protocol) (feature `mio`, not default).
//!
//! Where the tokio driver spends a task (and its waker, its timer and its
//! `TcpStream` registration) per connection, this loop keeps, per
//! connection, only a [`slab`] entry: the socket, a small state enum and the
//! protocol. Broadcasting is a loop over the slab that queues one shared
//! [`PreparedFrame`] on each subscriber: no task wake-up, no lock, no
//! channel per delivery.
//!
//! ```no_run
//! use simples_ws::event_loop::{Accept, ConnId, Ctx, EventHandler, EventLoop, Options};
//! use simples_ws::handshake::{server::Request, HandshakeError};
//! use simples_ws::Message;
//!
//! struct Echo;
//! impl EventHandler for Echo {
//!     fn on_open(&mut self, _: &mut Ctx<'_>, _: ConnId, _: &Request) -> Result<Accept, HandshakeError> {
//!         Ok(Accept::default())
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
//!         if msg.is_data() {
//!             ctx.send(id, msg);
//!         }
//!     }
//! }
//!
//! let mut lp = EventLoop::bind("127.0.0.1:9001".parse().unwrap(), Options::default()).unwrap();
//! lp.run(Echo).unwrap(); // until `lp.handle().stop()` from another thread
//! ```
//!
//! ## One loop iteration
//!
//! 1. `epoll_wait`, with the earliest timer deadline as timeout;
//! 2. due timers: [`Protocol::handle_timeout`](crate::Protocol::handle_timeout);
//! 3. each event: accept new connections; read a connection's bytes and hand
//!    every complete message to [`EventHandler::on_message`]. Whatever the
//!    handlers send (to any connection) is only queued in that connection's
//!    [`Output`](crate::proto::Output) and the connection is marked dirty;
//! 4. if [`Handle::wake`] was called: [`EventHandler::on_wake`] (once);
//!    then [`EventHandler::before_writes`] (every iteration): where work
//!    gathered over the iteration is flushed, e.g. broadcasts gathered per
//!    connection and handed over with [`Ctx::send_batch`], which writes a
//!    connection's batch at once while its bytes are in the cache;
//! 5. "corking", as uWebSockets: every dirty connection's output is written
//!    with one `writev` (so a burst of replies, or a broadcast, costs one
//!    system call per connection and iteration); its timer is re-armed; its
//!    buffers are released when it is idle
//!    ([`Protocol::shrink_buffers`](crate::Protocol::shrink_buffers)); closed
//!    connections leave the slab. Connections adopted or resumed during the
//!    iteration are read here ("Adopting connections"), and
//!    [`EventHandler::on_drained`] is called for those that asked for it.
//!
//! ## Adopting connections
//!
//! A loop can serve connections whose HTTP and WebSocket handshakes were
//! done elsewhere (a hyper server, say): [`Ctx::adopt`] takes the socket
//! and a ready [`Protocol`](crate::Protocol), built by the caller with its
//! own [`Config`] (and extension), holding the bytes read
//! past the handshake (fed with
//! [`Protocol::receive`](crate::Protocol::receive)) and any queued output.
//! From then on the connection is served like one the loop accepted:
//! timers, back-pressure, closing, [`EventHandler::on_close`] exactly once,
//! shutdown. [`EventHandler::on_open`] is not called for it.
//!
//! The hand-over, from the threads that do the handshakes: put the
//! `(TcpStream, Protocol)` in a queue the handler owns (a channel), call
//! [`Handle::wake`], and adopt in [`EventHandler::on_wake`]. Wakes are
//! coalesced: many before the loop gets to them give one `on_wake`
//! (drain the whole queue there), and a wake during `on_wake` gives
//! another call. [`EventLoop::unbound`] makes a loop with no listening
//! socket, for connections that arrive only this way; N of them, one per
//! core, with the connections spread by the application.
//!
//! The adopted connection is read at the end of the iteration (never
//! re-entrantly, from inside the callback that adopts): the messages the
//! protocol can already decode are delivered, then the socket is read
//! until empty, so bytes that arrived before the registration are not
//! missed (no edge would report them), and its output is written.
//!
//! Two controls let an application that queues work per connection keep
//! its own queues bounded:
//! - [`Ctx::pause_reading`]: stop reading a connection while its handlers
//!   lag (its bytes wait in the kernel, its timers run); resuming delivers
//!   what was held and reads the socket. A peer's reset while paused is
//!   noticed when reading resumes, or when a timeout ends the connection.
//!   It is independent of the loop's own pause on output (below): reading
//!   happens when neither holds. [`Ctx::close`] and shutdown resume it, to
//!   read the peer's close;
//! - [`Ctx::notify_drained`]: one [`EventHandler::on_drained`] once the
//!   connection's output is at or below [`Options::read_low_water`], to
//!   move more of the application's queue into the protocol.
//!
//! ## Reading (edge-triggered)
//!
//! mio registers sockets edge-triggered: an event comes when new data
//! arrives, not while data is waiting. Between frames, reads land in one
//! loop-wide 64 KiB scratch buffer and only the bytes received are copied
//! into the connection ([`Protocol::receive`](crate::Protocol::receive)), so
//! an idle connection holds no receive buffer; inside a large frame they go
//! straight into [`Protocol::read_buf`](crate::Protocol::read_buf)
//! (reported with [`Protocol::notify_received`](crate::Protocol::notify_received)).
//!
//! A connection is read until a read returns **fewer bytes than asked**,
//! not until `EAGAIN`: on Linux a short read from a TCP socket means its
//! receive queue was emptied, and any byte that arrives later raises a new
//! edge (every arrival wakes the epoll waiters of an edge-triggered
//! registration), so the usual extra `read` that only returns `EAGAIN` is
//! saved: one system call per event instead of two for small messages. The
//! exception is an event that reports the peer's end of stream
//! (`EPOLLRDHUP`/`EPOLLHUP`): the FIN may already sit behind the data and
//! no further edge would come, so such a connection is read until `0`.
//! The same reasoning applies to writes: a short `writev` means the send
//! buffer is full, and the socket's writable edge comes once it drains.
//!
//! Sockets are registered once for both readable and writable: with edge
//! triggering a writable event only comes after a write found the buffer
//! full, so no `epoll_ctl` is needed to turn write interest on and off.
//!
//! ## Back-pressure
//!
//! Reading stops while a connection's pending output is above
//! [`Options::read_high_water`] (default 64 KiB), as the tokio driver does:
//! a peer that sends requests without reading the replies fills its own
//! socket buffers and then blocks, instead of making the server read (and
//! answer into memory) everything it sends. Before pausing, the loop writes
//! the output right away (a reading peer keeps the pipeline full); it
//! pauses only if the socket does not take it. Once the output drains to
//! [`Options::read_low_water`] (default 16 KiB), reading resumes with what
//! the socket holds. Queued replies per connection stay under the high
//! mark plus what one read's messages produce; a paused connection's bytes
//! wait in the kernel, not in the server.
//!
//! Each connection may also have [`Options::max_queued`] bytes (default
//! 256 KiB: 10,000 clients that never read under a broadcast hold at most
//! 2.44 GiB) waiting to be written:
//! - [`Ctx::send_prepared`] and [`Ctx::broadcast`] drop the frame for a
//!   connection past that (returning `false` / counting it), so a slow
//!   subscriber never stalls the publisher or the other subscribers, and its
//!   memory stays bounded. Before dropping, the loop writes what the socket
//!   takes right away: a reader that is only behind within one iteration
//!   (a burst of broadcasts, normally written at its end) is not dropped;
//! - [`Ctx::send`] on a connection already past the limit does not queue
//!   the message: it starts the closing handshake with 1008 (policy
//!   violation) and returns `false`. A peer that does not read its replies
//!   cannot make the server buffer without bound; the close frame waits
//!   behind the backlog and the close timeout ends the connection if the
//!   peer never reads.
//!
//! ## Closing
//!
//! [`EventHandler::on_close`] is called once per connection that
//! [`EventHandler::on_open`] accepted, as soon as the connection is over for the
//! application (closing handshake done, protocol failure, timeout, I/O
//! error): its [`ConnId`] is then dead (sends return `false`). The loop then
//! finishes closing the transport as the tokio driver does, following
//! [`Protocol::transport_action`](crate::Protocol::transport_action) (RFC
//! 6455 §7.1.1): it flushes the output, shuts the write side down, keeps
//! reading (and discarding) until the peer's end of stream while the action
//! says so (so a failed connection's close frame is not destroyed by a
//! reset), up to the close timeout, and only then closes the socket and
//! frees the slot.
//!
//! Writes never raise SIGPIPE: the loop writes with `send`/`sendmsg` and
//! `MSG_NOSIGNAL` (not `writev`), so a peer that reset its connection gives
//! an `EPIPE` error for that connection, even in a program that did not
//! ignore the signal (a C or Node host; Rust's `main` ignores it). Tested
//! in a child process with the signal at its default action
//! (`tests/event_loop_sigpipe.rs`).
//!
//! ## Stopping
//!
//! [`Handle::stop`] makes [`EventLoop::run`] return and leaves the
//! connections open; [`Handle::shutdown`] (or [`EventLoop::shutdown`])
//! stops gracefully: no new clients, every connection closed with 1001
//! after the replies already queued, the closing handshakes awaited up to
//! a deadline.
//!
//! ## Timers
//!
//! No timer wheel: a binary heap of `(deadline, connection, generation)`
//! entries, pushed when a connection's
//! [`Protocol::poll_timeout`](crate::Protocol::poll_timeout) returns a
//! deadline earlier than the one already armed for it; the earliest entry
//! is `epoll_wait`'s timeout. Entries are lazy: one whose connection left,
//! or whose deadline is no longer the armed one, is skipped when it comes
//! up; a deadline that moved later fires early and is re-armed. Only
//! handshaking connections (the handshake timeout), closing connections
//! and connections with `ping_interval` / `idle_timeout` use it, and, for a
//! second after a control frame, the window of
//! [`Config::max_control_frames_per_second`](crate::Config::max_control_frames_per_second).
//!
//! ## Several cores
//!
//! One loop runs on one thread and serves its connections only. To use
//! more cores, run one loop per thread, each bound to the same address
//! with [`Options::reuse_port`]: the kernel (`SO_REUSEPORT`) hands each new
//! connection to one of the listening loops, by a hash of its addresses,
//! and a connection stays on its loop for its life. Loops share nothing: a
//! broadcast reaches the connections of the loop it is called on, so an
//! application that broadcasts across loops forwards the message to the
//! other loops itself.
//!
//! ## Not supported (yet)
//!
//! permessage-deflate is not negotiated by the loop's own handshake
//! (connections it accepts open uncompressed; an adopted protocol may
//! carry an extension);
//! sends from [`EventHandler::on_open`] are refused (the connection opens after
//! it returns); TLS.

mod adopt;
mod conn;
mod ctx;
mod server;
mod shutdown;
mod uninit;

pub use server::{Ctx, EventLoop, Handle};

use crate::handshake::server::ServerConfig;
use crate::handshake::HandshakeError;
use crate::proto::{Config, ProtocolError};
use crate::CloseFrame;
use std::time::Duration;

#[doc(no_inline)]
pub use crate::handshake::server::Request;
#[doc(no_inline)]
pub use crate::proto::PreparedFrame;

/// The loop's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Request head limits. Default: [`ServerConfig::default`] (8 KiB, 64
    /// headers).
    pub handshake: ServerConfig,
    /// Subprotocols this server speaks; when [`Accept::protocol`] is
    /// `None`, the first of the client's offers found here is chosen.
    /// Default: none.
    pub protocols: Vec<String>,
    /// Limits and timers of accepted connections. Default:
    /// [`Config::default`].
    pub config: Config,
    /// Time allowed for the client to send its request head (and for the
    /// error response to leave). Default: 10 s.
    pub handshake_timeout: Duration,
    /// Bytes that may wait to be written on one connection (see the
    /// module's "Back-pressure"): past it, broadcasts and
    /// [`Ctx::send_prepared`] skip the connection and [`Ctx::send`] closes
    /// it with 1008. An empty output takes one frame of any size.
    /// Default: 256 KiB.
    ///
    /// The computation: replies to a client's own requests never reach it
    /// (reading pauses at [`Options::read_high_water`], so they stay under
    /// 64 KiB + one read's replies, 128 KiB); only what the server pushes
    /// (broadcasts, notifications) piles up at a client that does not read.
    /// A connection then holds at most `max_queued` bytes, plus one message
    /// when a [`Ctx::send`] lands on a queue just under the limit (counted
    /// as if copied; a broadcast frame is in fact shared `Bytes`). So
    /// 10,000 clients that never read, under a broadcast, hold at most
    /// 10,000 × 256 KiB = 2.44 GiB of queued output (with the previous
    /// 16 MiB default: 156 GiB), on top of their kernel socket buffers.
    /// A fast reader is unaffected: its output is written every iteration.
    pub max_queued: usize,
    /// Pending output above which the loop stops reading a connection
    /// (TCP back-pressure on a peer that sends without reading its
    /// replies; see the module's "Back-pressure"). A connection's queued
    /// replies then stay under this plus what one read's messages produce
    /// (at most 64 KiB for an echo of small messages). Default: 64 KiB:
    /// 10,000 connections that send and never read hold at most
    /// 10,000 × 128 KiB = 1.22 GiB of queued replies.
    pub read_high_water: usize,
    /// Pending output at or below which a paused connection is read again.
    /// Capped at [`Options::read_high_water`]. Default: 16 KiB.
    pub read_low_water: usize,
    /// Readiness events taken from one `epoll_wait`; more wait for the
    /// next iteration. Default: 1024.
    pub events: usize,
    /// Sets `TCP_NODELAY` on accepted sockets (the loop batches writes
    /// itself). Default: `true`.
    pub nodelay: bool,
    /// Sets `SO_REUSEPORT` (and `SO_REUSEADDR`) on the listening socket
    /// before it binds, so that several loops, one per thread, can listen
    /// on the same address: the kernel spreads new connections across them
    /// (see "Several cores" in the module docs). Binding fails with
    /// `AddrInUse` if a socket without it already listens there, and with
    /// `Unsupported` on systems without `SO_REUSEPORT`. Default: `false`.
    pub reuse_port: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            handshake: ServerConfig::default(),
            protocols: Vec::new(),
            config: Config::default(),
            handshake_timeout: Duration::from_secs(10),
            max_queued: 256 << 10,
            read_high_water: 64 << 10,
            read_low_water: 16 << 10,
            events: 1024,
            nodelay: true,
            reuse_port: false,
        }
    }
}

/// What [`EventHandler::on_open`] decided for an accepted request (the
/// same type as the tokio driver's).
pub use crate::handshake::Accept;

/// A connection of the loop: its slab slot and a generation, so an id kept
/// after the connection closed never reaches the connection that reuses
/// the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    key: u32,
    gen: u32,
}

impl ConnId {
    /// The slab slot: small and dense (slots are reused), so an
    /// application can keep per-connection data in a `Vec` indexed by it.
    /// Two live connections never share an index.
    pub fn index(self) -> usize {
        self.key as usize
    }
}

/// Why a connection ended (see [`EventHandler::on_close`]).
#[derive(Debug)]
pub enum CloseReason {
    /// The closing handshake completed (either side started it); the
    /// peer's close frame (`None`: it had no code).
    Closed(Option<CloseFrame>),
    /// The connection failed: a protocol violation by the peer (its close
    /// frame is on its way), the peer vanished without a close frame
    /// ([`ProtocolError::ConnectionReset`]), the idle or close timeout.
    Failed(ProtocolError),
    /// A socket error (e.g. a reset while writing).
    Io(std::io::Error),
    /// [`EventHandler::on_open`] accepted, but the 101 response could not be
    /// built (e.g. a subprotocol the client did not offer); the client got
    /// this error's response.
    Handshake(HandshakeError),
}

/// The application: called by the loop for each connection's events.
/// Every callback gets a [`Ctx`] to send to (or close, adopt, pause) any
/// connection. Callbacks run on the loop's thread, one at a time, never
/// re-entrantly: what they cause (messages of an adopted or resumed
/// connection, on_close of a connection they close) comes in later calls.
/// Only [`EventHandler::on_message`] has no default.
pub trait EventHandler {
    /// A client's opening handshake passed validation (connections the loop
    /// accepted itself; not called for [`Ctx::adopt`]ed ones): accept it (and
    /// choose its subprotocol, headers, settings), or refuse it with an
    /// HTTP status ([`crate::handshake::server::reject`]), which is sent
    /// before the socket is closed. Sends to `id` are refused until this
    /// returns.
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<Accept, HandshakeError> {
        let _ = (ctx, id, req);
        Ok(Accept::default())
    }

    /// A data message, a ping or a pong arrived (pings are answered by the
    /// protocol already; close frames end in [`EventHandler::on_close`]).
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: crate::Message);

    /// The connection is over for the application; called exactly once for
    /// every connection `on_open` accepted or [`Ctx::adopt`] took. `id` is
    /// dead afterwards.
    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        let _ = (ctx, id, reason);
    }

    /// [`Handle::wake`] was called (once or more) since the last call:
    /// the place to take work handed over from other threads, e.g.
    /// connections to [`Ctx::adopt`]. Called from the loop's thread, after
    /// the iteration's readiness events and before its writes. Default:
    /// nothing.
    fn on_wake(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// The output of `id` drained to [`Options::read_low_water`] or below,
    /// after [`Ctx::notify_drained`] asked for it (once per request). Not
    /// called for a connection that ended first. Default: nothing.
    fn on_drained(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        let _ = (ctx, id);
    }

    /// Once per iteration, after its timers, readiness events and
    /// [`EventHandler::on_wake`], before its writes: the place to flush
    /// work batched over the iteration (such as broadcasts gathered per
    /// connection, so each connection's output takes them in one go, as
    /// uWebSockets drains its topics). Default: nothing.
    fn before_writes(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// What [`Ctx::broadcast`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Connections the frame was queued on.
    pub sent: usize,
    /// Connections skipped because their output was over
    /// [`Options::max_queued`].
    pub dropped: usize,
}
