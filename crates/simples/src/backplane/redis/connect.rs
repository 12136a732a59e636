//! Connecting to Redis: the URL forms this crate accepts, the fred client
//! settings every Redis user here shares (the backplane's two clients and
//! the session store), and the once-per-outage log.
//!
//! URLs:
//!
//! ```text
//!   redis://[user[:password]@]host:port[/db]                one server
//!   redis-cluster://[user[:password]@]host:port[,host:port...]   a Redis Cluster
//! ```
//!
//! The cluster form names one or more seed nodes; the others are
//! discovered. `rediss://` (TLS) is refused with a clear error: this build
//! has no TLS towards Redis.
//!
//! Every client is built to *fail fast*: an unreachable server at start is
//! an error of `connect`, and while the connection is down a command fails
//! at once (`fail_fast`, one attempt, a bounded command buffer) instead of
//! being queued inside fred until the server comes back. Reconnection runs
//! in the background with exponential backoff, forever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::clients::WithOptions;
use fred::prelude::{
    Builder, Client, ClientLike as _, Config, ConnectionConfig, EventInterface as _, Options, PerformanceConfig,
    ReconnectPolicy, Server, ServerConfig, TcpConfig,
};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::counters::Counters;
use crate::backplane::BackplaneError;

/// A parsed Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// The seed nodes (exactly one unless `cluster`).
    pub nodes: Vec<(String, u16)>,
    /// Whether the URL named a cluster (`redis-cluster://`).
    pub cluster: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The database (`/db`, one server only).
    pub database: Option<u8>,
}

impl RedisUrl {
    /// Parses `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<RedisUrl, BackplaneError> {
        let bad = |why: &str| BackplaneError::Config(format!("bad Redis URL {url:?}: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected redis://host:port or redis-cluster://host:port[,host:port...]"))?;
        let cluster = match scheme {
            "redis" => false,
            "redis-cluster" => true,
            "rediss" | "rediss-cluster" => return Err(bad("TLS (rediss://) is not supported by this build")),
            _ => return Err(bad("the scheme must be redis:// or redis-cluster://")),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (username, password) = match auth {
            None => (None, None),
            Some(auth) => {
                let (user, pass) = match auth.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (auth, None),
                };
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("the credentials are not UTF-8"))
                };
                let user = if user.is_empty() { None } else { Some(decode(user)?) };
                let pass = pass.map(decode).transpose()?;
                (user, pass)
            }
        };
        let (hosts, path) = match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        };
        let database = match path {
            "" => None,
            db if cluster => return Err(bad(&format!("a cluster has no database (/{db})"))),
            db => Some(db.parse::<u8>().map_err(|_| bad(&format!("the database {db:?} is not a number 0-255")))?),
        };
        let mut nodes = Vec::new();
        for node in hosts.split(',') {
            let (host, port) = node.rsplit_once(':').ok_or_else(|| bad(&format!("{node:?} has no :port")))?;
            if host.is_empty() || host.contains(['?', '#', ' ']) {
                return Err(bad(&format!("{node:?} has no valid host")));
            }
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("{node:?} has no valid port")))?;
            nodes.push((host.trim_start_matches('[').trim_end_matches(']').to_string(), port));
        }
        if !cluster && nodes.len() != 1 {
            return Err(bad("redis:// names one server; use redis-cluster:// for several nodes"));
        }
        Ok(RedisUrl { nodes, cluster, username, password, database })
    }

    fn server_config(&self) -> ServerConfig {
        let servers: Vec<Server> = self.nodes.iter().map(|(h, p)| Server::new(h.as_str(), *p)).collect();
        if self.cluster {
            ServerConfig::Clustered { hosts: servers, policy: Default::default() }
        } else {
            ServerConfig::Centralized { server: servers[0].clone() }
        }
    }
}

/// How the clients connect, reconnect and time out.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Capacity of fred's pub/sub message channel (messages received and
    /// not yet taken by the receiving task).
    pub message_buffer: usize,
}

/// Builds a client and connects it: an unreachable server is an error
/// ([`BackplaneError::Unavailable`]).
pub(crate) async fn connect_client(url: &RedisUrl, settings: &ClientSettings) -> Result<Client, BackplaneError> {
    let config = Config {
        fail_fast: true,
        server: url.server_config(),
        username: url.username.clone(),
        password: url.password.clone(),
        database: url.database,
        ..Config::default()
    };
    let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1);
    let policy = ReconnectPolicy::new_exponential(0, millis(settings.reconnect_min), millis(settings.reconnect_max), 2);
    let connection = ConnectionConfig {
        connection_timeout: settings.connect_timeout,
        internal_command_timeout: settings.command_timeout,
        max_command_attempts: 1,
        max_command_buffer_len: 4096,
        tcp: TcpConfig { nodelay: Some(true), ..TcpConfig::default() },
        ..ConnectionConfig::default()
    };
    let performance = PerformanceConfig {
        default_command_timeout: settings.command_timeout,
        broadcast_channel_capacity: settings.message_buffer.max(1),
        ..PerformanceConfig::default()
    };
    let client = Builder::from_config(config)
        .set_policy(policy)
        .set_connection_config(connection)
        .set_performance_config(performance)
        .build()
        .map_err(|e| BackplaneError::Config(format!("Redis client: {e}")))?;
    let nodes: Vec<String> = url.nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
    match tokio::time::timeout(settings.connect_timeout + Duration::from_secs(1), client.init()).await {
        Ok(Ok(_task)) => Ok(client),
        Ok(Err(e)) => Err(BackplaneError::Unavailable(format!("cannot connect to Redis at {}: {e}", nodes.join(",")))),
        Err(_) => {
            // Stop its reconnection task; never wait long for that either.
            let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
            Err(BackplaneError::Unavailable(format!("cannot connect to Redis at {}: timed out", nodes.join(","))))
        }
    }
}

