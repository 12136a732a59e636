//! [`WsOptions`]: what a WebSocket host accepts and how it treats slow
//! clients.

use std::time::Duration;

use simples_ws::deflate::DeflateConfig;
use simples_ws::CloseCode;

use super::relay::Relay;

/// How a WebSocket host reads and writes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Text and binary messages as they come, to
    /// [`WsHost::on_message`](crate::WsHost::on_message).
    #[default]
    Plain,
    /// Every message is a JSON object `{"event", "data"}` (plus `id` / `ack`
    /// for acknowledgements), dispatched to [`WsHost::on`](crate::WsHost::on)
    /// by event name. The wire format is in `assets/PROTOCOL.md`.
    Object,
}

/// Which pages may open a connection (the `Origin` header browsers send).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origins {
    /// Only pages served by this host: the origin's `host[:port]` must equal
    /// the request's `Host` header. Requests without `Origin` (non-browser
    /// clients, which cannot be hijacked cross-site) are accepted.
    #[default]
    SameHost,
    /// Any origin (`*`): only for hosts that authenticate otherwise, since
    /// any web page could then act with the visitor's cookies.
    Any,
    /// These exact origins (`"https://example.com"`, `"http://a:8080"`;
    /// `"null"` for pages opened from `file://`), compared
    /// case-insensitively, plus the host's own origin.
    List(Vec<String>),
}

/// What happens when a message is queued for a client whose outgoing queue
/// is full (it reads slower than it is sent to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Discard the new message.
    DropNewest,
    /// Discard the oldest queued messages until the new one fits (a message
    /// larger than the whole queue then waits alone).
    DropOldest,
    /// Close the connection with this code (`1008` policy violation or
    /// `1013` try again later); everything queued is discarded.
    Close(CloseCode),
}

/// What the host did about a full queue, as passed to
/// [`WsHost::on_slow`](crate::WsHost::on_slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowAction {
    /// This many messages were discarded (the new one, or old ones).
    Dropped(usize),
    /// The connection is being closed with this code.
    Closed(CloseCode),
}

