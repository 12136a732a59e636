//! [`WsConn`]: one WebSocket connection, as its handlers and broadcasters
//! see it: what the handshake request carried, the session shared with
//! HTTP, and non-blocking sends through the bounded outbox.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use simples_ws::{CloseCode, Message};
use tokio::sync::oneshot;

use super::error::WsError;
use super::object;
use super::outbox::{Out, Outbox, Pushed};
use super::request::RequestInfo;
use super::signal::Signal;
use super::state::{Change, ConnInner, Extras, Used, WsConn, WsShared};
use crate::router::Params;
use crate::session::Session;

impl Extras {
    fn used(&mut self) -> &mut Used {
        self.used.get_or_insert_with(Box::default)
    }

    fn remove_request(&mut self, id: u64) -> Option<oneshot::Sender<Result<Value, String>>> {
        self.used.as_mut()?.waiting.as_mut()?.remove(&id)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConnInner {
    /// The outbox, locked. Closes the direct path (`direct.rs`): whoever
    /// locks may push, and nothing may take the direct path past what
    /// waits here; the loop reopens it when it pumps the outbox empty.
    pub(crate) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        let outbox = lock(&self.outbox);
        self.wake.close_direct();
        outbox
    }

    /// The driver has ended (its outbox is finished; see [`Extras`]). Only
    /// looks: the direct path stays open (nothing is pushed).
    pub(crate) fn ended(&self) -> bool {
        lock(&self.outbox).is_finished()
    }

    /// Records channel `name` and queues its `Bound` change (called under
    /// the room's lock) unless the connection is in a room of that name
    /// already (see `Used::present`); `false` once it has ended, or when
    /// it is in `limit` other channels (a room of a name it is in already
    /// is no new channel).
    pub(crate) fn join_channel(&self, name: &str, limit: usize) -> bool {
        let mut extras = lock(&self.extras);
        let present = extras.used.as_ref().map_or(&[][..], |u| &u.present[..]);
        if self.ended() || (present.len() >= limit && !present.iter().any(|p| p == name)) {
            return false;
        }
        let used = extras.used();
        used.names.push(name.to_string());
        if !used.present.iter().any(|p| p == name) {
            used.present.push(name.to_string());
            used.changes.push_back(Change::Bound(name.to_string()));
        }
        true
    }

    /// Queues `change`, a leave (called under the room's lock), if it
    /// takes the connection's last membership of its channel; with
    /// `listed`, forgets one membership of the channel first. One, not
    /// every: while `Channel::close` takes the members out of a room, a
    /// member may be bound again to a new room of the same name (the list
    /// then names it twice), and that membership must stay listed, or the
    /// connection's end would not take it out of the new room. (The
    /// connection's end passes `listed: false`: it took the whole list.)
    pub(crate) fn leave_channel(&self, change: Change, listed: bool) {
        let mut extras = lock(&self.extras);
        let used = extras.used();
        let (Change::Unbound(name) | Change::Closed(name) | Change::Updated(name)) = &change else { return };
        if listed {
            if let Some(i) = used.names.iter().position(|c| c == name) {
                used.names.remove(i);
            }
            if used.names.contains(name) {
                return;
            }
        }
        if let Some(i) = used.present.iter().position(|p| p == name) {
            used.present.swap_remove(i);
            used.changes.push_back(change);
        }
    }

    /// Queues `Updated` for every channel the connection is in (its
    /// presence info changed); `false` if it is in none.
    pub(crate) fn presence_updated(&self) -> bool {
        let mut extras = lock(&self.extras);
        let Some(used) = extras.used.as_mut().filter(|u| !u.present.is_empty()) else { return false };
        let updates: Vec<Change> = used.present.iter().map(|n| Change::Updated(n.clone())).collect();
        used.changes.extend(updates);
        true
    }

    /// Takes the announcer's role if changes wait and nobody has it;
    /// otherwise `Err(done)`, `done` as in [`next_change`](Self::next_change)
    /// (never while another thread has the role: it decides at its end).
    pub(crate) fn claim_announcing(&self) -> Result<(), bool> {
        let mut extras = lock(&self.extras);
        let Some(used) = extras.used.as_mut() else { return Err(self.ended()) };
        if used.announcing {
            return Err(false);
        }
        if used.changes.is_empty() {
            return Err(used.present.is_empty() && self.ended());
        }
        used.announcing = true;
        Ok(())
    }

    /// The announcer's next change, or `Err` when there is none, which ends
    /// its role (and frees the queue's buffer: a member holds none between
    /// changes) and says whether the connection is done with channels: it
    /// has ended and every leave was announced, so its presence info can
    /// go (no change comes after that: an ended connection joins nothing
    /// and `set_presence` on it is a no-op).
    pub(crate) fn next_change(&self) -> Result<Change, bool> {
        let mut extras = lock(&self.extras);
        let Some(used) = extras.used.as_mut() else { return Err(false) };
        if let Some(next) = used.changes.pop_front() {
            return Ok(next);
        }
        used.announcing = false;
        used.changes = VecDeque::new();
        let done = used.present.is_empty() && self.ended();
        Err(done)
    }

    /// Releases the announcer's role (its thread is unwinding).
    pub(crate) fn abandon_announcing(&self) {
        if let Some(used) = lock(&self.extras).used.as_mut() {
            used.announcing = false;
        }
    }

    /// The connection ended (its outbox is finished, so it joins no
    /// channel any more); returns the channels it was in.
    /// `None` if it never joined a channel nor made a request (nothing to
    /// leave or announce).
    pub(crate) fn leave_all_channels(&self) -> Option<Vec<String>> {
        let mut extras = lock(&self.extras);
        debug_assert!(self.ended(), "the driver finishes the outbox before it leaves the channels");
        extras.used.as_mut().map(|used| std::mem::take(&mut used.names))
    }
}

impl WsConn {
    /// A connection; `wake` is a task's signal (`Signal::default()`) or a
    /// loop's (`Signal::fixed`).
    pub(crate) fn new(id: u64, host: Arc<WsShared>, request: RequestInfo, wake: Signal) -> WsConn {
        WsConn {
            inner: Arc::new(ConnInner {
                id,
                host,
                request,
                outbox: Mutex::new(Outbox::new()),
                wake,
                extras: Mutex::new(Extras::default()),
            }),
        }
    }

