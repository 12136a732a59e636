//! The driver layer's one error type.

use crate::handshake::HandshakeError;
use crate::proto::ProtocolError;
use std::fmt;
use std::io;

/// Everything that can go wrong while driving a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// The opening handshake failed (the HTTP answer was already sent).
    Handshake(HandshakeError),
    /// The protocol failed; for peer violations the close frame with
    /// [`ProtocolError::close_code`] was sent.
    Protocol(ProtocolError),
    /// The connection is closed: the closing handshake finished (the close
    /// frame was already returned by `recv`) or an earlier error ended it.
    Closed,
    /// A feature this build or this call cannot provide (e.g. `wss://`).
    Unsupported(&'static str),
}

impl Error {
    /// The close code sent to the peer because of this error, if any.
    pub fn close_code(&self) -> Option<crate::CloseCode> {
        match self {
            Error::Protocol(e) => e.close_code(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Closed => f.write_str("connection closed"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}
