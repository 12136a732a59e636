//! Recovery: a connection joins a history channel from a position and
//! receives exactly what it missed, then the live messages.
//!
//! The boundary between replay and live delivery: the connection is
//! registered as *recovering* on the channel **before** it is bound, so
//! every live message numbered after the bind goes to its recovery buffer
//! (bounded) instead of its outbox. History is then read (any message
//! numbered before the bind is in it: numbering and the member snapshot
//! happen under the channel's history lock), the missed messages are
//! queued, and finally, under the buffers' lock (which live delivery
//! takes too), the buffered messages newer than the last one replayed are
//! queued in order and the registration removed: later messages go
//! straight to the outbox, behind them. A buffer that overflowed, or that
//! starts after a gap (a Redis subscription that was not active yet),
//! is discarded and history read again from the last message queued.
//! With the Redis store the read's reply and the live messages come on
//! different connections: a message the read returned may still arrive
//! live afterwards, so the entry stays as a *floor* (the last offset
//! sent) that drops such late copies, until the first newer message (or
//! the connection leaves the channel).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use simples_ws::PreparedFrame;

use super::{lock, push_frame, read_since, wire_message, Position, Recovery};
use crate::ws::channel::{Binding, Channel};
use crate::ws::error::WsError;
use crate::ws::options::SlowAction;
use crate::ws::outbox::{Out, Pushed};
use crate::ws::state::{read, Buffer, EventFn, Members, Recovering, WsConn, WsShared};

/// How many times a recovery reads history again (its buffer overflowed
/// or had a gap) before it gives up and closes the connection (1013).
const MAX_ROUNDS: usize = 8;

impl Recovering {
    /// Delivers a numbered frame to `conn`: into its recovery buffer
    /// (`None`) when it is recovering `channel`, else into its outbox.
    pub(crate) fn deliver(
        &self,
        host: &WsShared,
        conn: &WsConn,
        channel: &str,
        offset: u64,
        frame: &Arc<PreparedFrame>,
    ) -> Option<Pushed> {
        if self.active.load(Ordering::SeqCst) > 0 {
            let mut buffers = lock(&self.buffers);
            let key = (conn.id(), channel.to_string());
            if let Some(buffer) = buffers.get_mut(&key) {
                if let Some(floor) = buffer.floor {
                    if offset <= floor {
                        return None; // already replayed
                    }
                    buffers.remove(&key);
                    self.active.fetch_sub(1, Ordering::SeqCst);
                    return Some(push_frame(host, conn, frame));
                }
                if buffer.frames.len() < buffer.cap {
                    buffer.frames.push((offset, frame.clone()));
                } else {
                    buffer.overflowed = true;
                    buffer.frames.clear();
                }
                return None;
            }
        }
        // Not recovering (or its recovery has flushed its buffer, under the
        // lock, before this message): straight to the outbox.
        Some(push_frame(host, conn, frame))
    }

    /// Whether some recovery runs.
    pub(crate) fn any(&self) -> bool {
        self.active.load(Ordering::SeqCst) > 0
    }

    /// Registers a recovery of `key`: its number, or `None` if one runs.
    fn register(&self, key: (u64, String), cap: usize) -> Option<u64> {
        let mut buffers = lock(&self.buffers);
        if buffers.contains_key(&key) {
            return None;
        }
        let recovery = self.numbered.fetch_add(1, Ordering::Relaxed) + 1;
        buffers.insert(key, Buffer { recovery, room: None, frames: Vec::new(), overflowed: false, cap, floor: None });
        self.active.fetch_add(1, Ordering::SeqCst);
        Some(recovery)
    }

