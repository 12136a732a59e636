//! [`ObjectClient`]: a Rust client for object-mode hosts, for services,
//! bots and tests that talk to a simples application as `simples.js`
//! does: events (`emit`), requests with acknowledgements and a timeout
//! (`request`), handlers for the server's events (answering its requests),
//! and reconnection with exponential backoff and jitter, messages sent
//! while disconnected queued (bounded) and sent on reconnection.
//!
//! The wire format is the hosts' own (`object.rs`, `assets/PROTOCOL.md`).
//!
//! ```no_run
//! use simples::ws::{ObjectClient, ObjectClientOptions};
//!
//! # async fn f() -> Result<(), simples::ws::WsError> {
//! let client = ObjectClient::connect("ws://127.0.0.1:8080/chat", ObjectClientOptions::default()).await?;
//! client.on("said", |data| async move { println!("{data}") });
//! let members = client.request("join", &serde_json::json!({ "room": "rust" })).await?;
//! client.emit("say", &serde_json::json!({ "text": "hello" }))?;
//! client.close().await;
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use simples_ws::tokio::{connect, WebSocket};
use simples_ws::{CloseCode, Message};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use super::error::WsError;
use super::host::IntoAck;
use super::object::{self, Incoming};
use crate::handler::BoxFuture;

/// How an [`ObjectClient`] reconnects and queues. Every field has a
/// default (`ObjectClientOptions::default()`), the same as `simples.js`'s.
#[derive(Debug, Clone)]
pub struct ObjectClientOptions {
    /// Reconnect after every close not asked by [`ObjectClient::close`].
    /// Default: `true`.
    pub reconnect: bool,
    /// Wait before the first reconnection attempt. Default: 500 ms.
    pub min_delay: Duration,
    /// Longest wait between attempts. Default: 10 s.
    pub max_delay: Duration,
    /// Growth of the wait: `min(max_delay, min_delay * factor^(attempt-1))`.
    /// Default: `2.0`.
    pub factor: f64,
    /// The wait is multiplied by `1 - jitter * random()` (0 to 1).
    /// Default: `0.5`.
    pub jitter: f64,
    /// How long [`ObjectClient::request`] waits for the acknowledgement,
    /// counted from the call (also while queued). Default: 10 s.
    pub ack_timeout: Duration,
    /// Messages kept while disconnected; past it the oldest is dropped and
    /// counted ([`ObjectClient::dropped`]; a dropped request fails).
    /// Default: `1000`.
    pub queue_limit: usize,
    /// Deepest nesting accepted in the server's JSON. Default: `32`.
    pub max_json_depth: usize,
}

impl Default for ObjectClientOptions {
    fn default() -> Self {
        ObjectClientOptions {
            reconnect: true,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: 0.5,
            ack_timeout: Duration::from_secs(10),
            queue_limit: 1000,
            max_json_depth: 32,
        }
    }
}

impl ObjectClientOptions {
    /// The wait before reconnection attempt `attempt` (from 1), for a
    /// random number `r` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, r: f64) -> Duration {
        let grown = self.min_delay.as_secs_f64() * self.factor.max(1.0).powi(attempt.saturating_sub(1) as i32);
        let capped = grown.min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(capped * (1.0 - self.jitter.clamp(0.0, 1.0) * r))
    }
}

/// What happens to an [`ObjectClient`]'s connection, for
/// [`ObjectClient::on_lifecycle`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Connected (again); queued messages are already sent.
    Open,
    /// The connection ended; `code`: the server's close code, if it sent one.
    Close {
        /// The close code.
        code: Option<u16>,
    },
    /// Waiting `delay` before reconnection attempt `attempt` (from 1).
    Reconnecting {
        /// The attempt's number, from 1 after each successful open.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// The server sent an `error` event, or something this client could
    /// not read (`code` `invalid_message`, `binary`).
    Error {
        /// A short code (`invalid_json`, `too_deep`, `binary`, ...).
        code: String,
        /// What went wrong.
        message: String,
    },
}

type EventFn = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;
type LifecycleFn = Arc<dyn Fn(&ClientEvent) + Send + Sync>;

/// A connection to an object-mode WebSocket host that reconnects by
/// itself. Cheap to clone; the connection closes when [`close`](ObjectClient::close)
/// is called or the last clone is dropped.
#[derive(Clone)]
pub struct ObjectClient {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// Closes the client when the last handle goes (the task holds `Inner`).
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shut();
    }
}

struct Outgoing {
    text: String,
    request: Option<u64>,
}