    /// The connection's id, unique within its host.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The host this connection belongs to (for broadcasts and channels).
    pub fn host(&self) -> crate::WsHost {
        crate::WsHost { shared: self.inner.host.clone() }
    }

    /// The request path of the handshake.
    pub fn path(&self) -> &str {
        self.inner.request.path()
    }

    /// A query string parameter of the handshake request (first value).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.inner.request.query_pairs().iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every query string parameter, decoded, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        self.inner.request.query_pairs()
    }

    /// A route parameter (`/rooms/:room` gives `param("room")`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.inner.request.param(name)
    }

    /// The route parameters.
    pub fn params(&self) -> &Params {
        self.inner.request.params()
    }

    /// The handshake request's headers, without those the handshake itself
    /// consumed (`Connection`, `Upgrade`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version`, `Sec-WebSocket-Extensions`: not kept, to
    /// keep idle connections small; what was negotiated is
    /// [`WsConn::protocol`]). `Sec-WebSocket-Protocol`, the offer, is kept.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.request.headers()
    }

    /// A request header as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.request.header(name)
    }

    /// A cookie of the handshake request.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.inner.request.cookies().iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The host name the client asked for (`Host` header, without port).
    pub fn host_name(&self) -> &str {
        self.inner.request.host()
    }

    /// The client's IP address.
    pub fn ip(&self) -> IpAddr {
        self.inner.request.peer().ip()
    }

    /// The client's address and port.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.request.peer()
    }

    /// Whether the connection came over HTTPS (`wss://`).
    pub fn is_secure(&self) -> bool {
        self.inner.request.is_secure()
    }

    /// The client's languages from `Accept-Language`, best first.
    pub fn languages(&self) -> &[String] {
        self.inner.request.languages()
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.request.protocol()
    }

    /// A value a middleware or the host's `authorize` hook stored on the
    /// request with `Conn::set_data`.
    pub fn data<T: Send + Sync + Clone + 'static>(&self) -> Option<&T> {
        self.inner.request.data()?.get::<T>()
    }

    /// The session shared with HTTP (same cookie, same store), when the
    /// host has sessions. Changes are kept in memory for this connection;
    /// call [`save_session`](WsConn::save_session) to store them.
    pub fn session(&self) -> Option<&Session> {
        self.inner.request.session().map(|(s, _)| s)
    }

    /// Writes the session to its store, so that the next HTTP request (and
    /// other connections) see the changes. Does nothing without sessions.
    pub async fn save_session(&self) -> crate::Result<()> {
        match self.inner.request.session() {
            Some((session, config)) => crate::session::save(config, session).await,
            None => Ok(()),
        }
    }

    /// Queues a message. Fails with [`WsError::Closed`] when the connection
    /// is closed or closing, and with [`WsError::Full`] when the queue is
    /// full and the host drops new messages.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), WsError> {
        self.push(Out::Message(message.into()))
    }

    /// Queues a text message.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), WsError> {
        self.send(Message::text(text.into()))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), WsError> {
        self.send(Message::binary(data))
    }

    /// Object mode: queues the event `{"event": event, "data": data}`.
    pub fn send_event<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), WsError> {
        self.send(object::event_message(event, data)?)
    }

    /// Object mode: sends an event with an id and waits for the client's
    /// acknowledgement, up to the host's `ack_timeout`.
    pub async fn request<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<Value, WsError> {
        self.request_timeout(event, data, self.inner.host.options.ack_timeout).await
    }

    /// Object mode: [`request`](WsConn::request) with its own timeout.
    pub async fn request_timeout<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<Value, WsError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut extras = lock(&self.inner.extras);
            // Refused at once, before a waiter table is made and the
            // event encoded (the push below would refuse it too).
            if self.inner.ended() {
                return Err(WsError::Closed);
            }
            let used = extras.used();
            used.next_id += 1;
            let id = used.next_id;
            used.waiting.get_or_insert_with(Box::default).insert(id, tx);
            id
        };
        let forget = || {
            lock(&self.inner.extras).remove_request(id);
        };
        let json = match object::event_json(event, data, Some(id)) {
            Ok(j) => j,
            Err(e) => {
                forget();
                return Err(WsError::Encode(e.to_string()));
            }
        };
        if let Err(e) = self.send_text(json) {
            forget();
            return Err(e);
        }
        object::await_ack(rx, timeout, forget).await
    }

    /// Renders template `name` of the HTTP host's template engine with
    /// `data` and sends the result as a text message.
    pub fn render<T: Serialize + ?Sized>(&self, name: &str, data: &T) -> Result<(), WsError> {
        let text = self.inner.host.render(name, data)?;
        self.send_text(text)
    }

    /// Starts the closing handshake after what is already queued. Does
    /// nothing if the connection is already closing.
    /// The reason is cut to 123 bytes. A code that may not be sent (1005,
    /// 1006, 1015, below 1000, 5000 and up: RFC 6455 §7.4) is replaced by
    /// 1011 (internal error), with a warning.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let code = if code.is_valid_on_wire() {
            code
        } else {
            tracing::warn!(code = code.0, "close code not allowed on the wire; closing with 1011 instead");
            CloseCode::INTERNAL_ERROR
        };
        if self.inner.outbox().push_close(code, reason.to_string()) {
            self.inner.wake.notify();
        }
    }

    /// Binds this connection to channel `name` of its host (creating it);
    /// `false` if it was already bound, is closed, or is in
    /// [`WsOptions::max_channels_per_connection`](crate::ws::WsOptions::max_channels_per_connection)
    /// channels already.
    pub fn bind(&self, name: &str) -> bool {
        self.host().channel(name).bind(self)
    }

    /// Unbinds this connection from channel `name`; `false` if it was not
    /// bound.
    pub fn unbind(&self, name: &str) -> bool {
        self.host().channel(name).unbind(self)
    }

    /// What this connection shows in channel presence (for example
    /// `{"nick": "ana"}`; keep it small). In the channels it is already in,
    /// the change is announced as a new `Join` of the same member (an
    /// update). Only with [`WsOptions::presence`](crate::ws::WsOptions::presence)
    /// on.
    pub fn set_presence(&self, info: Value) {
        let host = &self.inner.host;
        if host.options.presence && host.set_presence_info(self, info) && self.inner.presence_updated() {
            host.announce(self);
        }
    }

    /// This connection's node: the relay's node id, or `"local"`.
    pub fn node(&self) -> &str {
        self.inner.host.node_id()
    }

    /// The channels this connection is bound to.
    pub fn channels(&self) -> Vec<String> {
        lock(&self.inner.extras).used.as_ref().map(|used| used.names.clone()).unwrap_or_default()
    }

    /// `(bytes, messages)` waiting in the outgoing queue.
    pub fn queued(&self) -> (usize, usize) {
        self.inner.outbox().len()
    }

    /// Messages discarded by the slow-client policy so far.
    pub fn dropped(&self) -> u64 {
        self.inner.outbox().dropped()
    }

    /// Whether messages can still be sent (not closing or closed).
    pub fn is_open(&self) -> bool {
        !self.inner.outbox().is_closing()
    }

    /// Queues `out`, applying the slow-client policy; wakes the driver.
    pub(crate) fn push(&self, out: Out) -> Result<(), WsError> {
        let size = match &out {
            Out::Message(m) => Some(m.payload().len()),
            _ => None,
        };
        let pushed = self.inner.outbox().push(out, &self.inner.host.limits);
        if let (Some(size), Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_)) = (size, pushed) {
            self.inner.host.metrics().sent(1, size);
        }
        self.after_push(pushed)
    }

    /// Accounts for and reports a push's outcome.
    pub(crate) fn after_push(&self, pushed: Pushed) -> Result<(), WsError> {
        if pushed.wakes() {
            self.inner.wake.notify();
        }
        if let Some(action) = pushed.slow_action() {
            self.inner.host.slow(self, action);
        }
        match pushed {
            Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_) => Ok(()),
            Pushed::Dropped => Err(WsError::Full),
            Pushed::Closing(_) | Pushed::Closed => Err(WsError::Closed),
        }
    }

    /// The client acknowledged request `id`.
    pub(crate) fn resolve(&self, id: u64, result: Result<Value, String>) {
        let waiter = lock(&self.inner.extras).remove_request(id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => tracing::debug!(id, "acknowledgement of an unknown request ignored"),
        }
    }

    /// The connection ended (its outbox is finished, so new requests are
    /// refused): fail the waiting ones.
    pub(crate) fn end_requests(&self) {
        let mut extras = lock(&self.inner.extras);
        debug_assert!(self.inner.ended(), "the driver finishes the outbox before it ends the requests");
        if let Some(used) = extras.used.as_mut() {
            used.waiting = None;
        }
    }
}

