//! The counters a [`RedisBackplane`](super::RedisBackplane)'s tasks update
//! (a leaf of the module).

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters the tasks update.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub received: AtomicU64,
    pub lost: AtomicU64,
    pub disconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
