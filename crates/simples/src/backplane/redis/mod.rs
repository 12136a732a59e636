//! [`RedisBackplane`]: the [`Backplane`] on Redis (feature `redis`), with
//! [fred](https://docs.rs/fred) as the client.
//!
//! ```text
//!   mod.rs        RedisBackplane, its options, the Backplane impl, stats
//!   options       RedisBackplaneOptions (checked, turned into the client
//!                 settings)
//!   counters      the counters the tasks update
//!   connect       URLs, the fred client settings, the once-per-outage log
//!   publisher     the bounded publish queue and the task that pipelines it
//!   subscriber    the wanted topics, the task that (re)subscribes, the
//!                 task that receives
//!   presence      presence hashes, node heartbeats
//!   history       RedisHistory: channel history in streams, numbered and
//!                 published by one Lua script
//! ```
//!
//! The design is documented on [`RedisBackplane`] (public, unlike this
//! module).

mod connect;
mod counters;
mod history;
mod options;
mod presence;
mod publisher;
mod subscriber;

pub(crate) use connect::{connect_client, Link, RedisUrl};
pub(crate) use counters::Counters;
pub use options::RedisBackplaneOptions;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::ClientLike as _;
use futures_core::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use super::{Backplane, BackplaneError, BackplaneStats, PresenceMember, Receiver};
use presence::Presence;
use publisher::Outgoing;
use subscriber::Subscriptions;

/// The scale-out [`Backplane`] on Redis: one server or a Redis Cluster,
/// with [fred](https://docs.rs/fred) as the client.
///
/// **Two connections** (two fred clients) per node: one in subscribe mode
/// (it can do nothing else on RESP2), one for PUBLISH and the presence
/// commands. On a cluster, each is one connection per primary.
///
/// **Pub/sub.** Topic `t` is the Redis channel `{prefix}:t`. On one server:
/// `SUBSCRIBE`/`UNSUBSCRIBE`/`PUBLISH`. On a cluster: sharded pub/sub
/// (`SSUBSCRIBE`/`SUNSUBSCRIBE`/`SPUBLISH`, Redis 7), so a channel lives on
/// the one shard that owns its slot, instead of every message being copied
/// to every node of the cluster.
///
/// **Subscriptions** are a set of wanted topics: `subscribe` and
/// `unsubscribe` only edit the set and wake the subscriber task, which
/// brings Redis in line (idempotent, coalescing, never waiting). After
/// every reconnection the task subscribes again to the whole set. fred's
/// own `SubscriberClient` is not used: its re-subscription sends a plain
/// `SUBSCRIBE` with no channel when only sharded channels are tracked
/// (an error that stops it before the sharded ones), and it forgets a
/// subscription whose command failed during an outage.
///
/// **Publishing** never waits: messages go into a bounded queue
/// ([`RedisBackplaneOptions::publish_queue`]); when it is full the newest
/// message is dropped and counted (`stats().dropped`). One task takes what
/// is queued (up to [`RedisBackplaneOptions::publish_batch`] messages) and
/// writes it as one pipeline, so many PUBLISH are in flight per round
/// trip, in queue order (so in order per topic). While Redis is
/// unreachable (either connection lost: `stats().connected` is false),
/// messages fail at once and are counted (`stats().failed`),
/// never buffered to be delivered late; the outage is logged once when it
/// starts and once when it ends.
///
/// **Presence.** Per topic a hash `{prefix}:presence:{topic}`, field
/// `{node}:{conn}`, value the JSON [`PresenceMember`]; per node a heartbeat
/// key `{prefix}:node:{node}` refreshed every
/// [`heartbeat_interval`](RedisBackplaneOptions::heartbeat_interval) and
/// expiring after [`presence_ttl`](RedisBackplaneOptions::presence_ttl).
/// `presence(topic)` checks the heartbeat key of each node it finds and
/// leaves out (and deletes) the entries of dead ones. A hash expires after
/// 4 × `presence_ttl` unless a live node with members in it refreshes it.
/// This node's own members are kept in memory and written again after a
/// reconnection (Redis may have restarted empty); those that left during
/// an outage are removed then. Every command names one key: a cluster
/// works the same.
///
/// `stats().disconnects` counts each lost connection: a node has two (one
/// per primary on a cluster), so one Redis restart counts two.
///
/// Its background tasks stop, and its connections close, when the last
/// `Arc` to it is dropped; [`shutdown`](RedisBackplane::shutdown) also
/// removes this node's presence from Redis first.
pub struct RedisBackplane {
    node: String,
    presence_ttl: Duration,
    prefix: String,
    counters: Arc<Counters>,
    receiver: Arc<Mutex<Option<Receiver>>>,
    subscriptions: Arc<Subscriptions>,
    presence: Arc<Presence>,
    queue: mpsc::Sender<Outgoing>,
    /// The publishing and the subscribed connections, with their health.
    links: [Arc<Link>; 2],
    /// Dropped (or set) to stop every task.
    stop: watch::Sender<bool>,
    /// Channel history in Redis (`None` on a cluster).
    history: Option<Arc<history::RedisHistory>>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane").field("node", &self.node).field("prefix", &self.prefix).finish()
    }
}

