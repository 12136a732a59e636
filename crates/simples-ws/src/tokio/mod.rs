//! The tokio driver: a thin layer that moves bytes between a transport and
//! the sans-IO [`Protocol`](crate::Protocol).
//!
//! - [`accept`] / [`accept_with`]: the server handshake over any
//!   `AsyncRead + AsyncWrite` (a `TcpStream`, a TLS stream, ...);
//! - [`ServerHandshake`]: the same in two steps, for an authorization
//!   that `.await`s (a database lookup) before accepting or refusing;
//! - [`connect`] / [`client_handshake`]: the client side;
//! - [`WebSocket`]: one connection driven from one task (`recv` is
//!   cancel-safe and does all the protocol's housekeeping);
//! - [`WebSocket::split`]: a cloneable, bounded [`Sender`] and a
//!   [`Receiver`], for sending from many tasks;
//! - `futures` traits: `WebSocket` is a `Stream` and a `Sink<Message>`,
//!   `Receiver` a `Stream` (see the `futures` module below).
//!
//! No queue is unbounded: the send queue is limited in bytes, and the
//! receive side reads only when the application asks for a message.
//!
//! **SIGPIPE**: the driver writes through the transport's `AsyncWrite`;
//! for a tokio `TcpStream` several frames go out with `writev`, which
//! raises SIGPIPE when the peer reset the connection. Rust's `main` ignores
//! SIGPIPE, so a Rust program is not affected; a program that embeds the
//! driver and restores the signal's default action must ignore it itself
//! (`signal(SIGPIPE, SIG_IGN)`), or it is killed by a peer's reset. (The
//! mio event loop writes with `MSG_NOSIGNAL` and needs nothing.)

mod accept;
mod connect;
mod error;
mod futures;
mod io;
mod split;
mod stream;
mod upgraded;

pub use accept::{accept, accept_with, Accept, AcceptOptions, ServerHandshake};

/// The former name of [`AcceptOptions`], kept for a while.
#[deprecated(note = "renamed `AcceptOptions` (`simples::ServerOptions` is the framework server's)")]
pub type ServerOptions = AcceptOptions;
pub use connect::{client_handshake, connect, connect_with, CONNECT_TIMEOUT};
#[cfg(feature = "deflate")]
pub use connect::{client_handshake_with_deflate, connect_with_deflate};
pub use error::Error;
pub use split::{Receiver, Sender, TrySendError};
pub use stream::{Drive, WebSocket};