/// A WebSocket host's options. Every field has a default
/// (`WsOptions::default()`).
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Plain or object mode. Default: [`Mode::Plain`].
    pub mode: Mode,
    /// Largest message accepted, in bytes; a larger one closes the
    /// connection with 1009. Default: `1_048_576` (1 MiB, as simpleS).
    pub max_message_size: usize,
    /// Accepted origins. Default: [`Origins::SameHost`].
    pub origins: Origins,
    /// Subprotocols this host speaks; the first one in the client's list
    /// that appears here is chosen (as simples-ws does). A client that offers protocols none of
    /// which is here is still accepted, without a protocol (RFC 6455
    /// §4.2.2). Default: none.
    pub protocols: Vec<String>,
    /// Closes (1001) a connection from which nothing arrived for this long;
    /// a ping is sent after half of it, so live clients stay connected.
    /// Default: 30 seconds (as simpleS). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the client's close frame after sending ours
    /// (counted from the last write: a client still reading what was queued
    /// before the close is not cut off). Default: 5 seconds.
    pub close_timeout: Duration,
    /// permessage-deflate (RFC 7692) when the client offers it.
    /// Default: `None` (off: compression costs memory per connection).
    pub deflate: Option<DeflateConfig>,
    /// Largest number of bytes waiting in a connection's outgoing queue
    /// behind its first message. An empty queue takes one message of any
    /// size (as uWebSockets' back-pressure), so a host can always send
    /// messages as large as its `max_message_size` (an echo needs no larger
    /// queue); the limit, and [`slow_policy`](WsOptions::slow_policy), apply
    /// to what would wait behind it.
    ///
    /// Memory bound: a client that reads nothing holds at most
    /// `max(max_queued_bytes, M)` bytes in the queue plus `64 KiB + M` being
    /// written, `M` being the largest message sent to it (broadcast frames
    /// are shared by all their recipients). Default: `1_048_576` (1 MiB).
    pub max_queued_bytes: usize,
    /// Largest number of messages waiting in a connection's outgoing
    /// queue (an empty queue always takes one). Default: `1024`.
    pub max_queued_messages: usize,
    /// What to do when a message does not fit behind those already in a
    /// connection's queue.
    /// Default: `SlowPolicy::Close(CloseCode::POLICY_VIOLATION)` (1008).
    pub slow_policy: SlowPolicy,
    /// Object mode: deepest nesting of arrays and objects accepted in a
    /// message. Default: `32`.
    pub max_json_depth: usize,
    /// Object mode: how long [`WsConn::request`](crate::WsConn::request)
    /// waits for the client's acknowledgement. Default: 10 seconds.
    pub ack_timeout: Duration,
    /// Messages received but not yet handled (a handler is running) before
    /// the connection stops reading (TCP flow control then slows the
    /// client); reading also stops once they total `max_message_size`
    /// bytes. Default: `16`.
    pub max_pending_messages: usize,
    /// Scale-out: the link to the other nodes. With one, broadcasts
    /// (`broadcast`, `broadcast_except`, `broadcast_named`, and the
    /// channels' ones) reach every node's connections, and channels and
    /// presence span the nodes. Default: `None` (this process only).
    pub relay: Option<Relay>,
    /// Track presence: who is in each channel
    /// ([`Channel::presence`](crate::ws::Channel::presence), with what
    /// [`WsConn::set_presence`](crate::WsConn::set_presence) set), with
    /// [`WsHost::on_presence`](crate::WsHost::on_presence) events; with a
    /// relay, across nodes (one backplane write per bind and unbind).
    /// Default: `false`.
    pub presence: bool,
    /// Most channel histories the memory backend keeps at once (see
    /// [`WsHost::history`](crate::WsHost::history)): a history is created
    /// by the first message or `@join` of a channel the policy gives
    /// history to, and one more past this evicts the least recently used
    /// of the channels without members on this node (empty ones first;
    /// none in use at that moment). A client that recovers from a position
    /// of an evicted history gets `recovered: false`, as after a restart.
    /// The histories of channels with members stay (past the bound, there
    /// are as many histories as such channels). The bound on the
    /// histories' memory: this many channels, or the channels with
    /// members, times the policy's `size` messages (`LIMITS.md`). The
    /// Redis backend is bounded by its keys' expiry instead. Values under 1
    /// count as 1. Default: `10_000`.
    pub max_history_channels: usize,
    /// Most channels one connection is in at once: a bind past it returns
    /// `false`, a client's `@join` fails with the reason (each membership
    /// holds memory: its room's entry, the connection's list). `0`: no
    /// channel at all. Default: `1024`.
    pub max_channels_per_connection: usize,
    /// Most control frames (pings and pongs) accepted from a client per
    /// second; a ping flood over it closes the connection with 1008
    /// (policy violation). Default: `Some(1000)` (a browser sends none; a
    /// client measuring its round-trip time a few per second). `None`: no
    /// limit (a flood's memory is bounded anyway, its CPU is not).
    /// `Some(0)` refuses every ping and pong, the client's answer to the
    /// keepalive ping too: use it only with `idle_timeout: None`.
    pub max_control_frames_per_second: Option<u32>,
    /// Most connections this host holds at once (those being upgraded
    /// included); a handshake over it is refused with `503 Service
    /// Unavailable` and the reason. Default: `None` (no limit: the process's
    /// descriptor limit is the bound).
    pub max_connections: Option<usize>,
    /// Most connections this host holds at once from one client IP address
    /// (an IPv4-mapped IPv6 address counts as its IPv4 address); a
    /// handshake over it is refused with `503` and the reason. Behind a
    /// reverse proxy every client has the proxy's address: leave it off
    /// there. Default: `None` (no limit).
    pub max_connections_per_ip: Option<usize>,
    /// Runs this host's plain-TCP connections, after their 101, on event
    /// loops (`simples-ws`'s mio loop, one per thread, the uWebSockets
    /// model): no tokio task, timer or socket registration per connection,
    /// so an idle connection holds about half the memory and a broadcast
    /// wakes one thread per loop instead of one task per connection.
    /// Handlers stay `async` and run as before (the loop polls them; one
    /// that waits is woken like a task). `false`: every connection is a
    /// tokio task. TLS connections are always tokio tasks. Default: `true`.
    pub event_loop: bool,
    /// Threads running this host's event loops, started and stopped with
    /// the server; a connection stays on the loop it was given (in turn).
    /// The hosts of a server with the same count share one set of loops
    /// (so a broadcast from one host's handler to another host's
    /// connections stays on its thread). Default: `0`, one per core
    /// (`std::thread::available_parallelism`).
    pub event_loop_threads: usize,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            mode: Mode::Plain,
            max_message_size: 1 << 20,
            origins: Origins::SameHost,
            protocols: Vec::new(),
            idle_timeout: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
            deflate: None,
            max_queued_bytes: 1 << 20,
            max_queued_messages: 1024,
            slow_policy: SlowPolicy::Close(CloseCode::POLICY_VIOLATION),
            max_json_depth: 32,
            ack_timeout: Duration::from_secs(10),
            max_pending_messages: 16,
            relay: None,
            presence: false,
            max_history_channels: 10_000,
            max_channels_per_connection: 1024,
            max_control_frames_per_second: Some(1000),
            max_connections: None,
            max_connections_per_ip: None,
            event_loop: true,
            event_loop_threads: 0,
        }
    }
}

impl WsOptions {
    /// Default options in object mode.
    pub fn object() -> WsOptions {
        WsOptions { mode: Mode::Object, ..WsOptions::default() }
    }

    /// The protocol layer's configuration for these options.
    pub(crate) fn protocol_config(&self) -> simples_ws::Config {
        simples_ws::Config {
            max_message_size: self.max_message_size,
            max_frame_size: self.max_message_size,
            idle_timeout: self.idle_timeout,
            ping_interval: self.idle_timeout.map(|t| t / 2),
            close_timeout: self.close_timeout,
            max_control_frames_per_second: self.max_control_frames_per_second,
            ..simples_ws::Config::default()
        }
    }
}
