//! [`Channel`]: a named group of connections of one WebSocket host.
//!
//! The host keeps a table of rooms (`Rooms`), one lock for the table and
//! one per room: binds, unbinds and broadcasts of different rooms never
//! wait for each other, and the table's lock is taken for writing only
//! when a room appears or disappears. Membership is kept on both sides
//! (the room and each connection's list), so a connection that closes
//! leaves every channel it was in. Broadcasts and their filters run on a
//! snapshot of the members with no lock held, so a filter may consult
//! (or even bind to) any channel.
//!
//! Lock order: the table, then a room, then a connection's channel list
//! (its `Extras`) or the recovery buffers (a `@join` records the room it
//! bound into); no path holds two of them except in that order.
//!
//! Announcements (the `on_channel` and `on_presence` hooks, the
//! backplane's presence) follow the memberships: each change is queued on
//! the connection (`Change`) under the room's lock, with the change
//! itself, and announced after the lock is released by one thread at a
//! time per connection (`WsShared::announce`), so a bind racing an unbind
//! or the connection's end is announced before the leave, never after.

use std::sync::Arc;

use serde::Serialize;
use simples_ws::Message;

use super::error::WsError;
use super::history::{self, HistoryEntry};
use super::host::Audience;
use super::members::Inserted;
use super::object;
use super::relay::channel_topic;
use super::state::{Change, ChannelEvent, Members, Rooms, WsConn, WsHost, WsShared};
use crate::backplane::PresenceMember;

impl Rooms {
    fn get(&self, name: &str) -> Option<Arc<Members>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The room `name`, created (and announced to `appeared`, under the
    /// table's lock so that appearances and removals of one name are seen
    /// in order) if missing.
    fn get_or_create(&self, name: &str, appeared: impl FnOnce()) -> Arc<Members> {
        if let Some(room) = self.get(name) {
            return room;
        }
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table
            .entry(name.to_string())
            .or_insert_with(|| {
                appeared();
                Arc::new(Members::new())
            })
            .clone()
    }

    /// Removes `room` from the table if it is still the entry for `name`
    /// and empty; `removed` runs under the table's lock.
    fn remove_if_empty(&self, name: &str, room: &Arc<Members>, removed: impl FnOnce()) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if table.get(name).is_some_and(|r| Arc::ptr_eq(r, room)) && room.retire_if_empty() {
            table.remove(name);
            removed();
        }
    }

    /// Removes room `name` whatever it holds; `removed` runs under the
    /// table's lock.
    fn remove(&self, name: &str, removed: impl FnOnce()) -> Option<Arc<Members>> {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let room = table.remove(name)?;
        removed();
        Some(room)
    }

    /// A snapshot of room `name`'s members (`None`: no such room).
    pub(crate) fn snapshot(&self, name: &str) -> Option<Arc<[WsConn]>> {
        self.get(name).map(|r| r.snapshot())
    }

    /// Whether room `name` exists (it has members).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.table.read().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }

    /// The names of the rooms that have members.
    pub(crate) fn names(&self) -> Vec<String> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}

/// What became of a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    Added,
    /// Already a member.
    Already,
    /// The connection is closed (or of another host).
    Closed,
    /// The connection is in `max_channels_per_connection` channels.
    Full,
}

impl Binding {
    /// The error a join reports for a connection not added (`Already`:
    /// none).
    pub(crate) fn error(self, host: &WsShared) -> Option<WsError> {
        match self {
            Binding::Added | Binding::Already => None,
            Binding::Closed => Some(WsError::Closed),
            Binding::Full => Some(WsError::ChannelLimit(host.options.max_channels_per_connection)),
        }
    }
}

/// A named group of connections of one host: bind, unbind, broadcast,
/// close. A handle: cheap to create with [`WsHost::channel`](crate::WsHost::channel);
/// the channel exists while it has members.
#[derive(Clone)]
pub struct Channel {
    pub(crate) host: Arc<WsShared>,
    pub(crate) name: String,
}

