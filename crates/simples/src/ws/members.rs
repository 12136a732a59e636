//! [`Members`]: a set of connections (a host's registry, a channel's
//! members) with a shared snapshot, so that broadcasts and their filters
//! run on an immutable copy with no lock held.
//!
//! The snapshot is an `Arc<[WsConn]>` built on the first read after a
//! change and shared by every reader until the next change: a broadcast
//! takes the lock only to clone that `Arc`. A set can be *retired* (its
//! channel was removed from the table): nothing joins it any more, and a
//! binder that finds it retired starts again on the table's new entry.
//!
//! The snapshot lists the members in the order of their ids, which is the
//! order the connections were made: a broadcast then visits their state,
//! their loop's slab entries and the kernel's sockets in the order they
//! were allocated, not in the set's hash order (to 10,000 subscribers:
//! 350 ns of CPU per delivery against 400, medians of six paired runs,
//! `BENCHMARKS.md`). The sort makes a rebuild of 10,000 members 0.32 ms
//! instead of 0.12: less than one broadcast to them saves (~0.5 ms), so
//! it pays even with a join or leave between every two broadcasts.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, MutexGuard};

use super::state::{ById, Members, State, WsConn};

impl Borrow<u64> for ById {
    fn borrow(&self) -> &u64 {
        &self.0.inner.id
    }
}

/// As its id hashes (what `Borrow<u64>` requires).
impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.inner.id.hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.inner.id == other.0.inner.id
    }
}

impl Eq for ById {}

/// What became of an insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// Added; `first` when the set was empty.
    Added { first: bool },
    /// Already a member.
    Already,
    /// The set is retired: insert into the table's current set instead.
    Retired,
    /// The connection refused (it has ended).
    Refused,
}

impl Members {
    pub(crate) fn new() -> Members {
        Members::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `conn` if `admit` (run under this set's lock, so that a
    /// connection's own end can be ordered against it) says so.
    pub(crate) fn insert(&self, conn: &WsConn, admit: impl FnOnce() -> bool) -> Inserted {
        let mut s = self.lock();
        if s.retired {
            return Inserted::Retired;
        }
        if s.by_id.contains(&conn.id()) {
            return Inserted::Already;
        }
        if !admit() {
            return Inserted::Refused;
        }
        let first = s.by_id.is_empty();
        s.by_id.insert(ById(conn.clone()));
        s.snapshot = None;
        Inserted::Added { first }
    }

    /// Removes connection `id`; `Some(members left)` if it was there.
    pub(crate) fn remove(&self, id: u64, then: impl FnOnce(&WsConn)) -> Option<usize> {
        let mut s = self.lock();
        let ById(conn) = s.by_id.take(&id)?;
        s.snapshot = None;
        then(&conn);
        Some(s.by_id.len())
    }

    /// Retires the set if it is empty; `true` if it did.
    pub(crate) fn retire_if_empty(&self) -> bool {
        let mut s = self.lock();
        if s.by_id.is_empty() {
            s.retired = true;
        }
        s.retired
    }

    /// Retires the set and returns what it held; `each` runs on every
    /// member under the set's lock.
    pub(crate) fn retire(&self, mut each: impl FnMut(&WsConn)) -> Vec<WsConn> {
        let mut s = self.lock();
        s.retired = true;
        s.snapshot = None;
        s.by_id.drain().map(|ById(c)| c).inspect(|c| each(c)).collect()
    }

    /// The connection with this id.
    pub(crate) fn get(&self, id: u64) -> Option<WsConn> {
        self.lock().by_id.get(&id).map(|ById(c)| c.clone())
    }

    /// Whether connection `id` is a member.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.lock().by_id.contains(&id)
    }

    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// The members now, shared: iterate it with no lock held.
    pub(crate) fn snapshot(&self) -> Arc<[WsConn]> {
        let mut s = self.lock();
        if let Some(snapshot) = &s.snapshot {
            return snapshot.clone();
        }
        // Each id read once, beside the clone that touches the same
        // allocation; the sort compares the copies.
        let mut members: Vec<(u64, WsConn)> = s.by_id.iter().map(|ById(c)| (c.id(), c.clone())).collect();
        members.sort_unstable_by_key(|(id, _)| *id);
        let snapshot: Arc<[WsConn]> = members.into_iter().map(|(_, c)| c).collect();
        s.snapshot = Some(snapshot.clone());
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::request::RequestInfo;
    use crate::ws::signal::Signal;
    use crate::ws::{WsHost, WsOptions};

    /// The snapshot follows the ids (the order the connections were
    /// made), whatever the set's hash order, also after members leave.
    #[test]
    fn the_snapshot_lists_members_in_the_order_of_their_ids() {
        let host = WsHost::new("/t", WsOptions::default());
        let members = Members::new();
        // Ids inserted out of order (a stride coprime with 500).
        for n in 0..500u64 {
            let id = 1 + (n * 277) % 500;
            let conn = WsConn::new(id, host.shared.clone(), RequestInfo::for_tests("/t", [2, 2, 2]), Signal::default());
            members.insert(&conn, || true);
        }
        let ids = |members: &Members| members.snapshot().iter().map(WsConn::id).collect::<Vec<_>>();
        assert_eq!(ids(&members), (1..=500).collect::<Vec<_>>());
        for id in (1..=500).step_by(3) {
            members.remove(id, |_| {});
        }
        assert_eq!(ids(&members), (1..=500).filter(|id| (id - 1) % 3 != 0).collect::<Vec<_>>());
    }
}