    /// Removes `key`'s entry if `keep` does not keep it.
    fn unregister(&self, key: &(u64, String), keep: impl FnOnce(&Buffer) -> bool) {
        let mut buffers = lock(&self.buffers);
        if buffers.get(key).is_some_and(|b| !keep(b)) {
            buffers.remove(key);
            self.active.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Recovery `recovery` of `key` bound its connection into `room`
    /// (called under the room's lock, with the membership).
    fn bound(&self, key: &(u64, String), recovery: u64, room: &Arc<Members>) {
        if let Some(buffer) = lock(&self.buffers).get_mut(key).filter(|b| b.recovery == recovery) {
            buffer.room = Some(room.clone());
        }
    }

    /// `conn` left room `room` of channel `name`: the entry of a recovery
    /// that bound it there (a floor, or a recovery's buffer: that recovery
    /// then ends) goes.
    pub(crate) fn forget(&self, conn: u64, name: &str, room: &Arc<Members>) {
        if self.any() {
            let ended = |b: &Buffer| b.room.as_ref().is_some_and(|r| Arc::ptr_eq(r, room));
            self.unregister(&(conn, name.to_string()), |b| !ended(b));
        }
    }
}

#[cfg(test)]
impl Recovering {
    /// Registers a recovery of `key` (none may run): its number.
    pub(crate) fn register_for_tests(&self, key: &(u64, String)) -> u64 {
        self.register(key.clone(), 16).expect("no recovery of that key runs")
    }

    pub(crate) fn bound_for_tests(&self, key: &(u64, String), recovery: u64, room: &Arc<Members>) {
        self.bound(key, recovery, room);
    }
}

/// Removes the registration however the recovery ends (also when its
/// future is dropped), unless it has become a floor or is another
/// recovery's.
struct Registration<'a> {
    recovering: &'a Recovering,
    key: (u64, String),
    recovery: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.recovering.unregister(&self.key, |b| b.floor.is_some() || b.recovery != self.recovery);
    }
}

impl Channel {
    /// Binds `conn` and, given the position of the last message it saw,
    /// replays what it missed before the live messages (exactly once, in
    /// order); what `@join` does for clients. With no position, a plain
    /// bind that reports the channel's latest position.
    pub async fn join(&self, conn: &WsConn, since: Option<Position>) -> Result<Recovery, WsError> {
        if !Arc::ptr_eq(&conn.inner.host, &self.host) {
            return Err(WsError::Closed);
        }
        recover(&self.host, conn, &self.name, since, 0).await
    }

    /// Binds `conn` and sends it the latest `recent` messages of the
    /// history (at most what it holds) before the live ones, with no gap
    /// and no duplicate between them: what a client's `@join` with
    /// `recent` does, e.g. to show a newcomer the conversation so far.
    pub async fn join_recent(&self, conn: &WsConn, recent: usize) -> Result<Recovery, WsError> {
        if !Arc::ptr_eq(&conn.inner.host, &self.host) {
            return Err(WsError::Closed);
        }
        recover(&self.host, conn, &self.name, None, recent).await
    }
}

impl WsShared {
    /// The handler of object-mode event `event`: the built-in requests
    /// (`@join`, `@leave`) first, then the application's. Here, above
    /// channels, since `@join` binds through them.
    pub(crate) fn event_handler(&self, event: &str) -> Option<EventFn> {
        if let Some(builtin) = builtin_event(event) {
            return Some(builtin);
        }
        read(&self.handlers).events.get(event).cloned()
    }
}

