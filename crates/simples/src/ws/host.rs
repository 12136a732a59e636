//! [`WsHost`]: a WebSocket endpoint of an HTTP host: its handlers, its
//! connections, broadcasts and channels, statistics and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use simples_ws::{CloseCode, CloseFrame, Message, Utf8Bytes};
use tokio::sync::Notify;

use super::direct;
use super::error::WsError;
use super::encode::prepare;
use super::history;
use super::metrics::Metrics;
use super::object;
use super::options::{SlowAction, WsOptions};
use super::outbox::{Limits, Out, Pushed};
use super::presence::PresenceEvent;
use super::relay::{channel_topic, host_topic, Remote};
use super::state::{
    read, write, AuthFn, Change, ChannelEvent, CloseFn, EventFn, FilterFn, Handlers, History, Members, MessageFn, OpenFn, Rooms,
    WsConn, WsHost, WsShared,
};
use crate::backplane::{Envelope, Kind, PresenceMember};
use crate::conn::Conn;
use crate::error::Error;
use crate::template::TemplateEngine;

/// What an object-mode event handler may return: the acknowledgement sent
/// when the client asked for one. `()` acknowledges with `null`; JSON
/// values, strings, numbers, booleans, vectors and options as themselves;
/// any other serializable type wrapped in [`Ack`]; `Ok(v)` as `v` and `Err(e)`
/// as `{"ack", "error": e.to_string()}`.
pub trait IntoAck {
    /// The acknowledgement's `data`, or its `error` message.
    fn into_ack(self) -> Result<Value, String>;
}

impl IntoAck for () {
    fn into_ack(self) -> Result<Value, String> {
        Ok(Value::Null)
    }
}

impl IntoAck for Value {
    fn into_ack(self) -> Result<Value, String> {
        Ok(self)
    }
}

macro_rules! ack_by_serde {
    ($($t:ty),*) => {$(
        impl IntoAck for $t {
            fn into_ack(self) -> Result<Value, String> {
                serde_json::to_value(self).map_err(|e| format!("cannot encode the reply: {e}"))
            }
        }
    )*};
}

