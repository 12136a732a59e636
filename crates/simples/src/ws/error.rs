//! [`WsError`]: why sending on a WebSocket connection, or awaiting its
//! answer, failed.

use std::fmt;

/// Why a WebSocket send or request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The connection is closed or closing.
    Closed,
    /// The connection's outgoing queue is full and the host's policy is
    /// [`SlowPolicy::DropNewest`](crate::ws::SlowPolicy::DropNewest): the
    /// message was discarded.
    Full,
    /// No acknowledgement arrived in time.
    Timeout,
    /// The client's handler answered with an error.
    Remote(String),
    /// The data could not be encoded (JSON, template).
    Encode(String),
    /// No filter of this name was defined with
    /// [`WsHost::filter`](crate::WsHost::filter) on this node.
    UnknownFilter(String),
    /// Presence is off for this host
    /// ([`WsOptions::presence`](crate::ws::WsOptions::presence)).
    PresenceOff,
    /// The backplane failed (presence could not be read).
    Backplane(String),
    /// An [`ObjectClient`](crate::ws::ObjectClient) could not connect.
    Connect(String),
    /// The connection left the channel (unbound by the application, or
    /// the channel closed) while [`Channel::join`](crate::ws::Channel::join)
    /// was recovering it: the join ended, the connection stays open.
    Unbound(String),
    /// The connection is in as many channels as
    /// [`WsOptions::max_channels_per_connection`](crate::ws::WsOptions::max_channels_per_connection)
    /// allows (the limit): a join was refused.
    ChannelLimit(usize),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Closed => f.write_str("the WebSocket connection is closed"),
            WsError::Full => f.write_str("the connection's outgoing queue is full; message dropped"),
            WsError::Timeout => f.write_str("no acknowledgement before the timeout"),
            WsError::Remote(e) => write!(f, "the peer answered with an error: {e}"),
            WsError::Encode(e) => write!(f, "cannot encode the message: {e}"),
            WsError::UnknownFilter(name) => write!(f, "no filter named {name:?} is defined on this node"),
            WsError::PresenceOff => f.write_str("presence is off for this WebSocket host (WsOptions::presence)"),
            WsError::Backplane(e) => write!(f, "{e}"),
            WsError::Connect(e) => write!(f, "cannot connect: {e}"),
            WsError::Unbound(channel) => write!(f, "left channel {channel:?} while joining it"),
            WsError::ChannelLimit(n) => write!(f, "the connection is in {n} channels already, the most it may join"),
        }
    }
}

impl std::error::Error for WsError {}

impl From<WsError> for crate::Error {
    fn from(e: WsError) -> crate::Error {
        crate::Error::new(500, e.to_string())
    }
}
