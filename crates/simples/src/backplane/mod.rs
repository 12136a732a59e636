//! Scale-out: the [`Backplane`] carries broadcasts, channel messages and
//! presence between the nodes (processes) that serve one application.
//!
//! The framework works without one: every broadcast, channel and session
//! then lives in this process, exactly as before. With one configured
//! (a `ws::Relay` in `WsOptions::relay`), a `WsHost` or `Channel` broadcast is
//! delivered to this node's members directly and published once on the
//! backplane; every other node that has members of that channel (and only
//! those: *interest-based routing*) receives it once and delivers it to
//! its own members, encoding the frame once for all of them.
//!
//! ```text
//!   mod.rs     the Backplane trait, topics, presence members, errors, stats
//!   envelope   the versioned binary format of what crosses the backplane
//!   history    HistoryStore: channel history kept by the engine (numbered
//!              and published atomically: the same positions everywhere)
//!   redis      RedisBackplane (feature `redis`): pub/sub on one server or
//!              sharded pub/sub (SSUBSCRIBE/SPUBLISH) on a Redis Cluster,
//!              presence in hashes with node heartbeats
//! ```
//!
//! This module is a leaf: it knows nothing of hosts or connections. The
//! framework names *topics* (one per WebSocket host for host-wide
//! broadcasts, one per channel) and hands the backplane opaque payloads.

mod error;
pub use error::BackplaneError;
mod envelope;
mod history;

pub use envelope::{Envelope, EnvelopeError, Kind, VERSION as ENVELOPE_VERSION};
pub use history::{HistoryAppend, HistoryItem, HistoryRead, HistoryStore, ReadFrom};

use std::sync::Arc;

use bytes::Bytes;
use futures_core::future::BoxFuture;
use serde::{Deserialize, Serialize};

#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
pub use redis::{RedisBackplane, RedisBackplaneOptions};

/// Where a backplane delivers what arrives on a subscribed topic:
/// `(topic, payload)`. Called on the backplane's own task, in the order
/// the engine delivered; it must not block (the framework only queues the
/// message on its local connections).
pub type Receiver = Arc<dyn Fn(&str, Bytes) + Send + Sync>;

/// One member of a channel's presence: a connection somewhere in the
/// cluster and the small JSON value the application attached to it (for
/// example `{"nick": "ana"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceMember {
    /// The node (process) the connection is on: [`Backplane::node_id`].
    pub node: String,
    /// The connection's id on its node (`WsConn::id`).
    pub conn: u64,
    /// What the application attached (`null` when nothing).
    pub info: serde_json::Value,
}


/// A backplane's counters (all since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackplaneStats {
    /// Messages handed to the engine.
    pub published: u64,
    /// Messages that could not be published because the engine was
    /// unreachable or failed (each outage is also logged once).
    pub failed: u64,
    /// Messages dropped because the publish queue was full (the engine is
    /// slower than this node publishes).
    pub dropped: u64,
    /// Messages received on subscribed topics (this node's own included).
    pub received: u64,
    /// Messages that arrived from the engine but were lost before
    /// delivery because this node's receive buffer overflowed (it reads
    /// slower than the engine delivers).
    pub lost: u64,
    /// Topics this node is subscribed to now.
    pub topics: usize,
    /// Times the connection to the engine was lost.
    pub disconnects: u64,
    /// Whether the engine is reachable now.
    pub connected: bool,
}

/// The transport between nodes. Implemented by
/// `RedisBackplane` (feature `redis`);
/// any engine with topic-based publish/subscribe and a small key-value
/// store fits.
///
/// Contract:
/// - [`publish`](Backplane::publish), [`subscribe`](Backplane::subscribe)
///   and [`unsubscribe`](Backplane::unsubscribe) never wait: they queue
///   work for the backplane's own task. `subscribe` and `unsubscribe` are
///   called under the host's channel-table lock (so that the appearances
///   and disappearances of one channel reach the backplane in order): they
///   must only record the change, never block nor call back into the
///   framework. Messages published by one node on
///   one topic reach every subscribed node in the order they were
///   published.
/// - Subscriptions survive reconnections: after the engine comes back the
///   backplane subscribes again to every topic subscribed and not
///   unsubscribed since.
/// - A node receives its own publications too (it is subscribed); the
///   framework recognises and skips them, so the backplane need not.
/// - Presence entries of a node that stops heartbeating (it died) expire
///   within [`presence_ttl`](Backplane::presence_ttl).
pub trait Backplane: Send + Sync + 'static {
    /// This node's id: unique per process run, at most 64 bytes of
    /// `[A-Za-z0-9_-]`.
    fn node_id(&self) -> &str;

    /// Sets where messages on subscribed topics go. The framework calls it
    /// once, before its first subscription; a later call replaces it.
    fn set_receiver(&self, receiver: Receiver);

    /// Starts receiving `topic` (idempotent).
    fn subscribe(&self, topic: &str);

    /// Stops receiving `topic` (idempotent).
    fn unsubscribe(&self, topic: &str);

    /// Queues `payload` for every node subscribed to `topic`. Never waits;
    /// [`BackplaneError::Full`] when the queue towards the engine is full
    /// (the message is dropped and counted).
    fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BackplaneError>;

    /// Records `member` in `topic`'s presence (replacing an entry with the
    /// same node and connection).
    fn presence_join(&self, topic: &str, member: PresenceMember) -> BoxFuture<'static, Result<(), BackplaneError>>;

    /// Removes connection `conn` of this node from `topic`'s presence.
    fn presence_leave(&self, topic: &str, conn: u64) -> BoxFuture<'static, Result<(), BackplaneError>>;

    /// Every live member of `topic`, on every node. Members of nodes whose
    /// heartbeat expired are left out (and removed).
    fn presence(&self, topic: &str) -> BoxFuture<'static, Result<Vec<PresenceMember>, BackplaneError>>;

    /// How long a dead node's presence entries can linger.
    fn presence_ttl(&self) -> std::time::Duration;

    /// The counters.
    fn stats(&self) -> BackplaneStats;

    /// Channel history kept by the engine, when it can: then positions are
    /// the same on every node. Default: `None` (each node keeps its own
    /// history in memory).
    fn history(&self) -> Option<Arc<dyn HistoryStore>> {
        None
    }

    /// Resolves once `topic` (subscribed with [`subscribe`](Backplane::subscribe))
    /// is active in the engine: what is published from then on reaches
    /// this node. Default: at once.
    fn subscribed(&self, topic: &str) -> BoxFuture<'static, ()> {
        let _ = topic;
        Box::pin(async {})
    }
}
