//! Channel history and recovery after a reconnection.
//!
//! A channel keeps a history when the host's policy
//! ([`WsHost::history`](crate::WsHost::history)) gives it
//! [`HistoryOptions`]. Each message published on it then gets a
//! [`Position`]: an *epoch* (a random string that changes whenever the
//! history is lost, e.g. a restarted node or an expired Redis stream) and
//! an *offset* that grows by one per message. In object mode the position
//! travels with the message as extra fields
//! (`{"event", "data", "channel", "epoch", "offset"}`, see
//! `assets/PROTOCOL.md`), so a client remembers the last one it saw and,
//! when it joins again after a reconnection, gets exactly what it missed.
//!
//! ```text
//!   mod.rs    the per-host History's methods and the numbered
//!             publication (one lock per channel: numbering and
//!             delivery happen together, so every member receives the
//!             channel's messages in offset order), reads from the
//!             backend in use
//!   types     options, positions, entries, epochs (a leaf)
//!   numbered  a numbered message's wire form and its delivery to the
//!             members (both backends use it)
//!   memory    the in-process backend (default)
//!   recover   the recovery of one connection: live messages buffered
//!             while history is read, then deduplicated by offset; the
//!             `@join` and `@leave` requests of the object protocol,
//!             `Channel::join` (on top: it binds through `Channel`)
//!   store     the backplane's history store (the Redis backend, with a
//!             RedisBackplane on one Redis server)
//! ```
//!
//! Ordering guarantee: on one node, the members of a channel receive its
//! messages in offset order, and a recovered connection receives the
//! missed ones then the live ones with no gap and no duplicate. With the
//! Redis backend, Redis numbers the message and publishes it in the same
//! script, so every node (the publisher included) delivers in offset order.

mod memory;
mod numbered;
mod recover;
mod store;
mod types;

use std::sync::{Arc, RwLock};

use simples_ws::{Message, PreparedFrame};

use super::encode::prepare;
use super::outbox::{Out, Pushed};
use super::relay::channel_topic;
use super::state::{FilterFn, History, JoinFn, PolicyFn, WsConn, WsHost, WsShared};
use crate::backplane::{HistoryStore, Kind};

pub(crate) use memory::Memory;
pub(crate) use numbered::{deliver_all, object_head, wire_message};
pub(crate) use store::deliver_numbered;
pub use types::{HistoryEntry, HistoryOptions, Position, Recovery};
pub(crate) use types::{lock, new_epoch, Usage};

fn read<T: Clone>(l: &RwLock<Option<T>>) -> Option<T> {
    l.read().unwrap_or_else(|e| e.into_inner()).clone()
}

impl History {
    pub(crate) fn set_policy(&self, policy: PolicyFn) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(policy);
    }

    pub(crate) fn set_join(&self, hook: JoinFn) {
        *self.join.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// The backplane's history store when the host has a relay whose
    /// backplane keeps history (Redis), else `None` (memory).
    pub(crate) fn store(&self, host: &WsShared) -> Option<Arc<dyn HistoryStore>> {
        self.store.get_or_init(|| host.options.relay.as_ref().and_then(|r| r.backplane().history())).clone()
    }

    pub(crate) fn join_hook(&self) -> Option<JoinFn> {
        read(&self.join)
    }

    /// The options of channel `name` (`None`: it keeps no history). Runs
    /// the application's policy with no lock held.
    pub(crate) fn options_for(&self, name: &str) -> Option<HistoryOptions> {
        let policy = read(&self.policy)?;
        policy(name).map(|o| HistoryOptions { size: o.size.max(1), ..o })
    }
}

/// A data message's kind (`true`: binary) and payload bytes (shared, not
/// copied); `None` for a control message, which no history keeps.
fn data_payload(message: &Message) -> Option<(bool, bytes::Bytes)> {
    match message {
        Message::Text(t) => Some((false, t.as_bytes().clone())),
        Message::Binary(b) => Some((true, b.clone())),
        _ => None,
    }
}

/// A channel broadcast on history channel `name`: numbered and delivered
/// here, then relayed (with the memory backend each node numbers what it
/// delivers: positions are per node, and a client that moves to another
/// node gets `recovered: false`); with the Redis backend, numbered by
/// Redis and delivered by every node when it comes back from Redis.
pub(crate) fn publish(
    host: &WsShared,
    name: &str,
    message: Message,
    options: HistoryOptions,
    except: Option<u64>,
    named: Option<FilterFn>,
    named_name: Option<&str>,
) -> usize {
    if let Some(store) = host.history.store(host) {
        return store::publish(host, &store, name, message, options, except, named_name);
    }
    let Some((binary, payload)) = data_payload(&message) else { return 0 };
    let queued = publish_local(host, name, message, options, except, named);
    if host.options.relay.is_some() {
        let except = except.map(|id| (host.node_id().to_string(), id));
        let envelope = host.envelope(Kind::ChannelBroadcast, name, except, named_name, binary, payload);
        host.publish(&channel_topic(&host.path, name), &envelope);
    }
    queued
}

