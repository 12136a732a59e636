//! The one answer to "what must the transport do now": every driver (the
//! tokio `WebSocket`, its split halves, the event loop) asks
//! [`Protocol::transport_action`] after each batch of input, output and
//! timers, and does what it says; no driver derives the closing sequence
//! from the protocol's state itself.

use super::{Protocol, Role, State};

/// What the driver must do with the transport (RFC 6455 §7.1.1, §7.1.7),
/// from [`Protocol::transport_action`].
///
/// Only [`TransportAction::KeepOpen`] hands messages to the application;
/// every other action follows the end of the connection for the protocol
/// (the closing handshake completed, the connection failed, or a timeout),
/// and the driver moves through them until it closes the transport:
///
/// | action | write the output | shut the write side down | read (and discard) | then |
/// | --- | --- | --- | --- | --- |
/// | `KeepOpen` | yes | no | yes, into the protocol | ask again |
/// | `AwaitPeerClose` | yes | no | yes, until end of stream | ask again |
/// | `ShutdownAndLinger` | yes | once written | yes, until end of stream | ask again |
/// | `Close` | yes | once written | no | close once written |
/// | `CloseNow` | no | no | no | close now |
///
/// A driver reports the end of stream it reads with
/// [`Protocol::notify_received`]`(0)` and reports its clock through
/// [`Protocol::handle_timeout`], which move the action along (the close
/// timeout turns any of the waiting actions into `CloseNow`). Shutting the
/// write side down is idempotent for the driver: it does it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportAction {
    /// The connection is open (or in its closing handshake): read into
    /// the protocol, write [`Protocol::output`], run the timers.
    KeepOpen,
    /// The closing handshake is complete and this is the client: write the
    /// output, keep reading (and discarding) until the server closes TCP
    /// (RFC 6455 §7.1.1: "the client SHOULD wait for the server to close
    /// the connection"), up to the close timeout.
    AwaitPeerClose,
    /// The connection failed (RFC 6455 §7.1.7): write the output (its close
    /// frame), shut the write side down, and keep reading (and discarding)
    /// until the peer's end of stream or the close timeout, so that closing
    /// a socket with unread input does not reset the connection and
    /// destroy the close frame in flight.
    ShutdownAndLinger,
    /// Write the output, shut the write side down, and close the transport
    /// (RFC 6455 §7.1.1: the server closes TCP first; the client closes
    /// once the server did).
    Close,
    /// Close the transport now, without waiting for the output: the close
    /// timeout expired (the peer reads nothing or never closed). A driver
    /// that cannot drop the transport itself ends it as best it can
    /// without waiting (e.g. one non-blocking shutdown attempt).
    CloseNow,
}

impl TransportAction {
    /// True for the actions that read (and discard) until the peer's end of
    /// stream: [`AwaitPeerClose`](Self::AwaitPeerClose) and
    /// [`ShutdownAndLinger`](Self::ShutdownAndLinger).
    pub fn reads_until_eof(self) -> bool {
        matches!(self, TransportAction::AwaitPeerClose | TransportAction::ShutdownAndLinger)
    }

    /// True for the actions that shut the write side down once the output
    /// is written: [`ShutdownAndLinger`](Self::ShutdownAndLinger) and
    /// [`Close`](Self::Close).
    pub fn shuts_down(self) -> bool {
        matches!(self, TransportAction::ShutdownAndLinger | TransportAction::Close)
    }
}

impl Protocol {
    /// What the driver must do with the transport now (see
    /// [`TransportAction`]). Ask after every batch of input, output and
    /// timers.
    pub fn transport_action(&self) -> TransportAction {
        if self.state != State::Closed {
            return TransportAction::KeepOpen;
        }
        if self.timers.close_expired() {
            // RFC 6455 §7.1.1: the client "MAY close the connection at any
            // time after sending and receiving a Close message, e.g., if it
            // has not received a TCP Close from the server in a reasonable
            // time period"; a failed connection's peer had the same time.
            return TransportAction::CloseNow;
        }
        if self.eof {
            // The peer closed its side: nothing more to wait for.
            return TransportAction::Close;
        }
        if self.failed {
            return TransportAction::ShutdownAndLinger;
        }
        match self.role {
            // RFC 6455 §7.1.1: "the underlying TCP connection, in most
            // normal cases, SHOULD be closed first by the server".
            Role::Server => TransportAction::Close,
            Role::Client => TransportAction::AwaitPeerClose,
        }
    }

    /// True when the connection failed rather than closed cleanly (for the
    /// crate's tests).
    #[cfg(test)]
    pub(crate) fn is_failed(&self) -> bool {
        self.failed
    }
}