impl PartialEq for WsConn {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for WsConn {}

impl std::fmt::Debug for WsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("id", &self.inner.id)
            .field("path", &self.path())
            .field("peer", &self.peer_addr())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{WsHost, WsOptions};

    fn conn() -> WsConn {
        let host = WsHost::new("/t", WsOptions::object());
        WsConn::new(1, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default())
    }

    /// The drivers' order (finish the outbox, then leave the channels and
    /// end the requests) closes the window `is_open` leaves: once the
    /// outbox is finished, a join that got past `is_open` is refused under
    /// the lock the clean-up takes, and a request is refused before it
    /// makes a waiter table.
    #[tokio::test]
    async fn once_the_outbox_is_finished_no_channel_is_joined_and_no_request_waits() {
        let conn = conn();
        assert!(conn.inner.join_channel("before", usize::MAX));
        conn.inner.outbox().finish();
        assert!(!conn.inner.join_channel("after", usize::MAX), "joined after the driver ended");
        assert_eq!(conn.inner.leave_all_channels(), Some(vec!["before".to_string()]));
        let asked = conn.request_timeout("ask", &(), Duration::from_secs(5)).await;
        assert_eq!(asked, Err(WsError::Closed));
        let used = lock(&conn.inner.extras).used.as_ref().map(|u| u.waiting.is_some());
        assert_eq!(used, Some(false), "a refused request made a waiter table");
        conn.end_requests();
    }

