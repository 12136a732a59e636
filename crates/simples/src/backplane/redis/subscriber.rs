//! Subscriptions and reception.
//!
//! [`Subscriptions`] is the set of wanted topics; `subscribe` and
//! `unsubscribe` edit it and wake the control task, which compares it
//! with what Redis has (`applied`) and sends the difference. After a
//! reconnection Redis has nothing, so `applied` is cleared and everything
//! is subscribed again; a command that failed is retried after a delay.
//! At stop, the control task quits the subscriber connection.
//!
//! The receive task takes fred's messages, strips the prefix and hands
//! `(topic, payload)` to the receiver (cloned out of its lock first, so
//! the framework's code never runs under a lock here).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fred::prelude::{ClientLike as _, EventInterface as _, PubsubInterface as _};
use fred::types::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{watch, Notify};

use super::connect::{engine_error, retry_after, Link, OutageLog};
use super::counters::Counters;
use crate::backplane::{BackplaneError, Receiver};

/// Channels per (un)subscribe command on one server.
const CHUNK: usize = 256;

/// The topics this node wants.
pub(super) struct Subscriptions {
    prefix: String,
    wanted: Mutex<BTreeSet<String>>,
    wake: Notify,
    /// The topics Redis has now (the control task's `applied`), and a
    /// notification on each change, for `active`.
    applied: Mutex<BTreeSet<String>>,
    applied_changed: Notify,
}

impl Subscriptions {
    /// An empty set for channels named `{prefix}{topic}` (`prefix` ends
    /// with `:`).
    pub fn new(prefix: String) -> Subscriptions {
        Subscriptions {
            prefix,
            wanted: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
            applied: Mutex::new(BTreeSet::new()),
            applied_changed: Notify::new(),
        }
    }

    /// Resolves once Redis has `topic` subscribed.
    pub async fn active(&self, topic: &str) {
        loop {
            let changed = self.applied_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.applied.lock().unwrap_or_else(|e| e.into_inner()).contains(topic) {
                return;
            }
            changed.await;
        }
    }

    fn set_applied(&self, applied: &BTreeSet<String>) {
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = applied.clone();
        self.applied_changed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.wanted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wants `topic` (or no longer); wakes the control task on a change.
    pub fn want(&self, topic: &str, wanted: bool) {
        let changed = if wanted { self.lock().insert(topic.to_string()) } else { self.lock().remove(topic) };
        if changed {
            self.wake.notify_one();
        }
    }

    /// How many topics are wanted.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The Redis channel of `topic`: `{prefix}:{topic}`.
    pub fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }
}

/// Starts the control and receive tasks.
pub(super) fn spawn(
    link: Arc<Link>,
    cluster: bool,
    subscriptions: Arc<Subscriptions>,
    receiver: Arc<Mutex<Option<Receiver>>>,
    counters: Arc<Counters>,
    retry: Duration,
    stop: watch::Receiver<bool>,
) {
    let messages = link.client().message_rx();
    tokio::spawn(receive(messages, subscriptions.prefix.clone(), receiver, counters.clone(), stop.clone()));
    tokio::spawn(control(link, cluster, subscriptions, retry, stop));
}

async fn control(
    link: Arc<Link>,
    cluster: bool,
    subscriptions: Arc<Subscriptions>,
    retry: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut reconnects = link.client().reconnect_rx();
    let mut applied = BTreeSet::new();
    let mut log = OutageLog::new("subscribing");
    loop {
        let pending = !reconcile(&link, cluster, &subscriptions, &mut applied, &mut log).await;
        subscriptions.set_applied(&applied);
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            r = reconnects.recv() => {
                if matches!(r, Err(RecvError::Closed)) {
                    break;
                }
                // The new connection has no subscription.
                applied.clear();
                subscriptions.set_applied(&applied);
            }
            _ = subscriptions.wake.notified() => {}
            _ = retry_after(pending, retry) => {}
        }
    }
    let _ = link.client().quit().await;
}

/// Sends what differs between the wanted set and `applied`; whether all
/// of it succeeded.
async fn reconcile(
    link: &Link,
    cluster: bool,
    subscriptions: &Subscriptions,
    applied: &mut BTreeSet<String>,
    log: &mut OutageLog,
) -> bool {
    let (add, remove): (Vec<String>, Vec<String>) = {
        let wanted = subscriptions.lock();
        (wanted.difference(applied).cloned().collect(), applied.difference(&wanted).cloned().collect())
    };
    if add.is_empty() && remove.is_empty() {
        return true;
    }
    let mut all_ok = true;
    for (subscribe, topics) in [(false, remove), (true, add)] {
        for chunk in topics.chunks(if cluster { 1 } else { CHUNK }) {
            let channels: Vec<String> = chunk.iter().map(|t| subscriptions.channel(t)).collect();
            match send(link, cluster, subscribe, channels).await {
                Ok(()) => {
                    log.succeeded();
                    for t in chunk {
                        if subscribe {
                            applied.insert(t.clone());
                        } else {
                            applied.remove(t);
                        }
                    }
                }
                Err(e) => {
                    log.failed(chunk.len() as u64, &e);
                    all_ok = false;
                }
            }
        }
    }
    all_ok
}

/// One (S)SUBSCRIBE or (S)UNSUBSCRIBE (a sharded one names one channel).
async fn send(link: &Link, cluster: bool, subscribe: bool, channels: Vec<String>) -> Result<(), BackplaneError> {
    let client = link.commands()?;
    let result = match (cluster, subscribe) {
        (false, true) => client.subscribe(channels).await,
        (false, false) => client.unsubscribe(channels).await,
        (true, true) => client.ssubscribe(channels).await,
        (true, false) => client.sunsubscribe(channels).await,
    };
    result.map_err(|e| engine_error("subscribing", e))
}

async fn receive(
    mut messages: tokio::sync::broadcast::Receiver<Message>,
    prefix: String,
    receiver: Arc<Mutex<Option<Receiver>>>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            m = messages.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                Counters::add(&counters.lost, n);
                tracing::warn!("redis: {n} received messages lost: this node reads slower than Redis delivers");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let Some(topic) = message.channel.strip_prefix(prefix.as_str()) else { continue };
        let payload = message.value.into_bytes().unwrap_or_default();
        Counters::add(&counters.received, 1);
        let deliver = receiver.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(deliver) = deliver {
            deliver(topic, payload);
        }
    }
}