/// Binds `conn` to channel `name` and, from `since`, replays what it
/// missed (see the module's documentation).
pub(crate) async fn recover(
    host: &Arc<WsShared>,
    conn: &WsConn,
    name: &str,
    since: Option<Position>,
    recent: usize,
) -> Result<Recovery, WsError> {
    let channel = Channel::new(host.clone(), name);
    let Some(options) = host.history.options_for(name) else {
        if let Some(e) = channel.bind_as(conn, |_| {}).error(host) {
            return Err(e);
        }
        return Ok(Recovery { recovered: since.is_none(), position: None, replayed: 0 });
    };
    if channel.contains(conn) {
        return already_member(host, name, options, since).await;
    }
    let key = (conn.id(), name.to_string());
    let recovering = &host.history.recovering;
    let Some(recovery) = recovering.register(key.clone(), host.limits.messages) else {
        return Err(WsError::Remote(format!("already joining {name:?}")));
    };
    let _registration = Registration { recovering, key: key.clone(), recovery };
    match channel.bind_as(conn, |room| recovering.bound(&key, recovery, room)) {
        Binding::Added => {}
        // Bound meanwhile by the application: as if it had been before.
        Binding::Already => return already_member(host, name, options, since).await,
        refused => return Err(refused.error(host).unwrap_or(WsError::Closed)),
    }
    if host.history.store(host).is_some() {
        super::store::subscribed(host, name).await;
    }
    let store = host.history.store(host).is_some();
    // A first join that asks for the latest `recent` messages: replayed
    // like missed ones, from the position `recent` before the latest.
    let recent = recent.min(options.size);
    let from = match (&since, recent) {
        (None, n) if n > 0 => {
            let top = read_since(host, name, options, None).await?.top;
            Some(Position { epoch: top.epoch, offset: top.offset.saturating_sub(n as u64) })
        }
        _ => since.clone(),
    };
    let read = read_since(host, name, options, from.as_ref()).await?;
    let mut recovered = since.is_none() || read.complete;
    let epoch = read.top.epoch.clone();
    let mut last = match (&from, read.complete || since.is_none()) {
        (Some(p), true) => p.offset,
        _ => read.top.offset,
    };
    let mut replayed = 0;
    if from.is_some() && (read.complete || since.is_none()) {
        replayed += replay(host, conn, name, &epoch, &mut last, read.entries);
        last = last.max(read.top.offset);
    }
    for _round in 0..MAX_ROUNDS {
        let mut slow: Vec<(WsConn, SlowAction)> = Vec::new();
        let done = {
            let mut buffers = lock(&recovering.buffers);
            // The entry goes before the registration's end only with the
            // membership (`forget`): the connection left the channel
            // meanwhile (an unbind, possibly by a hook of its own bind,
            // or `Channel::close`), and an entry there now is a later
            // join's. This join ends; the connection goes on.
            let Some(buffer) = buffers.get_mut(&key).filter(|b| b.recovery == recovery) else {
                return Err(WsError::Unbound(name.to_string()));
            };
            let gap = buffer.overflowed || buffer.frames.first().is_some_and(|(o, _)| *o > last + 1);
            if gap {
                buffer.frames.clear();
                buffer.overflowed = false;
                false
            } else {
                let from = last;
                for (offset, frame) in buffer.frames.drain(..).filter(|(o, _)| *o > from) {
                    last = offset;
                    let pushed = push_frame(host, conn, &frame);
                    if pushed.wakes() {
                        conn.inner.wake.notify();
                    }
                    if let Some(action) = pushed.slow_action() {
                        slow.push((conn.clone(), action));
                    }
                }
                if store {
                    buffer.floor = Some(last);
                } else {
                    buffers.remove(&key);
                    recovering.active.fetch_sub(1, Ordering::SeqCst);
                }
                true
            }
        };
        for (conn, action) in slow {
            host.slow(&conn, action);
        }
        if done {
            return Ok(Recovery { recovered, position: Some(Position { epoch, offset: last }), replayed });
        }
        // Read again from the last message queued.
        let again = read_since(host, name, options, Some(&Position { epoch: epoch.clone(), offset: last })).await?;
        if again.complete || since.is_none() {
            replayed += replay(host, conn, name, &epoch, &mut last, again.entries);
        } else {
            // Lost in between (trimmed, or a new epoch): the client must
            // reload; live delivery goes on from the latest.
            recovered = false;
            last = again.top.offset;
        }
    }
    tracing::warn!(id = conn.id(), channel = name, "recovery could not catch up with the channel; closing");
    conn.close(simples_ws::CloseCode::TRY_AGAIN_LATER, "recovery could not catch up");
    Err(WsError::Closed)
}

/// The join of a member (nothing replayed: it receives the channel
/// already): the latest position, `recovered` if it is the one given.
async fn already_member(
    host: &Arc<WsShared>,
    name: &str,
    options: super::HistoryOptions,
    since: Option<Position>,
) -> Result<Recovery, WsError> {
    let top = read_since(host, name, options, None).await?.top;
    let recovered = since.as_ref().map_or(true, |p| *p == top);
    Ok(Recovery { recovered, position: Some(top), replayed: 0 })
}