    /// Regression (2026-12-05, review): a member bound again to a channel
    /// while `Channel::close` takes the old members out (here from the
    /// presence hook `close` runs) lost the new membership from its list,
    /// so its end left it in the new room for good (the room, its relay
    /// subscription and a finished outbox kept forever).
    #[tokio::test]
    async fn a_member_bound_again_during_close_leaves_the_new_room_at_its_end() {
        use crate::ws::presence::PresenceEvent;
        use std::sync::Mutex;
        let host = WsHost::new("/t", WsOptions { presence: true, ..WsOptions::object() });
        let make = |id| WsConn::new(id, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default());
        let (a, b) = (make(1), make(2));
        let pending = Arc::new(Mutex::new(Some((a.clone(), b.clone()))));
        let rebound = Arc::new(Mutex::new(None::<WsConn>));
        let (p, r) = (pending.clone(), rebound.clone());
        host.on_presence(move |event| {
            if let PresenceEvent::Leave { member, .. } = event {
                // Taken before the bind: the bind announces the other's
                // leave first (it happened first), in this hook again.
                let pending = p.lock().unwrap().take();
                if let Some((a, b)) = pending {
                    // The first to leave brings the other back, whose own
                    // leave `close` has yet to announce.
                    let other = if member.conn == a.id() { b } else { a };
                    assert!(other.bind("room"));
                    *r.lock().unwrap() = Some(other);
                }
            }
        });
        assert!(a.bind("room") && b.bind("room"));
        let room = host.channel("room");
        assert_eq!(room.close(), 2);
        let other = rebound.lock().unwrap().clone().expect("the hook ran");
        assert_eq!(room.members().iter().map(WsConn::id).collect::<Vec<_>>(), [other.id()]);
        assert_eq!(other.channels(), ["room"]);
        // Its driver ends it.
        other.inner.outbox().finish();
        super::super::channel::leave_all(&host.shared, &other);
        assert!(!room.contains(&other), "an ended connection stays in the room");
        assert!(host.channel_names().is_empty(), "the room outlived its members");
    }

