//! [`RedisBackplaneOptions`]: the settings of a [`RedisBackplane`](super::RedisBackplane).

use std::time::Duration;

use super::connect::{ClientSettings, RedisUrl};
use crate::backplane::BackplaneError;

/// Settings of a [`RedisBackplane`](super::RedisBackplane).
#[derive(Debug, Clone)]
pub struct RedisBackplaneOptions {
    /// Where Redis is: `redis://[user[:password]@]host:port[/db]` for one
    /// server, `redis-cluster://[user[:password]@]host:port[,host:port...]`
    /// for a Redis Cluster (seed nodes; the others are discovered; sharded
    /// pub/sub needs Redis 7). Default: `"redis://127.0.0.1:6379"`.
    pub url: String,
    /// Prefix of every channel and key this backplane uses (`{prefix}:topic`,
    /// `{prefix}:presence:topic`, `{prefix}:node:id`): applications sharing
    /// one Redis use different prefixes. Must not be empty. Default:
    /// `"simples"`.
    pub prefix: String,
    /// Messages the publish queue holds. When full, the newest message is
    /// dropped (`publish` says [`BackplaneError::Full`]) and counted in
    /// `stats().dropped`. Default: 10,000.
    pub publish_queue: usize,
    /// Most messages written as one pipeline. Default: 256.
    pub publish_batch: usize,
    /// Messages received from Redis and not yet delivered that this node
    /// holds; past it the oldest are lost and counted in `stats().lost`.
    /// Default: 8,192.
    pub receive_buffer: usize,
    /// First delay before reconnecting after the connection is lost; it
    /// doubles up to `reconnect_max`. Default: 100 ms.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts. Default: 5 s.
    pub reconnect_max: Duration,
    /// Time to connect (and, at start, the error's deadline). Default: 5 s.
    pub connect_timeout: Duration,
    /// Time a command (a publish pipeline, a presence command) may take
    /// before it fails. Default: 5 s.
    pub command_timeout: Duration,
    /// How often this node refreshes its heartbeat key (and the expiry of
    /// the presence hashes it has members in). Default: 5 s.
    pub heartbeat_interval: Duration,
    /// Lifetime of the heartbeat key: a node that stops heartbeating (it
    /// died) has its presence entries left out after at most this long.
    /// Must exceed `heartbeat_interval`. Default: 15 s.
    pub presence_ttl: Duration,
}

impl Default for RedisBackplaneOptions {
    fn default() -> Self {
        RedisBackplaneOptions {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "simples".into(),
            publish_queue: 10_000,
            publish_batch: 256,
            receive_buffer: 8192,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(15),
        }
    }
}

impl RedisBackplaneOptions {
    /// Default settings for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> RedisBackplaneOptions {
        RedisBackplaneOptions { url: url.into(), ..RedisBackplaneOptions::default() }
    }

    /// The fred client settings these options give.
    pub(crate) fn client_settings(&self) -> ClientSettings {
        ClientSettings {
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
            message_buffer: self.receive_buffer,
        }
    }

    pub(super) fn check(&self) -> Result<RedisUrl, BackplaneError> {
        let bad = |why: &str| Err(BackplaneError::Config(why.to_string()));
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return bad("the prefix must be non-empty, without spaces");
        }
        if self.publish_queue == 0 || self.publish_batch == 0 || self.receive_buffer == 0 {
            return bad("publish_queue, publish_batch and receive_buffer must be at least 1");
        }
        if self.heartbeat_interval.is_zero() || self.presence_ttl <= self.heartbeat_interval {
            return bad("presence_ttl must exceed heartbeat_interval, which must not be zero");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad("reconnect_min must be non-zero and at most reconnect_max");
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return bad("connect_timeout and command_timeout must not be zero");
        }
        RedisUrl::parse(&self.url)
    }
}
