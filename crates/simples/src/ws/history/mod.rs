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
//!   mod.rs    options, positions, entries, the per-host History and the
//!             numbered publication (one lock per channel: numbering and
//!             delivery happen together, so every member receives the
//!             channel's messages in offset order)
//!   memory    the in-process backend (default)
//!   recover   the recovery of one connection: live messages buffered
//!             while history is read, then deduplicated by offset; the
//!             `@join` and `@leave` requests of the object protocol
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
mod recover;
mod store;

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use simples_ws::{Message, PreparedFrame, Utf8Bytes};

use super::conn::WsConn;
use super::host::{prepare, FilterFn, WsShared};
use super::options::{Mode, SlowAction};
use super::outbox::{Out, Pushed};
use super::relay::channel_topic;
use super::WsHost;
use crate::backplane::{HistoryStore, Kind};
use crate::handler::BoxFuture;

pub(crate) use memory::Memory;
pub(crate) use recover::{builtin_event, recover, Recovering};
pub(crate) use store::deliver_numbered;

/// How much history a channel keeps: at most `size` messages, none older
/// than `ttl`, whichever is smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// The most messages kept (the oldest go first). Default: `100`.
    /// At least 1.
    pub size: usize,
    /// How long a message is kept. Default: 2 minutes.
    pub ttl: Duration,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { size: 100, ttl: Duration::from_secs(120) }
    }
}

/// Where a message stands in its channel's history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Changes whenever the history is lost (a new one starts at offset 1).
    pub epoch: String,
    /// The message's number in the epoch: 1 for the first, then +1 each.
    pub offset: u64,
}

/// A message of a channel's history, from [`Channel::history`](crate::ws::Channel::history).
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Its position.
    pub position: Position,
    /// The message as it was published (without the position fields).
    pub message: Message,
}

/// What [`Channel::join`](crate::ws::Channel::join) (and a client's
/// `@join`) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Whether the connection is now complete: every message after the
    /// position it gave was replayed (trivially `true` when it gave none).
    /// `false` when the gap could not be filled (the messages were
    /// trimmed, the epoch changed, or the channel keeps no history): the
    /// application should reload its state.
    pub recovered: bool,
    /// The position of the last message sent to the connection before
    /// live delivery took over (the channel's latest when nothing was
    /// replayed); `None` when the channel keeps no history.
    pub position: Option<Position>,
    /// How many missed messages were replayed.
    pub replayed: usize,
}

/// History memory of a host, counted in [`WsStats`](crate::ws::WsStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) channels: usize,
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

type PolicyFn = Arc<dyn Fn(&str) -> Option<HistoryOptions> + Send + Sync>;
pub(crate) type JoinFn = Arc<dyn Fn(WsConn, String) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A host's history: its policy, its backend, the connections recovering.
#[derive(Default)]
pub(crate) struct History {
    policy: RwLock<Option<PolicyFn>>,
    join: RwLock<Option<JoinFn>>,
    pub(crate) memory: Memory,
    /// The backplane's history store, looked up once.
    store: std::sync::OnceLock<Option<Arc<dyn HistoryStore>>>,
    pub(crate) recovering: Recovering,
}

fn read<T: Clone>(l: &RwLock<Option<T>>) -> Option<T> {
    l.read().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

/// An epoch: 16 random hex digits.
pub(crate) fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields an object-mode message of a history channel carries after
/// its own: `,"channel":..,"epoch":..,"offset":` (the offset follows).
fn position_fields(channel: &str, epoch: &str) -> String {
    format!("{}{epoch}\",\"offset\":", store::channel_fields(channel))
}

/// `text` (a JSON object) with the position added as its last fields;
/// `None` when `text` is not a JSON object (plain mode's free text).
pub(crate) fn splice(text: &str, channel: &str, epoch: &str, offset: u64) -> Option<String> {
    let (head, empty) = object_head(text)?;
    let fields = position_fields(channel, epoch);
    let fields = if empty { &fields[1..] } else { &fields[..] };
    Some(format!("{head}{fields}{offset}}}"))
}

/// The JSON object `text` without its closing brace, and whether it is
/// empty (`{}`); `None` if `text` is not `{...}`.
pub(crate) fn object_head(text: &str) -> Option<(&str, bool)> {
    let t = text.trim_end();
    if !t.trim_start().starts_with('{') || !t.ends_with('}') {
        return None;
    }
    let head = &t[..t.len() - 1];
    let empty = head.trim_start().strip_prefix('{').is_some_and(|rest| rest.trim().is_empty());
    Some((head, empty))
}

/// The message a member receives for a history entry: with its position
/// in object mode when it is a JSON object, as published otherwise.
pub(crate) fn wire_message(mode: Mode, channel: &str, position: &Position, payload: &Bytes, binary: bool) -> Message {
    if binary {
        return Message::Binary(payload.clone());
    }
    let Ok(text) = std::str::from_utf8(payload) else { return Message::Binary(payload.clone()) };
    if mode == Mode::Object {
        if let Some(spliced) = splice(text, channel, &position.epoch, position.offset) {
            return Message::text(spliced);
        }
    }
    match Utf8Bytes::try_from_bytes(payload.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Binary(payload.clone()),
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
    let log = host.history.memory.log(name, options);
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

/// Delivers one numbered frame to `targets` (see [`publish_local`]);
/// slow-client actions are collected in `slow` for after the locks.
pub(crate) fn deliver_all<'a>(
    host: &WsShared,
    channel: &str,
    offset: u64,
    frame: &Arc<PreparedFrame>,
    targets: impl Iterator<Item = &'a WsConn>,
    slow: &mut Vec<(WsConn, SlowAction)>,
) -> usize {
    let metrics = host.metrics();
    metrics.broadcasts.increment(1);
    let mut queued = 0;
    for conn in targets {
        match host.history.recovering.deliver(host, conn, channel, offset, frame) {
            None => queued += 1, // buffered for the recovery
            Some(pushed) => {
                if pushed.wakes() {
                    conn.inner.wake.notify();
                }
                if matches!(pushed, Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_)) {
                    queued += 1;
                }
                if let Some(action) = pushed.slow_action() {
                    slow.push((conn.clone(), action));
                }
            }
        }
    }
    metrics.sent(queued, frame.as_bytes().len());
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
    let log = host.history.memory.log(name, options);
    let mut log = lock(&log);
    log.set_options(options);
    Ok(match since {
        Some(p) => log.since(&host.history.memory, p),
        None => memory::Since { top: log.top(), complete: true, entries: Vec::new() },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_spliced_into_objects_only() {
        assert_eq!(
            splice(r#"{"event":"said","data":1}"#, "lobby", "e1", 7).unwrap(),
            r#"{"event":"said","data":1,"channel":"lobby","epoch":"e1","offset":7}"#
        );
        assert_eq!(splice("{ }", "a\"b", "e", 1).unwrap(), r#"{ "channel":"a\"b","epoch":"e","offset":1}"#);
        assert_eq!(splice("hello", "c", "e", 1), None);
        assert_eq!(splice("[1]", "c", "e", 1), None);
        let spliced = splice(r#"{"event":"x"}"#, "ch", "ep", 3).unwrap();
        let value: serde_json::Value = serde_json::from_str(&spliced).unwrap();
        assert_eq!(value["offset"], 3);
        assert_eq!(value["channel"], "ch");
    }

    #[test]
    fn epochs_differ() {
        let (a, b) = (new_epoch(), new_epoch());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
