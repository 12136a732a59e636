//! [`Channel`]: a named group of connections of one WebSocket host.
//!
//! Membership is kept on both sides (the host's channel table and each
//! connection's list), under the host's channel lock, so a connection that
//! closes leaves every channel it was in.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use serde::Serialize;
use simples_ws::Message;

use super::conn::WsConn;
use super::error::WsError;
use super::host::{broadcast_with, WsShared};
use super::object;

/// A channel membership change, as passed to
/// [`WsHost::on_channel`](crate::WsHost::on_channel).
#[derive(Debug, Clone)]
pub enum ChannelEvent {
    /// `conn` joined `channel`.
    Bind {
        /// The channel's name.
        channel: String,
        /// The connection.
        conn: WsConn,
    },
    /// `conn` left `channel` (by `unbind` or because it closed).
    Unbind {
        /// The channel's name.
        channel: String,
        /// The connection.
        conn: WsConn,
    },
    /// `channel` was closed: every member was unbound.
    Close {
        /// The channel's name.
        channel: String,
        /// How many members it had.
        members: usize,
    },
}

/// A named group of connections of one host: bind, unbind, broadcast,
/// close. A handle: cheap to create with [`WsHost::channel`](crate::WsHost::channel);
/// the channel exists while it has members.
#[derive(Clone)]
pub struct Channel {
    host: Arc<WsShared>,
    name: String,
}

type Table = HashMap<String, HashMap<u64, WsConn>>;

impl Channel {
    pub(crate) fn new(host: Arc<WsShared>, name: &str) -> Channel {
        Channel { host, name: name.to_string() }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.host.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `conn` (a connection of this host that is still open); `false`
    /// if it was already a member, closed, or of another host.
    pub fn bind(&self, conn: &WsConn) -> bool {
        if !Arc::ptr_eq(&conn.inner.host, &self.host) || !conn.is_open() {
            return false;
        }
        {
            let mut table = self.table();
            let members = table.entry(self.name.clone()).or_default();
            if members.contains_key(&conn.id()) {
                return false;
            }
            // Checked again under the channel lock: a connection's task
            // marks its outbox finished before it leaves its channels (under
            // this lock), so an ended connection is never left behind here.
            if conn.inner.outbox().is_finished() {
                if members.is_empty() {
                    table.remove(&self.name);
                }
                return false;
            }
            members.insert(conn.id(), conn.clone());
            conn.inner.channels.lock().unwrap_or_else(|e| e.into_inner()).push(self.name.clone());
        }
        self.host.channel_event(&ChannelEvent::Bind { channel: self.name.clone(), conn: conn.clone() });
        true
    }

    /// Removes `conn`; `false` if it was not a member.
    pub fn unbind(&self, conn: &WsConn) -> bool {
        if !remove_member(&mut self.table(), &self.name, conn) {
            return false;
        }
        self.host.channel_event(&ChannelEvent::Unbind { channel: self.name.clone(), conn: conn.clone() });
        true
    }

    /// Unbinds every member; returns how many there were.
    pub fn close(&self) -> usize {
        let members = self.table().remove(&self.name).unwrap_or_default();
        for conn in members.values() {
            conn.inner.channels.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c != &self.name);
        }
        if !members.is_empty() {
            self.host.channel_event(&ChannelEvent::Close { channel: self.name.clone(), members: members.len() });
        }
        members.len()
    }

    /// The members.
    pub fn members(&self) -> Vec<WsConn> {
        self.table().get(&self.name).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.table().get(&self.name).map_or(0, |m| m.len())
    }

    /// Whether the channel has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `conn` is a member.
    pub fn contains(&self, conn: &WsConn) -> bool {
        self.table().get(&self.name).is_some_and(|m| m.contains_key(&conn.id()))
    }

    /// Sends `message` to every member (encoded once); returns how many
    /// queued it.
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        self.broadcast_filter(message, |_| true)
    }

    /// Sends `message` to the members `filter` keeps.
    pub fn broadcast_filter(&self, message: impl Into<Message>, filter: impl Fn(&WsConn) -> bool) -> usize {
        broadcast_with(&self.host, message.into(), |each| {
            if let Some(members) = self.table().get(&self.name) {
                members.values().filter(|c| filter(c)).for_each(each);
            }
        })
    }

    /// Object mode: broadcasts the event `{"event", "data"}` to the members.
    pub fn broadcast_event<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, WsError> {
        self.broadcast_event_filter(event, data, |_| true)
    }

    /// Object mode: broadcasts the event to the members `filter` keeps.
    pub fn broadcast_event_filter<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        filter: impl Fn(&WsConn) -> bool,
    ) -> Result<usize, WsError> {
        Ok(self.broadcast_filter(object::event_message(event, data)?, filter))
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish_non_exhaustive()
    }
}

fn remove_member(table: &mut Table, name: &str, conn: &WsConn) -> bool {
    let Some(members) = table.get_mut(name) else { return false };
    if members.remove(&conn.id()).is_none() {
        return false;
    }
    if members.is_empty() {
        table.remove(name);
    }
    conn.inner.channels.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c != name);
    true
}

/// A closed connection leaves all its channels (with `Unbind` events).
pub(crate) fn leave_all(host: &Arc<WsShared>, conn: &WsConn) {
    let names = std::mem::take(&mut *conn.inner.channels.lock().unwrap_or_else(|e| e.into_inner()));
    if names.is_empty() {
        return;
    }
    let mut left = Vec::new();
    {
        let mut table = host.channels.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if let Some(members) = table.get_mut(&name) {
                if members.remove(&conn.id()).is_some() {
                    if members.is_empty() {
                        table.remove(&name);
                    }
                    left.push(name);
                }
            }
        }
    }
    for channel in left {
        host.channel_event(&ChannelEvent::Unbind { channel, conn: conn.clone() });
    }
}
