//! Presence on Redis.
//!
//! ```text
//!   {prefix}:presence:{topic}   hash: field "{node}:{conn}" -> JSON PresenceMember
//!   {prefix}:node:{node}        "1", expires after presence_ttl
//! ```
//!
//! Each node refreshes its heartbeat key every `heartbeat_interval`; a
//! node that dies stops doing so, and its key expires `presence_ttl` later.
//! [`Presence::members`] reads the hash, checks the heartbeat key of each
//! node found (`EXISTS`), leaves out the members of dead nodes and removes
//! them (`HDEL`). Every command names one key, so all of this works on a
//! cluster, where the keys live on different shards.
//!
//! A hash abandoned by every node would linger: each join, and each
//! heartbeat of a node with members in it, sets its expiry to
//! `4 × presence_ttl`, so it goes away when no live node refreshes it.
//!
//! This node keeps its own members in memory too: after a reconnection
//! (Redis may have restarted empty) they are written again, so a join made
//! during an outage is not lost either; and the entries of connections
//! that left during the outage (up to 65,536 remembered) are removed then.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{ClientLike as _, EventInterface as _, Expiration, HashesInterface as _, KeysInterface as _};
use tokio::sync::watch;

use super::connect::{engine_error, retry_after, Link, OutageLog};
use super::options::RedisBackplaneOptions;
use crate::backplane::{BackplaneError, PresenceMember};

/// This node's presence: its members and the commands on Redis.
pub(super) struct Presence {
    link: Arc<Link>,
    node: String,
    node_key: String,
    prefix: String,
    ttl: Duration,
    hash_ttl: Duration,
    local: Mutex<Local>,
    /// Set by `remove_node`; held during a heartbeat so none is written
    /// after the node key is deleted.
    closing: tokio::sync::Mutex<bool>,
}

/// Hash fields and values to write.
type Fields = Vec<(String, String)>;

/// Most left connections remembered for removal after an outage.
const MAX_STALE: usize = 65_536;

/// What this node knows of its own presence.
#[derive(Default)]
struct Local {
    /// topic → conn → the member's JSON, as written to Redis.
    members: HashMap<String, HashMap<u64, String>>,
    /// topic → conns that left while Redis was unreachable: their entries
    /// are removed after the reconnection (at most `MAX_STALE`).
    stale: HashMap<String, BTreeSet<u64>>,
    stale_count: usize,
}