    /// Threads binding and unbinding one connection at once, then its
    /// end: the presence events alternate join, leave, join, ... (each
    /// bind and unbind that took effect, in the order they took effect)
    /// and end with a leave. Without the ordered announcements a join
    /// could follow the leave that undid it.
    #[test]
    fn racing_binds_and_unbinds_are_announced_in_the_order_they_took_effect() {
        use crate::ws::presence::PresenceEvent;
        use std::sync::Mutex;
        for round in 0..20 {
            let host = WsHost::new("/t", WsOptions { presence: true, ..WsOptions::object() });
            let conn = WsConn::new(1, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default());
            let events = Arc::new(Mutex::new(Vec::new()));
            let log = events.clone();
            host.on_presence(move |e| log.lock().unwrap().push(matches!(e, PresenceEvent::Join { .. })));
            std::thread::scope(|s| {
                for t in 0..4 {
                    let conn = conn.clone();
                    s.spawn(move || {
                        for i in 0..500 {
                            if (i + t) % 2 == 0 {
                                conn.bind("room");
                            } else {
                                conn.unbind("room");
                            }
                        }
                    });
                }
            });
            conn.inner.outbox().finish();
            super::super::channel::leave_all(&host.shared, &conn);
            let events = events.lock().unwrap();
            assert!(!events.is_empty());
            for (i, joined) in events.iter().enumerate() {
                assert_eq!(*joined, i % 2 == 0, "round {round}: event {i} of {}", events.len());
            }
            assert_eq!(events.last(), Some(&false), "round {round}: the last event is a leave");
            assert!(host.shared.presence_info.lock().unwrap().is_empty());
        }
    }

    /// Regression (2026-12-05, review): `set_presence` on a connection
    /// whose end had already forgotten its presence info kept the new info
    /// for good.
    #[tokio::test]
    async fn presence_info_set_after_the_end_is_not_kept() {
        let host = WsHost::new("/t", WsOptions { presence: true, ..WsOptions::object() });
        let conn = WsConn::new(7, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default());
        conn.set_presence(serde_json::json!({ "nick": "ana" }));
        assert!(host.shared.presence_info.lock().unwrap().contains_key(&7));
        conn.inner.outbox().finish();
        super::super::channel::leave_all(&host.shared, &conn);
        assert!(host.shared.presence_info.lock().unwrap().is_empty());
        conn.set_presence(serde_json::json!({ "nick": "bob" }));
        assert!(host.shared.presence_info.lock().unwrap().is_empty(), "presence info kept for an ended connection");
    }
}