struct Inner {
    url: String,
    options: ObjectClientOptions,
    handlers: RwLock<HashMap<String, EventFn>>,
    lifecycle: RwLock<Option<LifecycleFn>>,
    queue: Mutex<VecDeque<Outgoing>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    wake: Notify,
    next_id: AtomicU64,
    connected: AtomicBool,
    closed: AtomicBool,
    dropped: AtomicU64,
    ended: Notify,
    done: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ObjectClient {
    /// Connects to `url` (`ws://host:port/path`); the first connection must
    /// succeed (its error is returned), later ones are retried.
    pub async fn connect(url: &str, options: ObjectClientOptions) -> Result<ObjectClient, WsError> {
        let (ws, _) = connect(url).await.map_err(|e| WsError::Connect(e.to_string()))?;
        let inner = Arc::new(Inner {
            url: url.to_string(),
            options,
            handlers: RwLock::new(HashMap::new()),
            lifecycle: RwLock::new(None),
            queue: Mutex::new(VecDeque::new()),
            pending: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            next_id: AtomicU64::new(1),
            connected: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            ended: Notify::new(),
            done: AtomicBool::new(false),
        });
        tokio::spawn(run(inner.clone(), ws));
        Ok(ObjectClient { _owner: Arc::new(Owner(inner.clone())), inner })
    }

    /// Handles the server's event `event`; the handler's result is the
    /// acknowledgement when the server asked for one ([`IntoAck`], as on
    /// the server).
    pub fn on<F, Fut, R>(&self, event: &str, handler: F) -> &Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoAck,
    {
        let handler: EventFn = Arc::new(move |data| {
            let fut = handler(data);
            Box::pin(async move { fut.await.into_ack() })
        });
        self.inner.handlers.write().unwrap_or_else(|e| e.into_inner()).insert(event.to_string(), handler);
        self
    }

    /// Called (synchronously, keep it short) on every [`ClientEvent`].
    pub fn on_lifecycle(&self, hook: impl Fn(&ClientEvent) + Send + Sync + 'static) -> &Self {
        *self.inner.lifecycle.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
        self
    }

    /// Sends the event `{event, data}` (queued while disconnected).
    /// Fails with [`WsError::Closed`] after [`close`](ObjectClient::close).
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), WsError> {
        let text = object::event_json(event, data, None).map_err(|e| WsError::Encode(e.to_string()))?;
        self.inner.push(Outgoing { text, request: None })
    }

    /// Sends the event with an id and waits for the server's
    /// acknowledgement, up to `ack_timeout` ([`WsError::Timeout`]; a
    /// request that timed out while queued is not sent); an error
    /// ack is [`WsError::Remote`], a connection lost before the ack
    /// [`WsError::Closed`].
    pub async fn request<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<Value, WsError> {
        self.request_timeout(event, data, self.inner.options.ack_timeout).await
    }

    /// [`request`](ObjectClient::request) with its own timeout.
    pub async fn request_timeout<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<Value, WsError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let text = object::event_json(event, data, Some(id)).map_err(|e| WsError::Encode(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, tx);
        if let Err(e) = self.inner.push(Outgoing { text, request: Some(id) }) {
            lock(&self.inner.pending).remove(&id);
            return Err(e);
        }
        object::await_ack(rx, timeout, || {
            // Timed out: forgotten, and not sent later if still queued (as
            // simples.js does).
            lock(&self.inner.pending).remove(&id);
            lock(&self.inner.queue).retain(|o| o.request != Some(id));
        })
        .await
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::SeqCst)
    }

    /// Messages dropped from the queue while disconnected.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Closes for good (1000, no reconnection) and waits for the end.
    pub async fn close(&self) {
        self.inner.shut();
        loop {
            let ended = self.inner.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.inner.done.load(Ordering::SeqCst) {
                return;
            }
            ended.await;
        }
    }
}

impl std::fmt::Debug for ObjectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectClient").field("url", &self.inner.url).finish_non_exhaustive()
    }
}

impl Inner {
    fn push(&self, out: Outgoing) -> Result<(), WsError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WsError::Closed);
        }
        let dropped = {
            let mut queue = lock(&self.queue);
            queue.push_back(out);
            if queue.len() > self.options.queue_limit.max(1) {
                queue.pop_front()
            } else {
                None
            }
        };
        if let Some(old) = dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(id) = old.request {
                if let Some(tx) = lock(&self.pending).remove(&id) {
                    let _ = tx.send(Err("dropped".into()));
                }
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    fn shut(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn report(&self, event: ClientEvent) {
        let hook = self.lifecycle.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(&event);
        }
    }

    /// Requests sent on a lost connection can no longer be answered.
    fn fail_sent(&self, sent: &mut HashSet<u64>) {
        let mut pending = lock(&self.pending);
        for id in sent.drain() {
            pending.remove(&id);
        }
    }
}

/// The client's task: one connection after the other until closed.
async fn run(inner: Arc<Inner>, first: WebSocket<TcpStream>) {
    let mut next = Some(first);
    while let Some(mut ws) = next.take() {
        inner.connected.store(true, Ordering::SeqCst);
        inner.report(ClientEvent::Open);
        let mut sent = HashSet::new();
        let code = session(&inner, &mut ws, &mut sent).await;
        inner.connected.store(false, Ordering::SeqCst);
        inner.fail_sent(&mut sent);
        inner.report(ClientEvent::Close { code });
        if inner.closed.load(Ordering::SeqCst) || !inner.options.reconnect {
            break;
        }
        next = reconnect(&inner).await;
    }
    inner.closed.store(true, Ordering::SeqCst);
    lock(&inner.queue).clear();
    lock(&inner.pending).clear();
    inner.done.store(true, Ordering::SeqCst);
    inner.ended.notify_waiters();
}