impl Local {
    fn unstale(&mut self, topic: &str, conn: u64) {
        if let Some(conns) = self.stale.get_mut(topic) {
            if conns.remove(&conn) {
                self.stale_count -= 1;
            }
            if conns.is_empty() {
                self.stale.remove(topic);
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl Presence {
    pub fn new(link: Arc<Link>, options: &RedisBackplaneOptions, node: &str) -> Presence {
        Presence {
            link,
            node: node.to_string(),
            node_key: node_key(&options.prefix, node),
            prefix: options.prefix.clone(),
            ttl: options.presence_ttl,
            hash_ttl: options.presence_ttl * 4,
            local: Mutex::new(Local::default()),
            closing: tokio::sync::Mutex::new(false),
        }
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hash_key(&self, topic: &str) -> String {
        format!("{}:presence:{topic}", self.prefix)
    }

    /// Records `member` (its node is this node, whatever it says).
    pub async fn join(&self, topic: &str, mut member: PresenceMember) -> Result<(), BackplaneError> {
        member.node = self.node.clone();
        let json = serde_json::to_string(&member)
            .map_err(|e| BackplaneError::Engine(format!("cannot encode a presence member: {e}")))?;
        {
            let mut local = self.local();
            local.unstale(topic, member.conn);
            local.members.entry(topic.to_string()).or_default().insert(member.conn, json.clone());
        }
        self.write(topic, vec![(field(&self.node, member.conn), json)]).await
    }

    /// HSET `fields` in `topic`'s hash and sets its expiry.
    async fn write(&self, topic: &str, fields: Fields) -> Result<(), BackplaneError> {
        let key = self.hash_key(topic);
        let client = self.link.commands()?;
        let _: () = client.hset(&key, fields).await.map_err(|e| engine_error("presence join", e))?;
        let _: () =
            client.pexpire(&key, millis(self.hash_ttl), None).await.map_err(|e| engine_error("presence join", e))?;
        Ok(())
    }

    /// Removes connection `conn` of this node.
    pub async fn leave(&self, topic: &str, conn: u64) -> Result<(), BackplaneError> {
        {
            let mut local = self.local();
            if let Some(members) = local.members.get_mut(topic) {
                members.remove(&conn);
                if members.is_empty() {
                    local.members.remove(topic);
                }
            }
        }
        let removed = match self.link.commands() {
            Ok(client) => client
                .hdel::<(), _, _>(self.hash_key(topic), field(&self.node, conn))
                .await
                .map_err(|e| engine_error("presence leave", e)),
            Err(e) => Err(e),
        };
        if removed.is_err() {
            let mut local = self.local();
            if local.stale_count < MAX_STALE && local.stale.entry(topic.to_string()).or_default().insert(conn) {
                local.stale_count += 1;
            }
        }
        removed
    }

    /// The live members of `topic`, sorted by node then connection.
    pub async fn members(&self, topic: &str) -> Result<Vec<PresenceMember>, BackplaneError> {
        let key = self.hash_key(topic);
        let client = self.link.commands()?;
        let entries: HashMap<String, Bytes> =
            client.hgetall(&key).await.map_err(|e| engine_error(&format!("presence of {topic:?}"), e))?;
        let mut members = Vec::with_capacity(entries.len());
        let mut remove = Vec::new();
        for (field, value) in entries {
            match decode(&field, &value) {
                Some(member) => members.push(member),
                None => {
                    tracing::warn!("redis: removing an undecodable presence entry {field:?} from {key}");
                    remove.push(field);
                }
            }
        }
        let nodes: BTreeSet<&str> = members.iter().map(|m| m.node.as_str()).filter(|n| *n != self.node).collect();
        let checks = nodes.iter().map(|n| {
            let client = &client;
            let key = node_key(&self.prefix, n);
            async move { client.exists::<u64, _>(key).await.map(|found| (n.to_string(), found > 0)) }
        });
        let mut dead = BTreeSet::new();
        for result in futures_util::future::join_all(checks).await {
            let (node, alive) = result.map_err(|e| engine_error("presence heartbeat check", e))?;
            if !alive {
                dead.insert(node);
            }
        }
        members.retain(|m| {
            let keep = !dead.contains(&m.node);
            if !keep {
                remove.push(field(&m.node, m.conn));
            }
            keep
        });
        if !remove.is_empty() {
            let _: () = client.hdel(&key, remove).await.map_err(|e| engine_error("presence cleanup", e))?;
        }
        members.sort_by(|a, b| (&a.node, a.conn).cmp(&(&b.node, b.conn)));
        Ok(members)
    }

    /// Refreshes the heartbeat key and the expiry of the hashes this node
    /// has members in (nothing once `remove_node` ran).
    pub async fn heartbeat(&self) -> Result<(), BackplaneError> {
        let closing = self.closing.lock().await;
        if *closing {
            return Ok(());
        }
        let client = self.link.commands()?;
        let _: () = client
            .set(&self.node_key, "1", Some(Expiration::PX(millis(self.ttl))), None, false)
            .await
            .map_err(|e| engine_error("presence heartbeat", e))?;
        let keys: Vec<String> = self.local().members.keys().map(|t| self.hash_key(t)).collect();
        let expiries = keys.iter().map(|key| client.pexpire::<(), _>(key, millis(self.hash_ttl), None));
        for result in futures_util::future::join_all(expiries).await {
            result.map_err(|e| engine_error("presence heartbeat", e))?;
        }
        Ok(())
    }

    /// After a reconnection: writes every member of this node again, and
    /// removes the entries of connections that left meanwhile.
    async fn rewrite(&self) -> Result<(), BackplaneError> {
        let members: Vec<(String, Fields)> = {
            let local = self.local();
            let fields = |members: &HashMap<u64, String>| {
                members.iter().map(|(conn, json)| (field(&self.node, *conn), json.clone())).collect()
            };
            local.members.iter().map(|(topic, members)| (topic.clone(), fields(members))).collect()
        };
        let stale: Vec<(String, Vec<u64>)> = {
            let local = self.local();
            local.stale.iter().map(|(topic, conns)| (topic.clone(), conns.iter().copied().collect())).collect()
        };
        let writes = members.into_iter().map(|(topic, fields)| async move { self.write(&topic, fields).await });
        for result in futures_util::future::join_all(writes).await {
            result?;
        }
        let client = self.link.commands()?;
        for (topic, conns) in stale {
            // Not those that joined again since.
            let conns: Vec<u64> = {
                let local = self.local();
                conns.into_iter().filter(|c| local.stale.get(&topic).is_some_and(|s| s.contains(c))).collect()
            };
            let fields: Vec<String> = conns.iter().map(|c| field(&self.node, *c)).collect();
            let _: () =
                client.hdel(self.hash_key(&topic), fields).await.map_err(|e| engine_error("presence leave", e))?;
            let mut local = self.local();
            for conn in conns {
                local.unstale(&topic, conn);
            }
        }
        Ok(())
    }

    /// Deletes the heartbeat key and every entry of this node; no
    /// heartbeat is written afterwards.
    pub async fn remove_node(&self) -> Result<(), BackplaneError> {
        let mut closing = self.closing.lock().await;
        *closing = true;
        let client = self.link.commands()?;
        let _: () = client.del(&self.node_key).await.map_err(|e| engine_error("presence shutdown", e))?;
        let all: Vec<(String, Vec<u64>)> = {
            let mut local = self.local();
            local.stale.clear();
            local.stale_count = 0;
            local.members.drain().map(|(topic, members)| (topic, members.into_keys().collect())).collect()
        };
        for (topic, conns) in all {
            let fields: Vec<String> = conns.iter().map(|c| field(&self.node, *c)).collect();
            let _: () =
                client.hdel(self.hash_key(&topic), fields).await.map_err(|e| engine_error("presence shutdown", e))?;
        }
        Ok(())
    }
}

fn node_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:node:{node}")
}

fn field(node: &str, conn: u64) -> String {
    format!("{node}:{conn}")
}

/// A hash entry as a member, if it is one and matches its field.
fn decode(field_name: &str, value: &[u8]) -> Option<PresenceMember> {
    let member: PresenceMember = serde_json::from_slice(value).ok()?;
    (field(&member.node, member.conn) == field_name).then_some(member)
}

/// Starts the heartbeat task: every `interval`, after every reconnection
/// (then also rewriting this node's members), and `retry` after a
/// failure. At stop it closes the publishing connection.
pub(super) fn spawn_heartbeat(
    presence: Arc<Presence>,
    interval: Duration,
    retry: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut reconnects = presence.link.client().reconnect_rx();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut log = OutageLog::new("presence heartbeat");
        let mut rewrite = false;
        let mut failed = false;
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => break,
                _ = retry_after(failed, retry) => {}
                r = reconnects.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        break;
                    }
                    rewrite = true;
                }
                _ = tick.tick() => {}
            }
            let result = match presence.heartbeat().await {
                Ok(()) if rewrite => presence.rewrite().await,
                other => other,
            };
            match result {
                Ok(()) => {
                    rewrite = false;
                    failed = false;
                    log.succeeded();
                }
                Err(e) => {
                    // Redis may come back empty: write the members again.
                    rewrite = true;
                    failed = true;
                    log.failed(1, &e);
                }
            }
        }
        let _ = presence.link.client().quit().await;
    });
}