impl Channel {
    pub(crate) fn new(host: Arc<WsShared>, name: &str) -> Channel {
        Channel { host, name: name.to_string() }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `conn` (a connection of this host that is still open); `false`
    /// if it was already a member, closed, of another host, or in
    /// [`WsOptions::max_channels_per_connection`](crate::ws::WsOptions::max_channels_per_connection)
    /// channels already.
    pub fn bind(&self, conn: &WsConn) -> bool {
        self.bind_as(conn, |_| {}) == Binding::Added
    }

    /// [`bind`](Channel::bind), telling why a connection was not added;
    /// `added` runs with the room under its lock once it is.
    pub(crate) fn bind_as(&self, conn: &WsConn, added: impl FnOnce(&Arc<Members>)) -> Binding {
        let mut added = Some(added);
        if !Arc::ptr_eq(&conn.inner.host, &self.host) || !conn.is_open() {
            return Binding::Closed;
        }
        let rooms = &self.host.rooms;
        let limit = self.host.options.max_channels_per_connection;
        let binding = loop {
            let room = rooms.get_or_create(&self.name, || self.host.room_appeared(&self.name));
            // The connection's list is updated under the room's lock, and a
            // connection that has ended (its outbox is finished, which its
            // driver does before it leaves the channels) is refused there:
            // an ended connection is never left behind in a room. So is one
            // at its limit of channels (counted there, so concurrent binds
            // cannot pass it).
            let admit = || {
                let joined = conn.inner.join_channel(&self.name, limit);
                if let (true, Some(added)) = (joined, added.take()) {
                    added(&room);
                }
                joined
            };
            match room.insert(conn, admit) {
                Inserted::Added { .. } => break Binding::Added,
                Inserted::Retired => continue,
                Inserted::Already => break Binding::Already,
                Inserted::Refused => {
                    rooms.remove_if_empty(&self.name, &room, || self.host.room_disappeared(&self.name));
                    break if conn.inner.ended() { Binding::Closed } else { Binding::Full };
                }
            }
        };
        if binding == Binding::Added {
            self.host.announce(conn);
        }
        binding
    }

    /// Removes `conn`; `false` if it was not a member.
    pub fn unbind(&self, conn: &WsConn) -> bool {
        if !leave(&self.host, &self.name, conn, true) {
            return false;
        }
        self.host.announce(conn);
        true
    }

    /// Unbinds every member (on this node); returns how many there were.
    /// Presence sees each of them leave; `on_channel` gets one `Close`.
    pub fn close(&self) -> usize {
        let Some(room) = self.host.rooms.remove(&self.name, || self.host.room_disappeared(&self.name)) else {
            return 0;
        };
        // Binds from here on make a new room (they may race the rest).
        empty_room(&self.host, &self.name, &room)
    }

    /// The members on this node.
    pub fn members(&self) -> Vec<WsConn> {
        self.host.rooms.snapshot(&self.name).map(|m| m.to_vec()).unwrap_or_default()
    }

    /// How many members on this node.
    pub fn len(&self) -> usize {
        self.host.rooms.get(&self.name).map_or(0, |r| r.len())
    }

    /// Whether the channel has no members on this node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `conn` is a member.
    pub fn contains(&self, conn: &WsConn) -> bool {
        self.host.rooms.get(&self.name).is_some_and(|r| r.contains(conn.id()))
    }

    /// Every member on every node, with what each showed with
    /// [`WsConn::set_presence`]: from the backplane with a relay, else this
    /// node's members. Needs [`WsOptions::presence`](crate::ws::WsOptions::presence)
    /// on ([`WsError::PresenceOff`] otherwise).
    pub async fn presence(&self) -> Result<Vec<PresenceMember>, WsError> {
        if !self.host.options.presence {
            return Err(WsError::PresenceOff);
        }
        let local: Vec<PresenceMember> = self.members().iter().map(|c| self.host.presence_member(c)).collect();
        let Some(relay) = &self.host.options.relay else { return Ok(local) };
        let stored = relay
            .backplane()
            .presence(&channel_topic(&self.host.path, &self.name))
            .await
            .map_err(|e| WsError::Backplane(e.to_string()))?;
        // This node's own members as it knows them now (its writes to the
        // backplane may still be queued), the other nodes' from the backplane.
        let node = self.host.node_id();
        Ok(stored.into_iter().filter(|m| m.node != node).chain(local).collect())
    }

    /// The latest `limit` messages of the channel's history (at most what
    /// it holds), oldest first; empty when the channel keeps no history
    /// ([`WsHost::history`](crate::WsHost::history)). With the Redis
    /// backend, read from Redis (the same on every node).
    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, WsError> {
        history::recent(&self.host, &self.name, limit).await
    }

    /// Sends `message` to every member, on every node with a relay (the
    /// frame encoded once per node); returns how many members of this node
    /// queued it.
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        self.host.fan_out(Audience::channel(&self.name), message.into()).unwrap_or(0)
    }