ack_by_serde!(bool, i32, i64, u32, u64, usize, f64, String, &'static str);

impl<T: Serialize> IntoAck for Vec<T> {
    fn into_ack(self) -> Result<Value, String> {
        serde_json::to_value(self).map_err(|e| format!("cannot encode the reply: {e}"))
    }
}

impl<T: Serialize> IntoAck for Option<T> {
    fn into_ack(self) -> Result<Value, String> {
        serde_json::to_value(self).map_err(|e| format!("cannot encode the reply: {e}"))
    }
}

/// Any serializable reply, e.g. a struct: `Ack(MyReply { .. })`.
#[derive(Debug, Clone)]
pub struct Ack<T>(pub T);

impl<T: Serialize> IntoAck for Ack<T> {
    fn into_ack(self) -> Result<Value, String> {
        serde_json::to_value(self.0).map_err(|e| format!("cannot encode the reply: {e}"))
    }
}

impl<T: Serialize, E: std::fmt::Display> IntoAck for Result<T, E> {
    fn into_ack(self) -> Result<Value, String> {
        match self {
            Ok(v) => serde_json::to_value(v).map_err(|e| format!("cannot encode the reply: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Counters of a WebSocket host, from [`WsHost::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Connections open now.
    pub connections: usize,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Handshakes refused (bad request, origin, authorization).
    pub rejected: u64,
    /// Messages discarded by the slow-client policy.
    pub dropped: u64,
    /// Connections closed by the slow-client policy.
    pub slow_closed: u64,
    /// Broadcasts handed to the relay for the other nodes.
    pub published: u64,
    /// Broadcasts the relay could not take (its queue towards the
    /// backplane was full); their local delivery still happened.
    pub publish_failed: u64,
    /// Broadcasts from other nodes delivered here.
    pub remote: u64,
    /// Messages from other nodes that could not be delivered here (text
    /// that is not UTF-8, a named filter this node does not define).
    pub remote_refused: u64,
    /// Channels with a history on this node (memory backend; `0` with the
    /// Redis backend, whose history lives in Redis).
    pub history_channels: usize,
    /// Messages held in those histories.
    pub history_messages: usize,
    /// Their payload bytes (bounded by each channel's
    /// [`HistoryOptions::size`](crate::ws::HistoryOptions::size) times the
    /// message size limit).
    pub history_bytes: usize,
}

impl WsHost {
    pub(crate) fn new(path: &str, options: WsOptions) -> WsHost {
        let limits = Limits {
            bytes: options.max_queued_bytes.max(1),
            messages: options.max_queued_messages.max(1),
            policy: options.slow_policy,
        };
        let config = Arc::new(options.protocol_config());
        let host = WsHost {
            shared: Arc::new(WsShared {
                path: path.to_string(),
                options,
                limits,
                config,
                handlers: RwLock::new(Handlers::default()),
                conns: Members::new(),
                rooms: Rooms::default(),
                next_id: AtomicU64::new(1),
                accepted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                slow_closed: AtomicU64::new(0),
                published: AtomicU64::new(0),
                publish_failed: AtomicU64::new(0),
                remote: AtomicU64::new(0),
                remote_refused: AtomicU64::new(0),
                presence_info: Mutex::new(HashMap::new()),
                metrics: OnceLock::new(),
                templates: OnceLock::new(),
                force: AtomicU64::new(0),
                ended: Notify::new(),
                stopping: AtomicBool::new(false),
                upgrading: AtomicUsize::new(0),
                history: History::default(),
                admission: Arc::default(),
                loops: Mutex::default(),
            }),
        };
        if let Some(relay) = &host.shared.options.relay {
            let weak: Weak<dyn Remote> = Arc::downgrade(&host.shared) as Weak<dyn Remote>;
            if !relay.attach(path, weak) {
                tracing::warn!(path, "another WebSocket host of this node already relays this path; this one stays local");
            }
        }
        host
    }

    /// The path this host answers on.
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// The host's options.
    pub fn options(&self) -> &WsOptions {
        &self.shared.options
    }

    pub(crate) fn set_open<F, Fut>(&self, handler: F)
    where
        F: Fn(WsConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.shared.handlers).open = Some(Arc::new(move |c| Box::pin(handler(c))));
    }

    /// Object mode: handles event `event`. The handler's result is the
    /// acknowledgement when the client asked for one ([`IntoAck`]).
    pub fn on<F, Fut, R>(&self, event: &str, handler: F) -> &Self
    where
        F: Fn(WsConn, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoAck,
    {
        let handler: EventFn = Arc::new(move |c, v| {
            let fut = handler(c, v);
            Box::pin(async move { fut.await.into_ack() })
        });
        write(&self.shared.handlers).events.insert(event.to_string(), handler);
        self
    }

    /// Plain mode: handles every text and binary message.
    pub fn on_message<F, Fut>(&self, handler: F) -> &Self
    where
        F: Fn(WsConn, Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.shared.handlers).message = Some(Arc::new(move |c, m| Box::pin(handler(c, m))));
        self
    }

    /// Called once a connection has ended, with the client's close frame
    /// (`None` when the connection failed or the client sent no code). The
    /// connection has already left its channels.
    pub fn on_close<F, Fut>(&self, handler: F) -> &Self
    where
        F: Fn(WsConn, Option<CloseFrame>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.shared.handlers).close = Some(Arc::new(move |c, f| Box::pin(handler(c, f))));
        self
    }

    /// The handshake hook: runs after the origin check, before the
    /// connection is accepted, with the request (session, cookies, headers,
    /// query). Return the `Conn` (optionally with `set_data` values, which
    /// [`WsConn::data`] then gives) to accept, or an [`Error`] whose status
    /// (e.g. 401, 403) refuses the handshake.
    pub fn authorize<F, Fut>(&self, hook: F) -> &Self
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Conn, Error>> + Send + 'static,
    {
        write(&self.shared.handlers).authorize = Some(Arc::new(move |c| Box::pin(hook(c))));
        self
    }

    /// Called (synchronously, keep it short) each time the slow-client
    /// policy drops messages or closes a connection.
    pub fn on_slow(&self, hook: impl Fn(&WsConn, SlowAction) + Send + Sync + 'static) -> &Self {
        write(&self.shared.handlers).slow = Some(Arc::new(hook));
        self
    }

    /// Called (synchronously, keep it short) on every channel bind, unbind
    /// and close. One connection's `Bind` and `Unbind` events (and its
    /// presence changes) come in the order its memberships changed, one at
    /// a time: while one thread announces a connection's changes, a bind
    /// or unbind of it on another thread (or in the hook itself) leaves
    /// its event to that thread, so it may run just after `bind`/`unbind`
    /// returned, on that thread (and a closed connection's `Unbind` events
    /// just after its `on_close`). A connection bound to a channel it is
    /// already in under a room of the same name (bound again while
    /// [`Channel::close`](crate::ws::Channel::close) empties the old one)
    /// gets no second `Bind`, and its `Unbind` comes when it leaves the
    /// last one.
    pub fn on_channel(&self, hook: impl Fn(&ChannelEvent) + Send + Sync + 'static) -> &Self {
        write(&self.shared.handlers).channel = Some(Arc::new(hook));
        self
    }

    /// Called (synchronously, keep it short) when a connection joins or
    /// leaves a channel, on this node or (with a relay) on another node
    /// that shares the channel with this one. Only with
    /// [`WsOptions::presence`] on. In order per connection, as
    /// [`on_channel`](WsHost::on_channel)'s events.
    pub fn on_presence(&self, hook: impl Fn(&PresenceEvent) + Send + Sync + 'static) -> &Self {
        write(&self.shared.handlers).presence = Some(Arc::new(hook));
        self
    }

    /// Defines the named filter `name`, for [`broadcast_named`](WsHost::broadcast_named)
    /// and [`Channel::broadcast_named`](crate::ws::Channel::broadcast_named).
    /// With a relay, define it on every node: each node applies it to its
    /// own connections.
    pub fn filter(&self, name: &str, filter: impl Fn(&WsConn) -> bool + Send + Sync + 'static) -> &Self {
        write(&self.shared.handlers).filters.insert(name.to_string(), Arc::new(filter));
        self
    }

    /// The open connections.
    pub fn connections(&self) -> Vec<WsConn> {
        self.shared.conns.snapshot().to_vec()
    }

    /// The open connection with this id.
    pub fn connection(&self, id: u64) -> Option<WsConn> {
        self.shared.conns.get(id)
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.shared.conns.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host's counters.
    pub fn stats(&self) -> WsStats {
        let s = &self.shared;
        let history = s.history.memory.usage();
        WsStats {
            connections: self.len(),
            accepted: s.accepted.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            slow_closed: s.slow_closed.load(Ordering::Relaxed),
            published: s.published.load(Ordering::Relaxed),
            publish_failed: s.publish_failed.load(Ordering::Relaxed),
            remote: s.remote.load(Ordering::Relaxed),
            remote_refused: s.remote_refused.load(Ordering::Relaxed),
            history_channels: history.channels,
            history_messages: history.messages,
            history_bytes: history.bytes,
        }
    }

    /// Sends `message` to every open connection, on every node when the
    /// host has a relay; the frame is encoded once per node and its bytes
    /// shared. Returns how many connections of this node queued it.
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        self.shared.fan_out(Audience::host(), message.into()).unwrap_or(0)
    }

    /// [`broadcast`](WsHost::broadcast) to everyone but `conn` (typically
    /// the sender), on every node.
    pub fn broadcast_except(&self, message: impl Into<Message>, conn: &WsConn) -> usize {
        self.shared.fan_out(Audience { except: Some(conn.id()), ..Audience::host() }, message.into()).unwrap_or(0)
    }

    /// [`broadcast`](WsHost::broadcast) to the connections the named filter
    /// (defined with [`filter`](WsHost::filter)) keeps, on every node.
    /// Fails when this node does not define the filter.
    pub fn broadcast_named(&self, filter: &str, message: impl Into<Message>) -> Result<usize, WsError> {
        self.shared.fan_out(Audience { named: Some(filter), ..Audience::host() }, message.into())
    }

    /// Sends `message` to this node's connections for which `filter` is
    /// true (a closure cannot travel: with a relay, use a named filter to
    /// filter on every node). The filter runs on a snapshot of the
    /// connections with no lock held: it may consult or change any channel.
    pub fn broadcast_filter(&self, message: impl Into<Message>, filter: impl Fn(&WsConn) -> bool) -> usize {
        self.shared.broadcast_local(None, message.into(), filter)
    }

    /// Object mode: broadcasts the event `{"event", "data"}`, on every node.
    pub fn broadcast_event<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, WsError> {
        self.shared.fan_out(Audience::host(), object::event_message(event, data)?)
    }

    /// Object mode: broadcasts the event to this node's connections that
    /// `filter` keeps (see [`broadcast_filter`](WsHost::broadcast_filter)).
    pub fn broadcast_event_filter<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        filter: impl Fn(&WsConn) -> bool,
    ) -> Result<usize, WsError> {
        Ok(self.shared.broadcast_local(None, object::event_message(event, data)?, filter))
    }

    /// Renders template `name` with `data` once and broadcasts the text.
    pub fn broadcast_render<T: Serialize + ?Sized>(&self, name: &str, data: &T) -> Result<usize, WsError> {
        let text = self.shared.render(name, data)?;
        Ok(self.broadcast(Message::text(text)))
    }

    /// The names of the channels that have members.
    pub fn channel_names(&self) -> Vec<String> {
        self.shared.rooms.names()
    }

    /// Starts the closing handshake on every connection (after what each
    /// has queued).
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        for conn in self.connections() {
            conn.close(code, reason);
        }
    }

    /// Graceful shutdown: close 1001 to everyone (including connections
    /// answered 101 that have not started yet), wait up to `deadline` for
    /// the closing handshakes, then drop what is left.
    pub(crate) async fn shutdown(&self, deadline: Duration) {
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        self.close_all(CloseCode::GOING_AWAY, "server shutting down");
        let all_ended = async {
            loop {
                let ended = shared.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if self.is_empty() && shared.upgrading.load(Ordering::SeqCst) == 0 {
                    return;
                }
                ended.await;
            }
        };
        if tokio::time::timeout(deadline, all_ended).await.is_err() {
            tracing::warn!(path = %shared.path, left = self.len(), "WebSocket connections still open after the shutdown deadline; dropping them");
            shared.force.fetch_add(1, Ordering::SeqCst);
            for conn in self.connections() {
                conn.inner.wake.notify();
            }
        }
    }

    /// The server (re)starts: handshakes are accepted again.
    pub(crate) fn resume(&self) {
        self.shared.stopping.store(false, Ordering::SeqCst);
    }

    /// Called once the server starts: the HTTP host's template engine.
    pub(crate) fn attach_templates(&self, templates: Option<Arc<dyn TemplateEngine>>) {
        // The series exist from the start (zero), not from the first use.
        let _ = self.shared.metrics();
        if let Some(t) = templates {
            let _ = self.shared.templates.set(t);
        }
    }
}

impl WsShared {
    /// The open and close handlers (what a connection's task keeps).
    pub(crate) fn lifecycle_handlers(&self) -> (Option<OpenFn>, Option<CloseFn>) {
        let h = read(&self.handlers);
        (h.open.clone(), h.close.clone())
    }

    pub(crate) fn authorize_hook(&self) -> Option<AuthFn> {
        read(&self.handlers).authorize.clone()
    }

    pub(crate) fn message_handler(&self) -> Option<MessageFn> {
        read(&self.handlers).message.clone()
    }

    /// The host's metric handles.
    pub(crate) fn metrics(&self) -> &Metrics {
        self.metrics.get_or_init(|| Metrics::new(&self.path))
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A handshake was answered 101: `false` (refuse it) while stopping.
    pub(crate) fn begin_upgrade(&self) -> bool {
        self.upgrading.fetch_add(1, Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            self.end_upgrade();
            return false;
        }
        true
    }

    /// The upgrade failed: nothing will register.
    pub(crate) fn end_upgrade(&self) {
        self.upgrading.fetch_sub(1, Ordering::SeqCst);
        self.ended.notify_waiters();
    }

    /// The upgraded connection starts; closed at once if the server is
    /// stopping (its handshake was answered just before the stop).
    pub(crate) fn register(&self, conn: &WsConn) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.conns.insert(conn, || true);
        self.metrics().connections.increment(1.0);
        self.upgrading.fetch_sub(1, Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            conn.close(CloseCode::GOING_AWAY, "server shutting down");
        }
    }

    pub(crate) fn unregister(&self, conn: &WsConn) {
        if self.conns.remove(conn.id(), |_| {}).is_some() {
            self.metrics().connections.decrement(1.0);
        }
        self.ended.notify_waiters();
    }

    pub(crate) fn render<T: Serialize + ?Sized>(&self, name: &str, data: &T) -> Result<String, WsError> {
        let engine = self.templates.get().ok_or_else(|| WsError::Encode("the host has no template engine".into()))?;
        let value = serde_json::to_value(data).map_err(|e| WsError::Encode(e.to_string()))?;
        engine.render(name, &value).map_err(|e| WsError::Encode(e.reason().to_string()))
    }

    /// Accounts for a slow-client action and reports it.
    pub(crate) fn slow(&self, conn: &WsConn, action: SlowAction) {
        match action {
            SlowAction::Dropped(n) => {
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
                // (The connection's own count is its outbox's.)
                self.metrics().dropped.increment(n as u64);
            }
            SlowAction::Closed(_) => {
                self.slow_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let hook = read(&self.handlers).slow.clone();
        if let Some(hook) = hook {
            call_hook("on_slow", || hook(conn, action));
        }
    }

    /// Channel `name` got its first member on this node: with a relay,
    /// receive its traffic from now on (interest-based routing).
    pub(crate) fn room_appeared(&self, name: &str) {
        if let Some(relay) = &self.options.relay {
            relay.subscribe(&channel_topic(&self.path, name));
        }
    }

    /// Channel `name` lost its last member on this node: stop receiving
    /// its traffic.
    pub(crate) fn room_disappeared(&self, name: &str) {
        if let Some(relay) = &self.options.relay {
            relay.unsubscribe(&channel_topic(&self.path, name));
        }
    }

    /// Announces `conn`'s queued membership changes (`Change`), unless
    /// another thread does: then that thread announces these too, after
    /// the ones before them. Each change was queued under its room's lock
    /// with the membership itself, so a bind racing an unbind or the
    /// connection's end is announced in the order the memberships
    /// changed: the backplane never keeps a presence entry for a member
    /// that left, and the hooks see a join before its leave. Runs the
    /// hooks with no lock held (a hook may bind or unbind again: its
    /// changes are announced after it returns, by this loop). Once the
    /// connection has ended and its last leave is announced, its presence
    /// info goes (`set_presence`).
    pub(crate) fn announce(&self, conn: &WsConn) {
        if let Err(done) = conn.inner.claim_announcing() {
            if done {
                self.forget_presence_info(conn.id());
            }
            return;
        }
        struct Role<'a>(&'a WsConn);
        impl Drop for Role<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.inner.abandon_announcing();
                }
            }
        }
        let _role = Role(conn);
        let done = loop {
            match conn.inner.next_change() {
                Ok(Change::Bound(name)) => self.membership(&name, conn, true),
                Ok(Change::Unbound(name)) => self.membership(&name, conn, false),
                Ok(Change::Closed(name)) if self.options.presence => self.presence_change(&name, conn, false),
                Ok(Change::Updated(name)) if self.options.presence => self.presence_change(&name, conn, true),
                Ok(Change::Closed(_) | Change::Updated(_)) => {}
                Err(done) => break done,
            }
        };
        if done {
            self.forget_presence_info(conn.id());
        }
    }

    /// `conn` joined (`true`) or left channel `name`: the `on_channel`
    /// hook, then presence.
    fn membership(&self, name: &str, conn: &WsConn, joined: bool) {
        let event = if joined {
            ChannelEvent::Bind { channel: name.to_string(), conn: conn.clone() }
        } else {
            ChannelEvent::Unbind { channel: name.to_string(), conn: conn.clone() }
        };
        self.channel_event(&event);
        if self.options.presence {
            self.presence_change(name, conn, joined);
        }
    }

    /// Presence: the backplane's entry, then the other nodes' `on_presence`
    /// hooks (announced once the entry is written), and this node's.
    fn presence_change(&self, name: &str, conn: &WsConn, joined: bool) {
        let member = self.presence_member(conn);
        if let (Some(relay), Ok(json)) = (&self.options.relay, serde_json::to_vec(&member)) {
            let kind = if joined { Kind::PresenceJoin } else { Kind::PresenceLeave };
            let announce = self.envelope(kind, name, None, None, false, json.into());
            relay.presence(channel_topic(&self.path, name), member.clone(), joined, &announce);
        }
        self.presence_event(name, member, joined);
    }

    /// This node's presence entry for `conn`.
    pub(crate) fn presence_member(&self, conn: &WsConn) -> PresenceMember {
        let info = self.presence_info.lock().unwrap_or_else(|e| e.into_inner()).get(&conn.id()).cloned();
        PresenceMember { node: self.node_id().to_string(), conn: conn.id(), info: info.unwrap_or(Value::Null) }
    }

    /// Records `conn`'s presence info; `false` (nothing kept) once the
    /// connection has ended. Its end forgets the info after marking it
    /// ended (`leave_all`), so an insert that still sees it open is
    /// removed there, and one that sees it ended removes itself.
    pub(crate) fn set_presence_info(&self, conn: &WsConn, info: Value) -> bool {
        let infos = || self.presence_info.lock().unwrap_or_else(|e| e.into_inner());
        infos().insert(conn.id(), info);
        if conn.inner.ended() {
            infos().remove(&conn.id());
            return false;
        }
        true
    }

    /// The connection ended and its leaves were announced (with its info):
    /// forget the info.
    pub(crate) fn forget_presence_info(&self, conn: u64) {
        if self.options.presence {
            self.presence_info.lock().unwrap_or_else(|e| e.into_inner()).remove(&conn);
        }
    }

    /// This node's id: the relay's, or `"local"` without one.
    pub(crate) fn node_id(&self) -> &str {
        self.options.relay.as_ref().map_or("local", |r| r.node_id())
    }

    fn presence_event(&self, channel: &str, member: PresenceMember, joined: bool) {
        let hook = read(&self.handlers).presence.clone();
        if let Some(hook) = hook {
            let channel = channel.to_string();
            let event = if joined { PresenceEvent::Join { channel, member } } else { PresenceEvent::Leave { channel, member } };
            call_hook("on_presence", || hook(&event));
        }
    }

    /// Delivers `message` to this node's audience and, with a relay,
    /// publishes it once for the other nodes. Returns how many connections
    /// of this node queued it.
    pub(crate) fn fan_out(&self, audience: Audience<'_>, message: Message) -> Result<usize, WsError> {
        let named = match audience.named {
            Some(name) => Some(self.named_filter(name)?),
            None => None,
        };
        if let Some(name) = audience.channel {
            if let Some(options) = self.history.options_for(name) {
                return Ok(history::publish(self, name, message, options, audience.except, named, audience.named));
            }
        }
        let binary = matches!(message, Message::Binary(_));
        let payload = match &message {
            Message::Text(t) => Some(t.as_bytes().clone()),
            Message::Binary(b) => Some(b.clone()),
            _ => None,
        };
        let keep = |c: &WsConn| Some(c.id()) != audience.except && named.as_ref().map_or(true, |f| f(c));
        let queued = self.broadcast_local(audience.channel, message, keep);
        if let (Some(_), Some(payload)) = (&self.options.relay, payload) {
            let (kind, topic, channel) = match audience.channel {
                None => (Kind::HostBroadcast, host_topic(&self.path), ""),
                Some(name) => (Kind::ChannelBroadcast, channel_topic(&self.path, name), name),
            };
            let except = audience.except.map(|id| (self.node_id().to_string(), id));
            let envelope = self.envelope(kind, channel, except, audience.named, binary, payload);
            self.publish(&topic, &envelope);
        }
        Ok(queued)
    }

    /// Broadcasts `message` to this node's connections (`channel: None`)
    /// or to the members of `channel` here, those `filter` keeps; no relay.
    /// Returns how many queued it.
    pub(crate) fn broadcast_local(&self, channel: Option<&str>, message: Message, filter: impl Fn(&WsConn) -> bool) -> usize {
        let targets = match channel {
            None => Some(self.conns.snapshot()),
            Some(name) => self.rooms.snapshot(name),
        };
        targets.map_or(0, |t| broadcast_with(self, message, &t, filter))
    }

    pub(crate) fn named_filter(&self, name: &str) -> Result<FilterFn, WsError> {
        read(&self.handlers).filters.get(name).cloned().ok_or_else(|| WsError::UnknownFilter(name.to_string()))
    }

    pub(crate) fn envelope(
        &self,
        kind: Kind,
        channel: &str,
        except: Option<(String, u64)>,
        filter: Option<&str>,
        binary: bool,
        payload: bytes::Bytes,
    ) -> Envelope {
        Envelope {
            kind,
            binary,
            node: self.node_id().to_string(),
            namespace: self.path.clone(),
            channel: channel.to_string(),
            except,
            filter: filter.unwrap_or_default().to_string(),
            payload,
            offset: None,
        }
    }

    pub(crate) fn publish(&self, topic: &str, envelope: &Envelope) {
        let Some(relay) = &self.options.relay else { return };
        self.count_published(relay.publish(topic, envelope));
    }

    /// A broadcast handed to the backplane (`ok`) or refused by it.
    pub(crate) fn count_published(&self, ok: bool) {
        let counter = if ok { &self.published } else { &self.publish_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A broadcast from another node delivered here.
    pub(crate) fn count_remote(&self) {
        self.remote.fetch_add(1, Ordering::Relaxed);
    }

    /// A message from another node that cannot be delivered here.
    pub(crate) fn refuse_remote(&self, why: &str) {
        self.remote_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(why, "message from the backplane dropped");
    }

    pub(crate) fn channel_event(&self, event: &ChannelEvent) {
        let hook = read(&self.handlers).channel.clone();
        if let Some(hook) = hook {
            call_hook("on_channel", || hook(event));
        }
    }
}

/// Runs an application hook; a panic in it is logged and goes no further.
/// Hooks run on whichever thread changed what they report: an event
/// loop's among them, where a panic would end every connection on it.
fn call_hook(name: &'static str, hook: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
        tracing::error!(hook = name, "a WebSocket hook panicked; the server goes on");
    }
}

