//! WebSocket hosts: text, binary and object mode, broadcasting, channels.
//!
//! [`Host::ws`](crate::Host::ws) adds a WebSocket endpoint to an HTTP host
//! and returns its [`WsHost`]; each connection is a [`WsConn`].
//!
//! ```text
//!   options    WsOptions (limits, origins, subprotocols, idle timeout,
//!              mode, deflate, queue limits and the slow-client policy)
//!   mount      Host::ws: the handshake route, and the WsHost registered
//!              with its HTTP host (started and stopped with the server)
//!   admission  connection limits (in all and per client IP, 503)
//!   handshake  RFC 6455 §4.2 on hyper's parsed request: validation,
//!              origin check, authorize hook, subprotocol, deflate, 101
//!   state      the types the host, its connections, channels and
//!              histories share (WsShared, WsConn, Members, Rooms,
//!              History): a leaf, so that the modules below import each
//!              other one way only (the order is in state's docs)
//!   host       WsHost: handlers, the connection registry, broadcasts
//!              (encoded once), stats, graceful shutdown
//!   encode     a broadcast's frame, encoded once (deflate included)
//!   channel    Channel: named groups of connections, one lock per room
//!   history    channel history (memory or Redis) and recovery after a
//!              reconnection (`@join` from a position)
//!   members    a set of connections with a shared snapshot (registry,
//!              channel members)
//!   conn       WsConn: the request it came with, the session shared with
//!              HTTP, sends through the bounded outbox, requests with acks
//!   request    what a connection keeps of its handshake request, in one
//!              compact allocation (parsed on demand)
//!   outbox     the bounded per-connection queue and the slow policy
//!   looped     the event loops running plain-TCP connections after the
//!              101 (N threads, shared by the hosts of a server with the
//!              same count; simples-ws's mio loop): the default
//!              (`WsOptions::event_loop`)
//!   direct     a broadcast made on a loop's thread to that loop's
//!              connections: frames written straight into their outputs
//!              while their outboxes are empty
//!   driver     a connection as a tokio task over simples-ws (TLS, or
//!              `event_loop: false`)
//!   jobs       what both do the same way: messages become jobs for the
//!              handlers (one at a time, in order), the outbox moves into
//!              the protocol by bursts
//!   signal     the lock-free wake-up of a connection (its task, or its
//!              loop through the connection's waker)
//!   trim       gives the heap's free pages back after a burst of
//!              handshakes (glibc's `malloc_trim`)
//!   object     object mode's JSON wire format (assets/PROTOCOL.md)
//!   object_client  ObjectClient: a Rust client for object-mode hosts
//!              (requests, handlers, reconnection with backoff, a queue)
//!   relay      Relay: this node's link to a backplane (scale-out): routes
//!              remote broadcasts to hosts, subscribes channels by interest
//!   presence   PresenceEvent: joins and leaves, local and remote
//!   metrics    the host's counters through the `metrics` facade
//!   client     simples.js, the browser client, and simples.d.ts, its
//!              TypeScript declarations, served by `serve_client`
//! ```
//!
//! Locks are short and never held across an await, and no user code
//! (handlers, broadcast filters, `on_slow`, `on_channel`) runs while one is
//! held. The registry of connections and each channel keep their members
//! in a `members` set whose snapshot broadcasts iterate with no lock
//! held; each channel has its own lock (see `channel` for the order).
//! A connection's outbox lock is a leaf.
//!
//! An idle connection holds 842 bytes of heap on the event loops (882 with
//! the default idle timeout; counted by `tests/ws_memory_budget.rs`, which
//! fails past 1 KiB): the loop's slab entry (the socket and the protocol
//! state, 312), the framework's entry in its loop, the `WsConn` (248), the
//! request head in one allocation (`request`, ~30 without the handshake's
//! own headers, route parameters included) and the connection's waker
//! (40). As a tokio task it is
//! 1,522 B: the task and the I/O
//! registration (512) and the timer are the tokio model's floor, which is
//! why plain-TCP connections moved to the loops (`ARCHITECTURE.md`,
//! "Memory per WebSocket connection"). In RSS, what counts too is where
//! those bytes sit: the loop's thread makes the connection's lasting
//! allocations itself (`state::Adoption`), away from the handshake's freed
//! buffers, and `trim` returns those buffers' pages after a burst.
//!
//! Memory per connection is bounded whatever the client does: incoming
//! messages by `max_message_size` and `max_pending_messages`, outgoing by
//! the outbox limits, which bound what waits behind one message of any size
//! (see `WsOptions::max_queued_bytes` for the bound). One slow client never
//! delays the others: a broadcast only queues shared bytes and never waits.

mod admission;
mod channel;
mod client;
mod conn;
mod direct;
mod driver;
mod encode;
mod error;
mod handshake;
mod jobs;
mod looped;
mod history;
mod host;
mod members;
mod metrics;
mod mount;
mod object;
mod object_client;
mod options;
mod outbox;
mod presence;
mod relay;
mod request;
mod signal;
mod state;
mod trim;

pub use channel::Channel;
pub use error::WsError;
pub use history::{HistoryEntry, HistoryOptions, Position, Recovery};
pub use host::{Ack, IntoAck, WsStats};
pub use options::{Mode, Origins, SlowAction, SlowPolicy, WsOptions};
pub use object_client::{ClientEvent, ObjectClient, ObjectClientOptions};
pub use presence::PresenceEvent;
pub use relay::Relay;
pub use state::{ChannelEvent, WsConn, WsHost};
pub use crate::backplane::PresenceMember;
pub use client::{SIMPLES_D_TS, SIMPLES_JS};
pub(crate) use handshake::same_authority;
#[cfg(feature = "redis")]
pub(crate) use history::new_epoch;
#[doc(hidden)]
pub use object::fuzz_check as __fuzz_object;

/// The protocol layer's types used in this API.
pub use simples_ws::deflate::DeflateConfig;
pub use simples_ws::{CloseCode, CloseFrame, Message, Utf8Bytes};
