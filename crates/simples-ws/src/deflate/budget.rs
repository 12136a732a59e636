//! A process-wide cap on compression state: how many connections may use
//! permessage-deflate at once, and how much memory their contexts may take.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// A shared cap on the connections that hold permessage-deflate state.
///
/// Clone it into the [`DeflateConfig`](super::DeflateConfig) of every
/// listener (or client) that should share the cap. Each connection that
/// negotiates the extension holds a [`DeflatePermit`] until it is dropped;
/// the permit reserves the connection's worst-case memory estimate
/// ([`DeflateParams::memory_estimate`](super::DeflateParams::memory_estimate)).
///
/// Over the cap, a server declines the extension in the handshake (the
/// connection opens uncompressed, it does not fail) and a client does not
/// offer it.
#[derive(Clone)]
pub struct DeflateBudget {
    inner: Arc<Inner>,
}

struct Inner {
    max_connections: usize,
    max_memory: usize,
    /// (connections, bytes) reserved.
    used: Mutex<(usize, usize)>,
}

impl DeflateBudget {
    /// At most `max_connections` connections with compression state at once.
    pub fn new(max_connections: usize) -> DeflateBudget {
        DeflateBudget::with_memory(max_connections, usize::MAX)
    }

    /// At most `max_connections` connections, and at most `max_memory`
    /// bytes of estimated compression state, at once.
    pub fn with_memory(max_connections: usize, max_memory: usize) -> DeflateBudget {
        DeflateBudget { inner: Arc::new(Inner { max_connections, max_memory, used: Mutex::new((0, 0)) }) }
    }

    fn used(&self) -> MutexGuard<'_, (usize, usize)> {
        // The critical sections cannot panic; recover from poisoning anyway.
        self.inner.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves one connection and `bytes` of memory, if both fit.
    pub fn try_acquire(&self, bytes: usize) -> Option<DeflatePermit> {
        let mut used = self.used();
        if used.0 >= self.inner.max_connections || used.1.saturating_add(bytes) > self.inner.max_memory {
            return None;
        }
        used.0 += 1;
        used.1 += bytes;
        Some(DeflatePermit { budget: self.clone(), bytes })
    }

    /// Connections currently holding a permit.
    pub fn connections(&self) -> usize {
        self.used().0
    }

    /// Bytes currently reserved by permits.
    pub fn memory(&self) -> usize {
        self.used().1
    }

    /// The connection cap.
    pub fn max_connections(&self) -> usize {
        self.inner.max_connections
    }

    /// The memory cap (`usize::MAX` when there is none).
    pub fn max_memory(&self) -> usize {
        self.inner.max_memory
    }
}

impl fmt::Debug for DeflateBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connections, memory) = *self.used();
        f.debug_struct("DeflateBudget")
            .field("connections", &connections)
            .field("max_connections", &self.inner.max_connections)
            .field("memory", &memory)
            .field("max_memory", &self.inner.max_memory)
            .finish()
    }
}

/// One connection's share of a [`DeflateBudget`], released on drop.
pub struct DeflatePermit {
    budget: DeflateBudget,
    bytes: usize,
}

impl DeflatePermit {
    /// The bytes this permit reserves.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DeflatePermit {
    fn drop(&mut self) {
        let mut used = self.budget.used();
        used.0 -= 1;
        used.1 -= self.bytes;
    }
}

impl fmt::Debug for DeflatePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeflatePermit").field("bytes", &self.bytes).finish()
    }
}
