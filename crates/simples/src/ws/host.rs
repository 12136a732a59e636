//! [`WsHost`]: a WebSocket endpoint of an HTTP host: its handlers, its
//! connections, broadcasts and channels, statistics and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use simples_ws::{CloseCode, CloseFrame, Message, PreparedFrame};
use tokio::sync::Notify;

use super::channel::{Channel, ChannelEvent};
use super::conn::WsConn;
use super::error::WsError;
use super::object;
use super::options::{SlowAction, WsOptions};
use super::outbox::{Limits, Out, Pushed};
use crate::conn::Conn;
use crate::error::Error;
use crate::handler::BoxFuture;
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

pub(crate) type OpenFn = Arc<dyn Fn(WsConn) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type MessageFn = Arc<dyn Fn(WsConn, Message) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type EventFn = Arc<dyn Fn(WsConn, Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;
pub(crate) type CloseFn = Arc<dyn Fn(WsConn, Option<CloseFrame>) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type AuthFn = Arc<dyn Fn(Conn) -> BoxFuture<'static, Result<Conn, Error>> + Send + Sync>;
type SlowFn = Arc<dyn Fn(&WsConn, SlowAction) + Send + Sync>;
type ChannelFn = Arc<dyn Fn(&ChannelEvent) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) open: Option<OpenFn>,
    pub(crate) message: Option<MessageFn>,
    pub(crate) events: HashMap<String, EventFn>,
    pub(crate) close: Option<CloseFn>,
    pub(crate) authorize: Option<AuthFn>,
    slow: Option<SlowFn>,
    channel: Option<ChannelFn>,
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
}

pub(crate) struct WsShared {
    pub(crate) path: String,
    pub(crate) options: WsOptions,
    pub(crate) limits: Limits,
    pub(crate) config: Arc<simples_ws::Config>,
    handlers: RwLock<Handlers>,
    pub(crate) conns: RwLock<HashMap<u64, WsConn>>,
    pub(crate) channels: Mutex<HashMap<String, HashMap<u64, WsConn>>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    dropped: AtomicU64,
    slow_closed: AtomicU64,
    templates: OnceLock<Arc<dyn TemplateEngine>>,
    /// Bumped when connections left after a shutdown deadline must be
    /// dropped: a connection ends when it differs from the value it saw at
    /// its start (so a restarted server's new connections are unaffected).
    pub(crate) force: AtomicU64,
    /// Notified whenever a connection ends (or an upgrade fails).
    ended: Notify,
    /// Set from the start of a stop until the server starts again: new
    /// handshakes are refused (503), and a connection that was answered 101
    /// just before is closed (1001) as soon as it registers.
    stopping: AtomicBool,
    /// Connections answered 101 that have not registered yet.
    upgrading: AtomicUsize,
}