/// One client and whether its connection is up, as its events say: down
/// at the first error (a lost connection; fred tells at once, while its
/// own state still says "connected" until the first reconnection attempt,
/// and a command sent meanwhile would wait in fred for the reconnection),
/// up at the next reconnection. Each loss is counted in
/// `Counters::disconnects`.
pub(crate) struct Link {
    client: Client,
    up: AtomicBool,
}

impl Link {
    /// Watches `client` (connected now) until `stop`.
    pub fn watch(client: Client, counters: Arc<Counters>, mut stop: watch::Receiver<bool>) -> Arc<Link> {
        let mut errors = client.error_rx();
        let mut reconnects = client.reconnect_rx();
        let link = Arc::new(Link { client, up: AtomicBool::new(true) });
        let watched = link.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    r = reconnects.recv() => match r {
                        Err(RecvError::Closed) => break,
                        _ => watched.up.store(true, Ordering::SeqCst),
                    },
                    r = errors.recv() => match r {
                        Err(RecvError::Closed) => break,
                        _ => {
                            if watched.up.swap(false, Ordering::SeqCst) {
                                counters.disconnects.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    },
                }
            }
        });
        link
    }

    /// The client (for events, `quit`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the connection is up (by the events and by fred's state).
    pub fn up(&self) -> bool {
        self.up.load(Ordering::SeqCst) && self.client.is_connected()
    }

    /// The client for commands that fail at once (one attempt); an
    /// [`BackplaneError::Unavailable`] error while the connection is down.
    pub fn commands(&self) -> Result<WithOptions<Client>, BackplaneError> {
        if !self.up() {
            return Err(BackplaneError::Unavailable("not connected to Redis".into()));
        }
        Ok(self.client.with_options(&Options { fail_fast: true, max_attempts: Some(1), ..Options::default() }))
    }
}

/// Sleeps `delay` when `pending`, forever otherwise: the retry arm of a
/// background task's `select!`.
pub(crate) async fn retry_after(pending: bool, delay: Duration) {
    if pending {
        tokio::time::sleep(delay).await
    } else {
        std::future::pending().await
    }
}

/// A Redis error as the backplane's error.
pub(crate) fn engine_error(what: &str, e: fred::error::Error) -> BackplaneError {
    use fred::error::ErrorKind;
    match e.kind() {
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Timeout | ErrorKind::Backpressure => {
            BackplaneError::Unavailable(format!("{what}: {e}"))
        }
        _ => BackplaneError::Engine(format!("{what}: {e}")),
    }
}

/// Logs an outage once: one warning when failures start, one info line
/// with the count when an operation succeeds again.
#[derive(Debug)]
pub(crate) struct OutageLog {
    what: &'static str,
    failed: Option<u64>,
}

impl OutageLog {
    /// A log for operations called `what` (e.g. "publishing").
    pub fn new(what: &'static str) -> OutageLog {
        OutageLog { what, failed: None }
    }

    /// `count` operations failed with `error`.
    pub fn failed(&mut self, count: u64, error: &dyn std::fmt::Display) {
        match &mut self.failed {
            Some(n) => *n += count,
            None => {
                tracing::warn!("redis: {} fails: {error} (logged once until it works again)", self.what);
                self.failed = Some(count);
            }
        }
    }

    /// An operation succeeded.
    pub fn succeeded(&mut self) {
        if let Some(n) = self.failed.take() {
            tracing::info!("redis: {} works again; {n} operations failed meanwhile", self.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(u.nodes, vec![("127.0.0.1".to_string(), 6379)]);
        assert!(!u.cluster);
        let u = RedisUrl::parse("redis://:s%40cret@localhost:7000/3").unwrap();
        assert_eq!((u.username, u.password.as_deref(), u.database), (None, Some("s@cret"), Some(3)));
        let u = RedisUrl::parse("redis-cluster://a:1,b:2,c:3").unwrap();
        assert!(u.cluster);
        assert_eq!(u.nodes.len(), 3);
        for bad in [
            "",
            "127.0.0.1:6379",
            "http://x:1",
            "rediss://x:1",
            "redis://x",
            "redis://x:0",
            "redis://x:99999",
            "redis://:1",
            "redis://a:1,b:2",
            "redis://x:1/db",
            "redis-cluster://x:1/0",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err();
            assert!(matches!(e, BackplaneError::Config(_)), "{bad}: {e}");
            assert!(e.to_string().contains("bad Redis URL"), "{e}");
        }
    }
}
