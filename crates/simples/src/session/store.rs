//! Session storage: the async [`SessionStore`] trait (for a Redis store or
//! any other) and the default [`MemoryStore`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::error::Result;

/// A session's data: a JSON object.
pub type SessionData = serde_json::Map<String, serde_json::Value>;

/// Where sessions live. Implementations return boxed futures so the trait
/// can be used as `Arc<dyn SessionStore>`:
///
/// ```
/// use std::time::Duration;
/// use simples::{BoxFuture, Result, SessionData, SessionStore};
///
/// struct Nowhere;
///
/// impl SessionStore for Nowhere {
///     fn load<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<Option<SessionData>>> {
///         Box::pin(async { Ok(None) })
///     }
///     fn save<'a>(&'a self, _id: &'a str, _data: SessionData, _ttl: Duration) -> BoxFuture<'a, Result<()>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn destroy<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<()>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// The data of session `id`, or `None` when unknown or expired.
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SessionData>>>;
    /// Stores `data` for `id`, to expire `ttl` from now.
    fn save<'a>(&'a self, id: &'a str, data: SessionData, ttl: Duration) -> BoxFuture<'a, Result<()>>;
    /// Deletes session `id` (no error if unknown).
    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// Sessions in process memory. Expired sessions are never returned, and
/// they are removed by a sweep that runs, at most once per
/// `sweep_interval`, on the next save.
pub struct MemoryStore {
    map: Mutex<HashMap<String, (SessionData, Instant)>>,
    last_sweep: Mutex<Instant>,
    sweep_interval: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store sweeping at most once a minute.
    pub fn new() -> MemoryStore {
        MemoryStore::with_sweep_interval(Duration::from_secs(60))
    }

    /// An empty store sweeping at most once per `interval`.
    pub fn with_sweep_interval(interval: Duration) -> MemoryStore {
        MemoryStore {
            map: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
            sweep_interval: interval,
        }
    }

    /// Number of stored sessions, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired session now.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.map.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (_, exp)| *exp > now);
        *self.last_sweep.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    fn maybe_sweep(&self) {
        let due = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner()).elapsed() >= self.sweep_interval;
        if due {
            self.sweep();
        }
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SessionData>>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let found = map.get(id).filter(|(_, exp)| *exp > Instant::now()).map(|(d, _)| d.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn save<'a>(&'a self, id: &'a str, data: SessionData, ttl: Duration) -> BoxFuture<'a, Result<()>> {
        self.maybe_sweep();
        let expires = Instant::now() + ttl;
        self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), (data, expires));
        Box::pin(std::future::ready(Ok(())))
    }

    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        Box::pin(std::future::ready(Ok(())))
    }
}