impl RedisBackplane {
    /// Connects to Redis and starts the background tasks. Errors: a bad
    /// option or URL ([`BackplaneError::Config`]), Redis unreachable now
    /// ([`BackplaneError::Unavailable`]).
    pub async fn connect(options: RedisBackplaneOptions) -> Result<Arc<RedisBackplane>, BackplaneError> {
        let url = options.check()?;
        let settings = options.client_settings();
        let publisher = connect_client(&url, &settings).await?;
        let subscriber = match connect_client(&url, &settings).await {
            Ok(c) => c,
            Err(e) => {
                let _ = publisher.quit().await;
                return Err(e);
            }
        };
        let node = new_node_id();
        let (stop, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let receiver = Arc::new(Mutex::new(None));
        let publisher_link = Link::watch(publisher.clone(), counters.clone(), stop_rx.clone());
        let subscriber_link = Link::watch(subscriber.clone(), counters.clone(), stop_rx.clone());
        let presence = Arc::new(Presence::new(publisher_link.clone(), &options, &node));
        if let Err(e) = presence.heartbeat().await {
            let _ = publisher.quit().await;
            let _ = subscriber.quit().await;
            return Err(e);
        }
        let (queue, queue_rx) = mpsc::channel(options.publish_queue);
        let history = (!url.cluster).then(|| {
            Arc::new(history::RedisHistory::new(&options.prefix, publisher_link.clone(), queue.clone(), counters.clone()))
        });
        publisher::spawn(
            [publisher_link.clone(), subscriber_link.clone()],
            url.cluster,
            queue_rx,
            options.publish_batch,
            counters.clone(),
            stop_rx.clone(),
        );
        let subscriptions = Arc::new(Subscriptions::new(format!("{}:", options.prefix)));
        subscriber::spawn(
            subscriber_link.clone(),
            url.cluster,
            subscriptions.clone(),
            receiver.clone(),
            counters.clone(),
            options.reconnect_min,
            stop_rx.clone(),
        );
        presence::spawn_heartbeat(presence.clone(), options.heartbeat_interval, options.reconnect_min, stop_rx);
        Ok(Arc::new(RedisBackplane {
            node,
            presence_ttl: options.presence_ttl,
            prefix: options.prefix,
            counters,
            receiver,
            subscriptions,
            presence,
            queue,
            links: [publisher_link, subscriber_link],
            stop,
            history,
        }))
    }

    /// The key/channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Removes this node from Redis (its heartbeat key and every presence
    /// entry it made), stops the tasks and closes the connections. After
    /// it, publishing fails with [`BackplaneError::Unavailable`].
    pub async fn shutdown(&self) -> Result<(), BackplaneError> {
        let cleaned = self.presence.remove_node().await;
        // The tasks stop and quit their connections.
        let _ = self.stop.send(true);
        cleaned
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        // The tasks see the signal, stop, and quit their clients.
        let _ = self.stop.send(true);
    }
}

/// A fresh node id: 16 hex digits from the operating system's CSPRNG.
fn new_node_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("the operating system's random generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Backplane for RedisBackplane {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn set_receiver(&self, receiver: Receiver) {
        *self.receiver.lock().unwrap_or_else(|e| e.into_inner()) = Some(receiver);
    }

    fn subscribe(&self, topic: &str) {
        self.subscriptions.want(topic, true);
    }

    fn unsubscribe(&self, topic: &str) {
        self.subscriptions.want(topic, false);
    }

    fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BackplaneError> {
        let message = Outgoing::Publish { channel: self.subscriptions.channel(topic), payload };
        match self.queue.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Counters::add(&self.counters.dropped, 1);
                Err(BackplaneError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Counters::add(&self.counters.failed, 1);
                Err(BackplaneError::Unavailable("the backplane is shut down".into()))
            }
        }
    }

    fn presence_join(&self, topic: &str, member: PresenceMember) -> BoxFuture<'static, Result<(), BackplaneError>> {
        let presence = self.presence.clone();
        let topic = topic.to_string();
        Box::pin(async move { presence.join(&topic, member).await })
    }

    fn presence_leave(&self, topic: &str, conn: u64) -> BoxFuture<'static, Result<(), BackplaneError>> {
        let presence = self.presence.clone();
        let topic = topic.to_string();
        Box::pin(async move { presence.leave(&topic, conn).await })
    }

    fn presence(&self, topic: &str) -> BoxFuture<'static, Result<Vec<PresenceMember>, BackplaneError>> {
        let presence = self.presence.clone();
        let topic = topic.to_string();
        Box::pin(async move { presence.members(&topic).await })
    }

    fn presence_ttl(&self) -> Duration {
        self.presence_ttl
    }

    fn history(&self) -> Option<Arc<dyn crate::backplane::HistoryStore>> {
        self.history.clone().map(|h| h as Arc<dyn crate::backplane::HistoryStore>)
    }

    fn subscribed(&self, topic: &str) -> BoxFuture<'static, ()> {
        let subscriptions = self.subscriptions.clone();
        let topic = topic.to_string();
        Box::pin(async move { subscriptions.active(&topic).await })
    }

    fn stats(&self) -> BackplaneStats {
        let c = &self.counters;
        BackplaneStats {
            published: Counters::get(&c.published),
            failed: Counters::get(&c.failed),
            dropped: Counters::get(&c.dropped),
            received: Counters::get(&c.received),
            lost: Counters::get(&c.lost),
            topics: self.subscriptions.len(),
            disconnects: Counters::get(&c.disconnects),
            connected: self.links.iter().all(|link| link.up()),
        }
    }
}