/// Broadcasts `message`, encoded once, to the connections of `targets`
/// that `filter` keeps; returns how many queued it. Runs with no lock held
/// (each push takes only its connection's outbox lock): `targets` is a
/// snapshot, and the filter and slow-client hooks may call back into the
/// host.
pub(crate) fn broadcast_with(
    host: &WsShared,
    message: Message,
    targets: &[WsConn],
    filter: impl Fn(&WsConn) -> bool,
) -> usize {
    let Some(frame) = prepare(host, message) else { return 0 };
    let mut queued = 0;
    let metrics = host.metrics();
    metrics.broadcasts.increment(1);
    let here = direct::here();
    for conn in targets.iter().filter(|c| filter(c)) {
        if here != 0 && direct::offer(here, &conn.inner.wake, &frame) {
            queued += 1;
            continue;
        }
        let pushed = conn.inner.outbox().push(Out::Frame(frame.clone()), &host.limits);
        if pushed.wakes() {
            conn.inner.wake.notify();
        }
        if matches!(pushed, Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_)) {
            queued += 1;
        }
        if let Some(action) = pushed.slow_action() {
            host.slow(conn, action);
        }
    }
    metrics.sent(queued, frame.as_bytes().len());
    queued
}

/// Which connections a broadcast is for (on every node).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Audience<'a> {
    /// A channel's members, or (`None`) every connection of the host.
    pub(crate) channel: Option<&'a str>,
    /// A connection of this node to skip.
    pub(crate) except: Option<u64>,
    /// A named filter every node applies.
    pub(crate) named: Option<&'a str>,
}

