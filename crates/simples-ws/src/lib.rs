//! # simples-ws: the WebSocket protocol (RFC 6455), from scratch
//!
//! ## Architecture
//!
//! (The whole project's map, both crates and the tooling, is
//! `ARCHITECTURE.md` at the repository's root.)
//!
//! The crate is layered so that the protocol can be tested, fuzzed and
//! driven by any I/O model:
//!
//! ```text
//!   handshake/   sans-IO opening handshake (HTTP via httparse): request
//!                parsing and validation, 101/4xx responses, client
//!                request and response checks
//!   frame/       frame header parsing (resumable) and encoding
//!   mask, utf8   payload masking, incremental UTF-8 validation
//!   proto/       THE state machine: bytes in -> messages out, messages in
//!                -> bytes out, timers; never touches a socket or a clock
//!   extension    the hook in the frame pipeline for extensions
//!   deflate/     permessage-deflate (RFC 7692) on that hook: negotiation,
//!                codec, memory budget  (feature "deflate", on by default)
//!   tokio/       a thin driver: accept/connect over AsyncRead + AsyncWrite,
//!                a split into a cloneable bounded sender and a
//!                cancel-safe receiver  (feature "tokio", on by default)
//!   axum         an axum extractor, `axum::WebSocketUpgrade` (feature
//!                "axum"); hyper apps use `handshake::ServerPolicy` and
//!                `tokio::WebSocket::from_upgraded` (feature "http", on)
//! ```
//!
//! Each layer has one error type: [`handshake::HandshakeError`] (carries the
//! HTTP status to answer with), [`ProtocolError`] (carries the close code to
//! fail the connection with) and, in the driver, `tokio::Error`.
//!
//! The sans-IO core is used like this:
//!
//! ```
//! use simples_ws::{Config, Message, Protocol, Role};
//!
//! let mut server = Protocol::new(Role::Server, Config::default());
//! let mut client = Protocol::new(Role::Client, Config::default());
//! client.send(Message::text("hello")).unwrap();
//!
//! // Move the client's bytes to the server, as a socket would.
//! let out = client.output();
//! let bytes = out.first_chunk().to_vec();
//! out.advance(bytes.len());
//! server.receive(&bytes);
//!
//! assert_eq!(server.poll_message().unwrap(), Some(Message::text("hello")));
//! assert_eq!(server.poll_message().unwrap(), None); // needs more bytes
//! ```

#![warn(missing_docs)]

pub mod close;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
mod message;
pub mod proto;
mod text;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use extension::Extension;
pub use message::{DataKind, Message};
pub use proto::{Config, PreparedFrame, Protocol, ProtocolError, Role, State};
pub use text::Utf8Bytes;

#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(feature = "mio")]
pub mod event_loop;
#[cfg(feature = "axum")]
pub mod axum;