/// One connection: sends what is queued, dispatches what arrives; the
/// server's close code when it ends.
async fn session(inner: &Arc<Inner>, ws: &mut WebSocket<TcpStream>, sent: &mut HashSet<u64>) -> Option<u16> {
    loop {
        let wake = inner.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        loop {
            let Some(out) = lock(&inner.queue).pop_front() else { break };
            if let Some(id) = out.request {
                sent.insert(id);
            }
            if ws.feed(Message::text(out.text)).await.is_err() {
                return None;
            }
        }
        if ws.flush().await.is_err() {
            return None;
        }
        if inner.closed.load(Ordering::SeqCst) {
            let _ = ws.close(CloseCode::NORMAL, "").await;
            while let Ok(m) = ws.recv().await {
                if let Message::Close(frame) = m {
                    return frame.map(|f| f.code.0);
                }
            }
            return None;
        }
        tokio::select! {
            _ = wake => {}
            m = ws.recv() => match m {
                Ok(Message::Text(text)) => dispatch(inner, text.as_str()),
                Ok(Message::Binary(_)) => inner.report(ClientEvent::Error {
                    code: "binary".into(),
                    message: "object mode takes JSON text messages only".into(),
                }),
                Ok(Message::Close(frame)) => return frame.map(|f| f.code.0),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(url = %inner.url, error = %e, "object client connection lost");
                    return None;
                }
            },
        }
    }
}

/// A message from the server: an acknowledgement resolves its request; an
/// event runs its handler (on its own task) and, if the server asked,
/// queues the handler's result as the acknowledgement.
fn dispatch(inner: &Arc<Inner>, text: &str) {
    match object::parse(text, inner.options.max_json_depth) {
        Ok(Incoming::Ack { id, result }) => {
            if let Some(tx) = lock(&inner.pending).remove(&id) {
                let _ = tx.send(result);
            }
        }
        Ok(Incoming::Event { event, data, id }) if event == "error" && id.is_none() => {
            let field = |k: &str| data[k].as_str().unwrap_or("").to_string();
            inner.report(ClientEvent::Error { code: field("code"), message: field("message") });
        }
        Ok(Incoming::Event { event, data, id }) => {
            let handler = inner.handlers.read().unwrap_or_else(|e| e.into_inner()).get(&event).cloned();
            let inner = inner.clone();
            match handler {
                Some(handler) => {
                    tokio::spawn(async move {
                        let result = handler(data).await;
                        if let Some(id) = id {
                            let _ = inner.push(Outgoing { text: object::ack_json(id, &result), request: None });
                        }
                    });
                }
                None => {
                    if let Some(id) = id {
                        let result = Err(format!("no handler for event {event:?}"));
                        let _ = inner.push(Outgoing { text: object::ack_json(id, &result), request: None });
                    }
                }
            }
        }
        Err(refusal) => inner.report(ClientEvent::Error { code: "invalid_message".into(), message: refusal.message }),
    }
}

/// Waits and retries until connected (`None`: closed meanwhile).
async fn reconnect(inner: &Arc<Inner>) -> Option<WebSocket<TcpStream>> {
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let delay = inner.options.delay(attempt, random_unit());
        inner.report(ClientEvent::Reconnecting { attempt, delay });
        let wake = inner.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        if inner.closed.load(Ordering::SeqCst) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut wake => {
                    if inner.closed.load(Ordering::SeqCst) {
                        return None;
                    }
                    // Something was queued: it waits for the connection.
                    wake.set(inner.wake.notified());
                    wake.as_mut().enable();
                }
            }
        }
        match connect(&inner.url).await {
            Ok((ws, _)) => return Some(ws),
            Err(e) => tracing::debug!(url = %inner.url, attempt, error = %e, "object client reconnection failed"),
        }
    }
}

/// A random number in `[0, 1)` for the jitter.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_within_the_jitter() {
        let o = ObjectClientOptions::default();
        assert_eq!(o.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(o.delay(2, 0.0), Duration::from_millis(1000));
        assert_eq!(o.delay(3, 0.0), Duration::from_millis(2000));
        assert_eq!(o.delay(10, 0.0), Duration::from_secs(10), "capped at max_delay");
        assert_eq!(o.delay(1, 0.999_999), Duration::from_secs_f64(0.5 * (1.0 - 0.5 * 0.999_999)));
        assert!(o.delay(u32::MAX, 0.0) <= Duration::from_secs(10), "no overflow");
        for _ in 0..1000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