impl<'a> Audience<'a> {
    pub(crate) fn host() -> Audience<'a> {
        Audience::default()
    }

    pub(crate) fn channel(name: &'a str) -> Audience<'a> {
        Audience { channel: Some(name), ..Audience::default() }
    }
}

impl Remote for WsShared {
    /// A broadcast or presence change from another node: delivered to this
    /// node's audience, the frame encoded once for all of it.
    fn deliver(&self, envelope: Envelope) {
        if let (Kind::ChannelBroadcast, Some(offset)) = (envelope.kind, envelope.offset) {
            // Numbered by the history store: every node delivers it, this
            // one included.
            return history::deliver_numbered(self, envelope, offset);
        }
        if envelope.node == self.node_id() {
            return; // Our own publication: delivered locally already.
        }
        match envelope.kind {
            Kind::HostBroadcast | Kind::ChannelBroadcast => {
                let message = if envelope.binary {
                    Message::Binary(envelope.payload)
                } else {
                    match Utf8Bytes::try_from_bytes(envelope.payload) {
                        Ok(text) => Message::Text(text),
                        Err(_) => {
                            self.remote_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(node = %envelope.node, "text message from another node is not UTF-8; dropped");
                            return;
                        }
                    }
                };
                let named = if envelope.filter.is_empty() {
                    None
                } else {
                    match self.named_filter(&envelope.filter) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            self.remote_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "broadcast from another node dropped");
                            return;
                        }
                    }
                };
                let targets = if envelope.kind == Kind::HostBroadcast {
                    Some(self.conns.snapshot())
                } else {
                    self.rooms.snapshot(&envelope.channel)
                };
                let Some(targets) = targets else { return };
                self.remote.fetch_add(1, Ordering::Relaxed);
                let except = envelope.except.as_ref().filter(|(node, _)| node == self.node_id()).map(|(_, id)| *id);
                if envelope.kind == Kind::ChannelBroadcast {
                    if let Some(options) = self.history.options_for(&envelope.channel) {
                        history::publish_local(self, &envelope.channel, message, options, except, named);
                        return;
                    }
                }
                broadcast_with(self, message, &targets, |c| {
                    Some(c.id()) != except && named.as_ref().map_or(true, |f| f(c))
                });
            }
            Kind::PresenceJoin | Kind::PresenceLeave => {
                if !self.options.presence {
                    return;
                }
                match serde_json::from_slice::<PresenceMember>(&envelope.payload) {
                    Ok(member) => self.presence_event(&envelope.channel, member, envelope.kind == Kind::PresenceJoin),
                    Err(e) => tracing::warn!(error = %e, "unreadable presence change from another node ignored"),
                }
            }
        }
    }
}