/// Publishes `message` on history channel `name` of this node: numbers it
/// and delivers it to the members under the channel's history lock (so
/// members receive the channel in offset order; a recovering member's copy
/// goes to its recovery buffer). `except` and `named` (evaluated before,
/// with no lock held, on the members of the moment: members who join in
/// between receive the message) pick the audience. Slow-client hooks run
/// after the lock is released. Returns how many members queued it.
pub(crate) fn publish_local(
    host: &WsShared,
    name: &str,
    message: Message,
    options: HistoryOptions,
    except: Option<u64>,
    named: Option<FilterFn>,
) -> usize {
    let Some((binary, payload)) = data_payload(&message) else { return 0 };
    let excluded: Vec<u64> = match &named {
        Some(filter) => host
            .rooms
            .snapshot(name)
            .map(|m| m.iter().filter(|c| !filter(c)).map(|c| c.id()).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let log = host.history.memory.log(name, options, host.options.max_history_channels, |n| host.rooms.has(n));
    let mut slow = Vec::new();
    let queued = {
        let mut log = lock(&log);
        let position = log.append(&host.history.memory, payload.clone(), binary);
        let wire = wire_message(host.options.mode, name, &position, &payload, binary);
        let Some(frame) = prepare(host, wire) else { return 0 };
        let targets = host.rooms.snapshot(name).unwrap_or_default();
        let keep = |c: &&WsConn| Some(c.id()) != except && !excluded.contains(&c.id());
        deliver_all(host, name, position.offset, &frame, targets.iter().filter(keep), &mut slow)
    };
    for (conn, action) in slow {
        host.slow(&conn, action);
    }
    queued
}

/// Reads channel `name`'s history after `since` (`None`: only its latest
/// position), from the backend in use.
pub(crate) async fn read_since(
    host: &WsShared,
    name: &str,
    options: HistoryOptions,
    since: Option<&Position>,
) -> Result<memory::Since, super::WsError> {
    if let Some(store) = host.history.store(host) {
        return store::since(host, &store, name, options, since).await;
    }
    let log = host.history.memory.log(name, options, host.options.max_history_channels, |n| host.rooms.has(n));
    let mut log = lock(&log);
    log.set_options(options);
    Ok(match since {
        Some(p) => log.since(&host.history.memory, p),
        None => {
            log.touch(&host.history.memory);
            memory::Since { top: log.top(), complete: true, entries: Vec::new() }
        }
    })
}

/// The latest `limit` messages of channel `name`, oldest first.
pub(crate) async fn recent(host: &WsShared, name: &str, limit: usize) -> Result<Vec<HistoryEntry>, super::WsError> {
    let Some(options) = host.history.options_for(name) else { return Ok(Vec::new()) };
    let limit = limit.min(options.size);
    if let Some(store) = host.history.store(host) {
        return store::recent(host, &store, name, options, limit).await;
    }
    let Some(log) = host.history.memory.existing(name) else { return Ok(Vec::new()) };
    let mut log = lock(&log);
    Ok(log.recent(&host.history.memory, limit))
}

/// Queues a frame on `conn` (a leaf lock), returning the outcome.
pub(crate) fn push_frame(host: &WsShared, conn: &WsConn, frame: &Arc<PreparedFrame>) -> Pushed {
    conn.inner.outbox().push(Out::Frame(frame.clone()), &host.limits)
}

impl WsHost {
    /// Keeps a history for the channels `policy` gives options for (called
    /// with the channel's name at each publication and join; return `None`
    /// for channels without history; define the same policy on every
    /// node). Their messages get positions, [`Channel::history`](crate::ws::Channel::history)
    /// returns the latest, and clients that join again after a
    /// reconnection get what they missed. The memory backend by default;
    /// with a relay on a Redis backplane, the history lives in Redis and
    /// positions are the same on every node. Default: no channel keeps
    /// history.
    ///
    /// ```no_run
    /// # fn f(chat: &simples::WsHost) {
    /// use simples::ws::HistoryOptions;
    /// chat.history(|channel| (!channel.starts_with('@')).then(HistoryOptions::default));
    /// # }
    /// ```
    pub fn history(&self, policy: impl Fn(&str) -> Option<HistoryOptions> + Send + Sync + 'static) -> &Self {
        self.shared.history.set_policy(Arc::new(policy));
        self
    }

    /// Lets clients join channels themselves with the object protocol's
    /// `@join` request (`socket.join(channel)` in simples.js), which is
    /// what recovers missed messages after a reconnection: `hook` decides
    /// (`Err(reason)` refuses; the client's request fails with it), then
    /// the connection is bound, replaying from the position the client
    /// gave. Without a hook, `@join` is refused. `@leave` is always
    /// accepted.
    pub fn on_join<F, Fut>(&self, hook: F) -> &Self
    where
        F: Fn(WsConn, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.shared.history.set_join(Arc::new(move |c, n| Box::pin(hook(c, n))));
        self
    }
}