/// A WebSocket endpoint: the value [`Host::ws`](crate::Host::ws) returns.
/// Cheap to clone; keep one to broadcast from anywhere (an HTTP route, a
/// timer, another host).
///
/// Handlers are registered on it: [`on`](WsHost::on) per event (object
/// mode), [`on_message`](WsHost::on_message) (plain mode),
/// [`on_close`](WsHost::on_close), [`authorize`](WsHost::authorize) (the
/// handshake hook), [`on_slow`](WsHost::on_slow) and
/// [`on_channel`](WsHost::on_channel). Each connection runs its handlers
/// one at a time, in the order its messages arrived.
#[derive(Clone)]
pub struct WsHost {
    pub(crate) shared: Arc<WsShared>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl WsHost {
    pub(crate) fn new(path: &str, options: WsOptions) -> WsHost {
        let limits = Limits {
            bytes: options.max_queued_bytes.max(1),
            messages: options.max_queued_messages.max(1),
            policy: options.slow_policy,
        };
        let config = Arc::new(options.protocol_config());
        WsHost {
            shared: Arc::new(WsShared {
                path: path.to_string(),
                options,
                limits,
                config,
                handlers: RwLock::new(Handlers::default()),
                conns: RwLock::new(HashMap::new()),
                channels: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                accepted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                slow_closed: AtomicU64::new(0),
                templates: OnceLock::new(),
                force: AtomicU64::new(0),
                ended: Notify::new(),
                stopping: AtomicBool::new(false),
                upgrading: AtomicUsize::new(0),
            }),
        }
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
    /// and close.
    pub fn on_channel(&self, hook: impl Fn(&ChannelEvent) + Send + Sync + 'static) -> &Self {
        write(&self.shared.handlers).channel = Some(Arc::new(hook));
        self
    }

    /// The open connections.
    pub fn connections(&self) -> Vec<WsConn> {
        read(&self.shared.conns).values().cloned().collect()
    }

    /// The open connection with this id.
    pub fn connection(&self, id: u64) -> Option<WsConn> {
        read(&self.shared.conns).get(&id).cloned()
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        read(&self.shared.conns).len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host's counters.
    pub fn stats(&self) -> WsStats {
        let s = &self.shared;
        WsStats {
            connections: self.len(),
            accepted: s.accepted.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            slow_closed: s.slow_closed.load(Ordering::Relaxed),
        }
    }

    /// Sends `message` to every open connection; the frame is encoded once
    /// and its bytes shared. Returns how many connections queued it.
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        self.broadcast_filter(message, |_| true)
    }

    /// Sends `message` to every open connection for which `filter` is true.
    pub fn broadcast_filter(&self, message: impl Into<Message>, filter: impl Fn(&WsConn) -> bool) -> usize {
        broadcast_with(&self.shared, message.into(), |each| {
            read(&self.shared.conns).values().filter(|c| filter(c)).for_each(each)
        })
    }

    /// Object mode: broadcasts the event `{"event", "data"}`.
    pub fn broadcast_event<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<usize, WsError> {
        self.broadcast_event_filter(event, data, |_| true)
    }

    /// Object mode: broadcasts the event to the connections `filter` keeps.
    pub fn broadcast_event_filter<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        filter: impl Fn(&WsConn) -> bool,
    ) -> Result<usize, WsError> {
        Ok(self.broadcast_filter(object::event_message(event, data)?, filter))
    }

    /// Renders template `name` with `data` once and broadcasts the text.
    pub fn broadcast_render<T: Serialize + ?Sized>(&self, name: &str, data: &T) -> Result<usize, WsError> {
        let text = self.shared.render(name, data)?;
        Ok(self.broadcast(Message::text(text)))
    }

    /// Channel `name` of this host (it exists while it has members).
    pub fn channel(&self, name: &str) -> Channel {
        Channel::new(self.shared.clone(), name)
    }

    /// The names of the channels that have members.
    pub fn channel_names(&self) -> Vec<String> {
        self.shared.channels.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
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

    pub(crate) fn event_handler(&self, event: &str) -> Option<EventFn> {
        read(&self.handlers).events.get(event).cloned()
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
        write(&self.conns).insert(conn.id(), conn.clone());
        self.upgrading.fetch_sub(1, Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            conn.close(CloseCode::GOING_AWAY, "server shutting down");
        }
    }

    pub(crate) fn unregister(&self, conn: &WsConn) {
        write(&self.conns).remove(&conn.id());
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
                conn.inner.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
            SlowAction::Closed(_) => {
                self.slow_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let hook = read(&self.handlers).slow.clone();
        if let Some(hook) = hook {
            hook(conn, action);
        }
    }

    pub(crate) fn channel_event(&self, event: &ChannelEvent) {
        let hook = read(&self.handlers).channel.clone();
        if let Some(hook) = hook {
            hook(event);
        }
    }
}

/// Encodes a broadcast message once; `None` (logged) for control messages.
/// With permessage-deflate on the host, a message of at least `min_size`
/// bytes is compressed once too: connections that agreed to
/// `server_no_context_takeover` with a large enough window take the
/// compressed frame, the others get the same message uncompressed.
pub(crate) fn prepare(host: &WsShared, message: Message) -> Option<PreparedFrame> {
    let prepared = match &host.options.deflate {
        Some(d) if message.payload().len() >= d.min_size => {
            PreparedFrame::compressed_with_window(&message, d.level, d.server_max_window_bits)
        }
        _ => PreparedFrame::new(&message),
    };
    match prepared {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "cannot broadcast this message");
            None
        }
    }
}

/// Broadcasts `message`, encoded once, to the connections `targets` hands
/// to its callback (under whatever lock it needs: it is released when
/// `targets` returns). Returns how many queued it. Slow-client outcomes are
/// reported after that, with no lock held, as hooks may call back into the
/// host.
pub(crate) fn broadcast_with(host: &WsShared, message: Message, targets: impl FnOnce(&mut dyn FnMut(&WsConn))) -> usize {
    let Some(frame) = prepare(host, message) else { return 0 };
    let mut queued = 0;
    let mut slow = Vec::new();
    targets(&mut |conn: &WsConn| {
        let pushed = conn.inner.outbox().push(Out::Frame(frame.clone()), &host.limits);
        if pushed.wakes() {
            conn.inner.wake.notify();
        }
        if matches!(pushed, Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_)) {
            queued += 1;
        }
        if pushed.slow_action().is_some() {
            slow.push((conn.clone(), pushed));
        }
    });
    for (conn, pushed) in slow {
        if let Some(action) = pushed.slow_action() {
            host.slow(&conn, action);
        }
    }
    queued
}