/// Queues history entries newer than `last` on `conn`; returns how many.
fn replay(
    host: &WsShared,
    conn: &WsConn,
    name: &str,
    epoch: &str,
    last: &mut u64,
    entries: Vec<(u64, bytes::Bytes, bool)>,
) -> usize {
    let mut n = 0;
    let from = *last;
    for (offset, payload, binary) in entries.into_iter().filter(|(o, _, _)| *o > from) {
        let position = Position { epoch: epoch.to_string(), offset };
        let message = wire_message(host.options.mode, name, &position, &payload, binary);
        let size = message.payload().len();
        let pushed = conn.inner.outbox().push(Out::Message(message), &host.limits);
        if matches!(pushed, Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_)) {
            host.metrics().sent(1, size);
        }
        let _ = conn.after_push(pushed);
        *last = offset;
        n += 1;
    }
    n
}

/// The object protocol's built-in requests: `@join` and `@leave`.
pub(crate) fn builtin_event(event: &str) -> Option<EventFn> {
    match event {
        "@join" => Some(Arc::new(|conn, data| Box::pin(join(conn, data)))),
        "@leave" => Some(Arc::new(|conn, data| Box::pin(leave(conn, data)))),
        _ => None,
    }
}

#[derive(Deserialize)]
struct JoinRequest {
    channel: String,
    #[serde(default)]
    since: Option<Position>,
    /// On a first join (no `since`): how many of the latest messages to
    /// send first (at most the history's size).
    #[serde(default)]
    recent: usize,
}

/// `@join {channel, since?}`: the application's `on_join` hook decides,
/// then the connection is bound with recovery.
async fn join(conn: WsConn, data: Value) -> Result<Value, String> {
    let request: JoinRequest = serde_json::from_value(data).map_err(|e| format!("@join: {e}"))?;
    let name = request.channel;
    if name.is_empty() || name.len() > 256 {
        return Err("@join: the channel name must have 1 to 256 bytes".into());
    }
    let host = conn.inner.host.clone();
    let hook = host.history.join_hook().ok_or("this host does not let clients join channels")?;
    hook(conn.clone(), name.clone()).await?;
    let recovery = recover(&host, &conn, &name, request.since, request.recent).await.map_err(|e| e.to_string())?;
    let (epoch, offset) = match recovery.position {
        Some(p) => (Value::String(p.epoch), json!(p.offset)),
        None => (Value::Null, Value::Null),
    };
    Ok(json!({ "channel": name, "recovered": recovery.recovered, "epoch": epoch, "offset": offset }))
}

#[derive(Deserialize)]
struct LeaveRequest {
    channel: String,
}

/// `@leave {channel}`: unbinds; `{channel, left}`.
async fn leave(conn: WsConn, data: Value) -> Result<Value, String> {
    let request: LeaveRequest = serde_json::from_value(data).map_err(|e| format!("@leave: {e}"))?;
    let left = conn.unbind(&request.channel);
    Ok(json!({ "channel": request.channel, "left": left }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found in review: a recovery whose entry went with an unbind, and a
    /// later join of the same connection and channel that registered
    /// again: the first recovery's end removed the second one's entry (and
    /// its loop would have drained it). Each entry now carries its
    /// recovery's number.
    #[test]
    fn a_recovery_never_takes_a_later_recoverys_entry() {
        let recovering = Recovering::default();
        let key = (7, "room".to_string());
        let first = recovering.register(key.clone(), 16).unwrap();
        let registration = Registration { recovering: &recovering, key: key.clone(), recovery: first };
        assert_eq!(recovering.register(key.clone(), 16), None, "one recovery at a time");
        let room = Arc::new(Members::new());
        recovering.bound(&key, first, &room);
        recovering.forget(7, "room", &Arc::new(Members::new())); // another room of that name
        assert!(recovering.any(), "forgotten for another room's membership");
        recovering.forget(7, "room", &room); // unbound
        let second = recovering.register(key.clone(), 16).unwrap();
        assert_ne!(first, second);
        drop(registration);
        assert_eq!(lock(&recovering.buffers).get(&key).map(|b| b.recovery), Some(second));
        assert!(recovering.any());
        drop(Registration { recovering: &recovering, key: key.clone(), recovery: second });
        assert!(!recovering.any());
    }
}