    /// [`broadcast`](Channel::broadcast) to every member but `conn`
    /// (typically the sender), on every node.
    pub fn broadcast_except(&self, message: impl Into<Message>, conn: &WsConn) -> usize {
        let audience = Audience { except: Some(conn.id()), ..Audience::channel(&self.name) };
        self.host.fan_out(audience, message.into()).unwrap_or(0)
    }

    /// [`broadcast`](Channel::broadcast) to the members the named filter
    /// ([`WsHost::filter`](crate::WsHost::filter)) keeps, on every node.
    pub fn broadcast_named(&self, filter: &str, message: impl Into<Message>) -> Result<usize, WsError> {
        self.host.fan_out(Audience { named: Some(filter), ..Audience::channel(&self.name) }, message.into())
    }

    /// Sends `message` to the members of this node that `filter` keeps (a
    /// closure cannot travel: with a relay, use
    /// [`broadcast_named`](Channel::broadcast_named) to filter on every
    /// node). The filter runs on a snapshot of the members with no lock
    /// held: it may consult or change any channel.
    pub fn broadcast_filter(&self, message: impl Into<Message>, filter: impl Fn(&WsConn) -> bool) -> usize {
        self.host.broadcast_local(Some(&self.name), message.into(), filter)
    }

    /// Object mode: broadcasts the event `{"event", "data"}` to the
    /// members, on every node.
    pub fn broadcast_event<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, WsError> {
        self.host.fan_out(Audience::channel(&self.name), object::event_message(event, data)?)
    }

    /// Object mode: broadcasts the event to the members of this node that
    /// `filter` keeps.
    pub fn broadcast_event_filter<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        filter: impl Fn(&WsConn) -> bool,
    ) -> Result<usize, WsError> {
        Ok(self.host.broadcast_local(Some(&self.name), object::event_message(event, data)?, filter))
    }
}

