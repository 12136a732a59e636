//! WebSocket hosts: text, binary and object mode, broadcasting, channels.
//!
//! [`Host::ws`](crate::Host::ws) adds a WebSocket endpoint to an HTTP host
//! and returns its [`WsHost`]; each connection is a [`WsConn`].
//!
//! ```text
//!   options    WsOptions (limits, origins, subprotocols, idle timeout,
//!              mode, deflate, queue limits and the slow-client policy)
//!   handshake  RFC 6455 §4.2 on hyper's parsed request: validation,
//!              origin check, authorize hook, subprotocol, deflate, 101
//!   host       WsHost: handlers, the connection registry, broadcasts
//!              (encoded once), stats, graceful shutdown
//!   channel    Channel: named groups of connections
//!   conn       WsConn: the request it came with, the session shared with
//!              HTTP, sends through the bounded outbox, requests with acks
//!   outbox     the bounded per-connection queue and the slow policy
//!   driver     the task running one connection over simples-ws
//!   signal     the lock-free wake-up of a connection's task
//!   object     object mode's JSON wire format (assets/PROTOCOL.md)
//!   client     simples.js, the browser client, served by `serve_client`
//! ```
//!
//! Locks are short and never held across an await. The registry of
//! connections and the channel table are never held together; either may
//! be held while taking a connection's outbox or channel-list lock, which
//! are leaves. User hooks (`on_slow`, `on_channel`) run with no lock held;
//! broadcast filters run under the registry's or the table's read side, so
//! a filter must not bind or unbind.
//!
//! Memory per connection is bounded whatever the client does: incoming
//! messages by `max_message_size` and `max_pending_messages`, outgoing by
//! the outbox limits, which bound what waits behind one message of any size
//! (see `WsOptions::max_queued_bytes` for the bound). One slow client never
//! delays the others: a broadcast only queues shared bytes and never waits.

mod channel;
mod client;
mod conn;
mod driver;
mod error;
mod handshake;
mod host;
mod object;
mod options;
mod outbox;
mod signal;

pub use channel::{Channel, ChannelEvent};
pub use conn::WsConn;
pub use error::WsError;
pub use host::{Ack, IntoAck, WsHost, WsStats};
pub use options::{Mode, Origins, SlowAction, SlowPolicy, WsOptions};
pub use client::SIMPLES_JS;
pub(crate) use handshake::handshake;
#[doc(hidden)]
pub use object::fuzz_check as __fuzz_object;

/// The protocol layer's types used in this API.
pub use simples_ws::deflate::DeflateConfig;
pub use simples_ws::{CloseCode, CloseFrame, Message, Utf8Bytes};
