//! [`Relay`]: connects this node's WebSocket hosts to a
//! [`Backplane`](crate::backplane::Backplane), so that broadcasts, channel
//! messages and presence reach the other nodes.
//!
//! One relay per node (process), shared by every WebSocket host that
//! scales out (`WsOptions::relay`). It routes what arrives from the
//! backplane to the host it is for (by the host's path, the envelope's
//! namespace) and runs presence updates on one task, in order.
//!
//! Topics (the backplane's unit of interest): `ws:{path}` for a host's
//! broadcasts, subscribed for the host's whole life; `ws:{path}#{channel}`
//! for a channel, subscribed while this node has members in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::backplane::{Backplane, BackplaneStats, Envelope, PresenceMember};

/// What a relay delivers to: a WebSocket host.
pub(crate) trait Remote: Send + Sync {
    /// An envelope from another node (or this one: the host skips its own).
    fn deliver(&self, envelope: Envelope);
}

/// Presence updates waiting for the backplane, applied in order.
const PRESENCE_QUEUE: usize = 10_000;

/// A presence change: the entry to write, then (once written, so that a
/// node reading presence on the announcement sees it) the envelope that
/// announces it to the other nodes.
struct PresenceOp {
    topic: String,
    member: PresenceMember,
    joined: bool,
    announce: Bytes,
}

/// A node's link to the backplane (cheap to clone). Create one per
/// process with [`Relay::new`] and put it in the `relay` option of each
/// WebSocket host that scales out.
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use simples::backplane::{RedisBackplane, RedisBackplaneOptions};
/// use simples::ws::{Relay, WsOptions};
///
/// let backplane = RedisBackplane::connect(RedisBackplaneOptions::new("redis://127.0.0.1:6379")).await?;
/// let options = WsOptions { relay: Some(Relay::new(backplane)), ..WsOptions::object() };
/// # let _ = options; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    backplane: Arc<dyn Backplane>,
    hosts: RwLock<HashMap<String, Weak<dyn Remote>>>,
    presence: Mutex<Option<mpsc::Sender<PresenceOp>>>,
    /// Envelopes this node could not read (another version, corrupt).
    unreadable: AtomicU64,
    /// Presence updates dropped because their queue was full.
    presence_dropped: AtomicU64,
}

impl Relay {
    /// Links this node to `backplane` (replacing the backplane's receiver:
    /// make one relay per backplane).
    pub fn new(backplane: Arc<dyn Backplane>) -> Relay {
        let inner = Arc::new(Inner {
            backplane,
            hosts: RwLock::new(HashMap::new()),
            presence: Mutex::new(None),
            unreadable: AtomicU64::new(0),
            presence_dropped: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        inner.backplane.set_receiver(Arc::new(move |_topic: &str, payload: Bytes| {
            if let Some(inner) = weak.upgrade() {
                inner.receive(payload);
            }
        }));
        Relay { inner }
    }

    /// This node's id on the backplane.
    pub fn node_id(&self) -> &str {
        self.inner.backplane.node_id()
    }

    /// The backplane.
    pub fn backplane(&self) -> &Arc<dyn Backplane> {
        &self.inner.backplane
    }

    /// The backplane's counters.
    pub fn stats(&self) -> BackplaneStats {
        self.inner.backplane.stats()
    }

    /// Envelopes received that this node could not read (written by an
    /// incompatible version, or corrupt); each is logged at warn level.
    pub fn unreadable(&self) -> u64 {
        self.inner.unreadable.load(Ordering::Relaxed)
    }

    /// Presence updates dropped because the backplane was too slow to take
    /// them (more than 10,000 waiting).
    pub fn presence_dropped(&self) -> u64 {
        self.inner.presence_dropped.load(Ordering::Relaxed)
    }

    /// Routes envelopes for `namespace` (a host's path) to `host`, and
    /// subscribes to its topic. `false` if another live host of this node
    /// already has that path.
    pub(crate) fn attach(&self, namespace: &str, host: Weak<dyn Remote>) -> bool {
        {
            let mut hosts = self.inner.hosts.write().unwrap_or_else(|e| e.into_inner());
            if hosts.get(namespace).is_some_and(|h| h.strong_count() > 0) {
                return false;
            }
            hosts.insert(namespace.to_string(), host);
        }
        self.inner.backplane.subscribe(&host_topic(namespace));
        true
    }

    pub(crate) fn subscribe(&self, topic: &str) {
        self.inner.backplane.subscribe(topic);
    }

    pub(crate) fn unsubscribe(&self, topic: &str) {
        self.inner.backplane.unsubscribe(topic);
    }

    /// Publishes `envelope` on `topic`; `false` when it could not be queued
    /// (the backplane counts and logs it).
    pub(crate) fn publish(&self, topic: &str, envelope: &Envelope) -> bool {
        match envelope.encode() {
            Ok(bytes) => self.inner.backplane.publish(topic, bytes).is_ok(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish on the backplane");
                false
            }
        }
    }

    /// Queues a presence change (applied in order on the relay's task):
    /// `member` joined (or left) `topic`, then `announce` is published.
    pub(crate) fn presence(&self, topic: String, member: PresenceMember, joined: bool, announce: &Envelope) {
        let announce = match announce.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot announce a presence change");
                return;
            }
        };
        let op = PresenceOp { topic, member, joined, announce };
        let mut slot = self.inner.presence.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!("presence update outside a tokio runtime: dropped");
                self.inner.presence_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let (tx, rx) = mpsc::channel(PRESENCE_QUEUE);
            runtime.spawn(apply_presence(self.inner.backplane.clone(), rx));
            *slot = Some(tx);
        }
        let sent = slot.as_ref().is_some_and(|tx| tx.try_send(op).is_ok());
        if !sent {
            self.inner.presence_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Inner {
    fn receive(&self, payload: Bytes) {
        let envelope = match Envelope::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                self.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "unreadable message from the backplane ignored");
                return;
            }
        };
        let host = self.hosts.read().unwrap_or_else(|e| e.into_inner()).get(&envelope.namespace).and_then(Weak::upgrade);
        if let Some(host) = host {
            host.deliver(envelope);
        }
    }
}

/// Applies presence changes one after the other (a leave never overtakes
/// its join), each announced once written.
async fn apply_presence(backplane: Arc<dyn Backplane>, mut rx: mpsc::Receiver<PresenceOp>) {
    while let Some(op) = rx.recv().await {
        let written = if op.joined {
            backplane.presence_join(&op.topic, op.member).await
        } else {
            backplane.presence_leave(&op.topic, op.member.conn).await
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "presence update failed");
        }
        if let Err(e) = backplane.publish(&op.topic, op.announce) {
            tracing::debug!(error = %e, "presence change not announced");
        }
    }
}

/// The topic of a host's broadcasts.
pub(crate) fn host_topic(namespace: &str) -> String {
    format!("ws:{namespace}")
}

/// The topic of a channel's messages and presence.
pub(crate) fn channel_topic(namespace: &str, channel: &str) -> String {
    format!("ws:{namespace}#{channel}")
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("node", &self.node_id()).finish_non_exhaustive()
    }
}