impl WsHost {
    /// Channel `name` of this host (it exists while it has members).
    pub fn channel(&self, name: &str) -> Channel {
        Channel::new(self.shared.clone(), name)
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The rest of [`Channel::close`], once `room` is out of the table: its
/// members leave it (each announced), one `Close` event; how many.
fn empty_room(host: &WsShared, name: &str, room: &Arc<Members>) -> usize {
    let members = room.retire(|c| c.inner.leave_channel(Change::Closed(name.to_string()), true));
    for conn in &members {
        host.history.recovering.forget(conn.id(), name, room);
        host.announce(conn);
    }
    if !members.is_empty() {
        host.channel_event(&ChannelEvent::Close { channel: name.to_string(), members: members.len() });
    }
    members.len()
}

/// Takes `conn` out of room `name` (and, with `update_list`, out of the
/// connection's list); removes the room if it became empty. `false` if it
/// was not a member.
fn leave(host: &Arc<WsShared>, name: &str, conn: &WsConn, update_list: bool) -> bool {
    let Some(room) = host.rooms.get(name) else { return false };
    let left = room.remove(conn.id(), |c| c.inner.leave_channel(Change::Unbound(name.to_string()), update_list));
    if left.is_some() {
        host.history.recovering.forget(conn.id(), name, &room);
    }
    match left {
        None => false,
        Some(0) => {
            host.rooms.remove_if_empty(name, &room, || host.room_disappeared(name));
            true
        }
        Some(_) => true,
    }
}

/// A closed connection leaves all its channels (with `Unbind` events),
/// then its presence info goes.
pub(crate) fn leave_all(host: &Arc<WsShared>, conn: &WsConn) {
    let Some(names) = conn.inner.leave_all_channels() else {
        // Never in a channel (most connections): nothing was or will be
        // queued; one lock, as before the queue.
        host.forget_presence_info(conn.id());
        return;
    };
    for name in names {
        leave(host, &name, conn, false);
    }
    // Announces the leaves; the presence info goes after the last (here,
    // or on the thread announcing this connection's changes, also for a
    // leave a racing `Channel::close` queues after this).
    host.announce(conn);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::presence::PresenceEvent;
    use crate::ws::request::RequestInfo;
    use crate::ws::signal::Signal;
    use crate::ws::WsOptions;
    use std::sync::Mutex;

    /// A host with presence whose `on_presence` events are logged as
    /// `"join <nick>"` / `"leave <nick>"`, and a connection showing `ana`.
    fn host_and_conn() -> (WsHost, WsConn, Arc<Mutex<Vec<String>>>) {
        let host = WsHost::new("/t", WsOptions { presence: true, ..WsOptions::object() });
        let conn = WsConn::new(1, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default());
        conn.set_presence(serde_json::json!({ "nick": "ana" }));
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        host.on_presence(move |e| {
            let what = if matches!(e, PresenceEvent::Join { .. }) { "join" } else { "leave" };
            log.lock().unwrap().push(format!("{what} {}", e.member().info["nick"].as_str().unwrap_or("null")));
        });
        (host, conn, events)
    }

    /// `Channel::close`'s two steps with something in between: it takes
    /// the room out of the table, then empties it.
    fn close_in_two_steps(host: &WsHost, name: &str, between: impl FnOnce()) {
        let room = host.shared.rooms.remove(name, || {}).expect("the room");
        between();
        assert_eq!(empty_room(&host.shared, name, &room), 1);
    }

    /// Found in review: a member bound again between those two steps was
    /// in two rooms of one name; its join (new room) was announced, then
    /// the old room's leave, so presence lost a member that was there (on
    /// Redis, every node stopped listing it).
    #[test]
    fn a_bind_racing_close_keeps_the_member_present() {
        let (host, conn, events) = host_and_conn();
        assert!(conn.bind("room"));
        close_in_two_steps(&host, "room", || assert!(conn.bind("room")));
        assert_eq!(*events.lock().unwrap(), ["join ana"], "the member was announced gone");
        assert_eq!(conn.channels(), ["room"]);
        assert!(conn.unbind("room"));
        assert_eq!(*events.lock().unwrap(), ["join ana", "leave ana"]);
    }

    /// Found in review: a `@join` recovery that bound the connection into
    /// the new room between those two steps lost its entry to the close's
    /// clean-up of the old room (the join then failed, its buffered live
    /// messages dropped, though the connection was in the channel). The
    /// entry goes with the membership of the room it bound into. And a
    /// connection at its limit of channels may still be bound again to a
    /// name it is in.
    #[test]
    fn a_recovery_binding_during_close_keeps_its_entry() {
        let host = WsHost::new("/t", WsOptions { max_channels_per_connection: 1, ..WsOptions::object() });
        let conn = WsConn::new(1, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default());
        let recovering = &host.shared.history.recovering;
        let key = (1, "room".to_string());
        assert!(conn.bind("room"));
        close_in_two_steps(&host, "room", || {
            let recovery = recovering.register_for_tests(&key);
            let bound = host.channel("room").bind_as(&conn, |room| recovering.bound_for_tests(&key, recovery, room));
            assert_eq!(bound, Binding::Added, "refused at the limit for a name it is in");
        });
        assert!(recovering.any(), "the close took the new membership's recovery");
        assert!(conn.unbind("room"));
        assert!(!recovering.any(), "the unbind left the recovery's entry");
        assert_eq!(conn.channels(), Vec::<String>::new());
    }

    /// Found in review: the connection's end between those two steps
    /// found no room to leave and forgot its presence info; the old room's
    /// leave then went out with `null`. The info now goes after the last
    /// leave.
    #[test]
    fn a_connection_ending_during_close_leaves_with_its_info() {
        let (host, conn, events) = host_and_conn();
        assert!(conn.bind("room"));
        close_in_two_steps(&host, "room", || {
            conn.inner.outbox().finish();
            leave_all(&host.shared, &conn);
            assert!(host.shared.presence_info.lock().unwrap().contains_key(&1), "forgotten before its leave");
        });
        assert_eq!(*events.lock().unwrap(), ["join ana", "leave ana"]);
        assert!(host.shared.presence_info.lock().unwrap().is_empty(), "kept after the last leave");
    }
}
