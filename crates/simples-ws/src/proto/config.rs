//! Protocol configuration.

use std::time::Duration;

/// Which side of the connection this endpoint is (RFC 6455 §5.1 masking
/// direction, §7.1.1 who closes TCP first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections: expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections: sends masked frames, expects unmasked ones.
    Client,
}

/// Limits and timers of one connection. Every field has a default
/// (see [`Config::default`]), so set only what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest payload accepted in one frame, checked from the header before
    /// anything is buffered; larger frames fail the connection with 1009.
    /// Default: 16 MiB.
    pub max_frame_size: usize,
    /// Largest message accepted (all fragments together, after any
    /// extension decoding); larger messages fail the connection with 1009.
    /// Default: 64 MiB.
    pub max_message_size: usize,
    /// Splits outgoing data messages into frames of at most this many
    /// payload bytes. Default: `None` (one frame per message).
    pub max_send_frame_size: Option<usize>,
    /// Delivers data messages as [`crate::Message::Fragment`] pieces as their
    /// bytes arrive, instead of assembling whole messages; for messages too
    /// large to hold in memory. `max_message_size` still applies.
    /// Default: `false`.
    pub stream_messages: bool,
    /// Sends a ping when nothing has been received for this long (keepalive).
    /// Default: `None` (no keepalive pings).
    pub ping_interval: Option<Duration>,
    /// Starts a closing handshake (1001, "idle timeout") when nothing has been
    /// received for this long. With `ping_interval` shorter than this, a live
    /// peer's pongs keep the connection open. Default: `None` (no timeout).
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame after sending ours, and,
    /// for a client, for the server to close TCP after the handshake.
    /// Counted from the last write once our close frame is queued: a peer
    /// still reading what was queued before it (a graceful shutdown behind
    /// a backlog) is not cut off while it makes progress; one that reads
    /// nothing is given up this long after its last progress.
    /// Default: 5 seconds.
    pub close_timeout: Duration,
    /// Most control frames (pings and pongs) accepted from the peer per
    /// second; one more fails the connection with 1008 (policy violation).
    /// A ping flood costs a parse, a pong and a message to the application
    /// per frame (its memory is bounded anyway: pongs are not queued behind
    /// a backlog). Counted in one-second windows of the driver's clock
    /// (a window starts at the first clock reading after a control frame,
    /// and frames are checked as they are parsed), so a peer gets at most
    /// twice the limit in any second; the cost is one timer wake-up a second
    /// after a control frame opens a window. Default: `Some(1000)`; `None` for no
    /// limit. `Some(0)` refuses every ping and pong (the pong answering a
    /// keepalive ping too): use it only with keepalive off.
    pub max_control_frames_per_second: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_send_frame_size: None,
            stream_messages: false,
            ping_interval: None,
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            max_control_frames_per_second: Some(1000),
        }
    }
}
