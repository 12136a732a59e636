//! The in-process history backend: one bounded log per channel.
//!
//! A log holds at most `size` messages, none older than `ttl` (trimmed on
//! every append and read, with tokio's clock, so tests can pause it). Its
//! epoch is drawn when the log is created (the first message published on
//! the channel in this process): a restarted process has new epochs, and
//! a client that recovers from a position of the old one gets
//! `recovered: false`.
//!
//! The number of logs is bounded (`WsOptions::max_history_channels`): a
//! client that joins channel after channel (`@join room:1`, `room:2`,
//! ...) creates one log each, which its `@leave` does not remove (a
//! quiet channel's epoch must outlive its members, or every reconnection
//! to it would be `recovered: false`). At the bound, a new log evicts the
//! least recently used ones of channels without members here, empty
//! first, down to seven eighths of it (one sweep per eighth of the bound:
//! amortised O(log n) per new log; a sweep of 10,000 logs holds the map's
//! lock about a millisecond). Logs of channels with members are never
//! evicted: past the bound, the logs are as many as those channels plus
//! an eighth of the bound (the next sweep waits for that many new logs).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use simples_ws::Message;
use tokio::time::Instant;

use super::{lock, new_epoch, HistoryEntry, HistoryOptions, Position, Usage};

/// The logs of a host's history channels, and what they hold in total.
#[derive(Default)]
pub(crate) struct Memory {
    logs: Mutex<Logs>,
    messages: AtomicUsize,
    bytes: AtomicUsize,
}

/// The logs by channel, and when to sweep next.
#[derive(Default)]
struct Logs {
    by_name: HashMap<String, Arc<Mutex<Log>>>,
    /// A new log sweeps once there are this many (at least the bound;
    /// more after a sweep that could not get under it: the logs of
    /// channels with members stay, and sweeping again at each new log
    /// would cost O(n) each).
    sweep_at: usize,
    /// Sweeps so far (tests look).
    sweeps: u64,
}

struct Stored {
    offset: u64,
    at: Instant,
    payload: Bytes,
    binary: bool,
}

/// One channel's log.
pub(crate) struct Log {
    epoch: String,
    /// The offset of the latest message (0: none yet).
    last: u64,
    entries: VecDeque<Stored>,
    options: HistoryOptions,
    /// When it was last appended to or read.
    touched: Instant,
}

/// What a read since a position found.
#[derive(Debug)]
pub(crate) struct Since {
    /// The log's epoch and latest offset.
    pub(crate) top: Position,
    /// Whether every message after the position is still there.
    pub(crate) complete: bool,
    /// The messages after the position still kept (all of them when
    /// complete; none when the epoch differs): offset, payload, binary.
    pub(crate) entries: Vec<(u64, Bytes, bool)>,
}

impl Memory {
    /// Channel `name`'s log, created (with a new epoch) if missing; when
    /// `max_logs` are there already, the least recently used of those
    /// whose channel has no member here (`has_members`) go first.
    pub(crate) fn log(
        &self,
        name: &str,
        options: HistoryOptions,
        max_logs: usize,
        has_members: impl Fn(&str) -> bool,
    ) -> Arc<Mutex<Log>> {
        let mut logs = lock(&self.logs);
        if let Some(log) = logs.by_name.get(name) {
            return log.clone();
        }
        let max_logs = max_logs.max(1);
        if logs.by_name.len() >= logs.sweep_at.max(max_logs) {
            self.evict(&mut logs.by_name, max_logs - 1 - max_logs / 8, has_members);
            logs.sweep_at = logs.by_name.len() + 1 + max_logs / 8;
            logs.sweeps += 1;
        }
        let log = Log { epoch: new_epoch(), last: 0, entries: VecDeque::new(), options, touched: Instant::now() };
        let log = Arc::new(Mutex::new(log));
        logs.by_name.insert(name.to_string(), log.clone());
        log
    }

    /// Removes logs, least recently used first and empty ones (after
    /// trimming by age) before any that holds messages, until `keep` are
    /// left. Two kinds stay: a log someone holds now (a publication or a
    /// read under way; only the map holds the others, and nobody can take
    /// one while the map's lock is held), and the log of a channel with
    /// members here (its members may recover from it, a recovery may be
    /// under way: their number is the application's to bound, `on_join`).
    fn evict(&self, logs: &mut HashMap<String, Arc<Mutex<Log>>>, keep: usize, has_members: impl Fn(&str) -> bool) {
        let now = Instant::now();
        let mut idle: Vec<(bool, Instant, String)> = logs
            .iter()
            .filter(|(name, log)| Arc::strong_count(log) == 1 && !has_members(name))
            .map(|(name, log)| {
                let mut log = lock(log);
                log.trim(self, now);
                (!log.entries.is_empty(), log.touched, name.clone())
            })
            .collect();
        idle.sort_unstable();
        let excess = logs.len().saturating_sub(keep);
        let (mut evicted, mut with_messages) = (0, 0);
        for (held, _, name) in idle.into_iter().take(excess) {
            if let Some(log) = logs.remove(&name) {
                let mut log = lock(&log);
                while log.pop(self) {}
                evicted += 1;
                with_messages += usize::from(held);
            }
        }
        if with_messages > 0 {
            tracing::warn!(evicted, with_messages, "channel histories evicted at WsOptions::max_history_channels");
        } else {
            tracing::debug!(evicted, "empty channel histories evicted at WsOptions::max_history_channels");
        }
    }

    /// Channel `name`'s log if it exists.
    pub(crate) fn existing(&self, name: &str) -> Option<Arc<Mutex<Log>>> {
        lock(&self.logs).by_name.get(name).cloned()
    }

    /// What the logs hold now.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            channels: lock(&self.logs).by_name.len(),
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

impl Log {
    /// Appends a message: its position. Trims by age and size.
    pub(crate) fn append(&mut self, memory: &Memory, payload: Bytes, binary: bool) -> Position {
        let now = Instant::now();
        self.trim(memory, now);
        self.touched = now;
        self.last += 1;
        memory.messages.fetch_add(1, Ordering::Relaxed);
        memory.bytes.fetch_add(payload.len(), Ordering::Relaxed);
        self.entries.push_back(Stored { offset: self.last, at: now, payload, binary });
        while self.entries.len() > self.options.size {
            self.pop(memory);
        }
        Position { epoch: self.epoch.clone(), offset: self.last }
    }

    /// Sets the options (the policy may change them).
    pub(crate) fn set_options(&mut self, options: HistoryOptions) {
        self.options = options;
    }

    fn pop(&mut self, memory: &Memory) -> bool {
        let Some(old) = self.entries.pop_front() else { return false };
        memory.messages.fetch_sub(1, Ordering::Relaxed);
        memory.bytes.fetch_sub(old.payload.len(), Ordering::Relaxed);
        true
    }

    fn trim(&mut self, memory: &Memory, now: Instant) {
        while self.entries.front().is_some_and(|e| now.saturating_duration_since(e.at) >= self.options.ttl) {
            self.pop(memory);
        }
    }

    /// A read: trims by age, and the log counts as used now.
    pub(crate) fn touch(&mut self, memory: &Memory) {
        let now = Instant::now();
        self.trim(memory, now);
        self.touched = now;
    }

    /// The latest position (offset 0 before the first message).
    pub(crate) fn top(&self) -> Position {
        Position { epoch: self.epoch.clone(), offset: self.last }
    }

    /// The messages after `since` still here, and whether that is all.
    pub(crate) fn since(&mut self, memory: &Memory, since: &Position) -> Since {
        self.touch(memory);
        let top = self.top();
        let oldest = self.entries.front().map_or(self.last + 1, |e| e.offset);
        let complete = since.epoch == self.epoch && since.offset <= self.last && since.offset + 1 >= oldest;
        let entries = if since.epoch == self.epoch {
            self.entries
                .iter()
                .filter(|e| e.offset > since.offset)
                .map(|e| (e.offset, e.payload.clone(), e.binary))
                .collect()
        } else {
            Vec::new()
        };
        Since { top, complete, entries }
    }

    /// The latest `limit` messages, oldest first.
    pub(crate) fn recent(&mut self, memory: &Memory, limit: usize) -> Vec<HistoryEntry> {
        self.touch(memory);
        let skip = self.entries.len().saturating_sub(limit);
        self.entries
            .iter()
            .skip(skip)
            .map(|e| HistoryEntry {
                position: Position { epoch: self.epoch.clone(), offset: e.offset },
                message: if e.binary {
                    Message::Binary(e.payload.clone())
                } else {
                    match simples_ws::Utf8Bytes::try_from_bytes(e.payload.clone()) {
                        Ok(t) => Message::Text(t),
                        Err(_) => Message::Binary(e.payload.clone()),
                    }
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Found in review: a client joining channel after channel (each
    /// `@join` makes a log) grew the map without bound. At the bound the
    /// least recently used go, empty ones first, never one in use or of a
    /// channel with members; the counters follow what is removed.
    #[tokio::test(start_paused = true)]
    async fn regression_logs_are_bounded_lru_empty_first_never_one_in_use() {
        let memory = Memory::default();
        let options = opts(10, 60);
        // Two logs with messages, used long ago; one held by a publication.
        for name in ["kept-1", "kept-2"] {
            lock(&memory.log(name, options, 8, |_| false)).append(&memory, Bytes::from_static(b"abc"), false);
        }
        let held = memory.log("held", options, 8, |_| false);
        for n in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            memory.log(&format!("empty-{n}"), options, 8, |_| false);
            assert!(memory.usage().channels <= 8, "{n}: {:?}", memory.usage());
        }
        let names: Vec<String> = lock(&memory.logs).by_name.keys().cloned().collect();
        for name in ["kept-1", "kept-2", "held", "empty-99"] {
            assert!(names.iter().any(|n| n == name), "{name} evicted: {names:?}");
        }
        assert_eq!(memory.usage(), Usage { channels: names.len(), messages: 2, bytes: 6 });
        // Past the messages' age they are empty too, and the oldest: gone
        // first; so is a log once nobody holds it.
        drop(held);
        tokio::time::advance(Duration::from_secs(61)).await;
        for n in 0..8 {
            memory.log(&format!("new-{n}"), options, 8, |_| false);
        }
        let names: Vec<String> = lock(&memory.logs).by_name.keys().cloned().collect();
        assert!(!names.iter().any(|n| n.starts_with("kept") || n == "held"), "{names:?}");
        assert_eq!((memory.usage().messages, memory.usage().bytes), (0, 0));
        // A recent read keeps a log: `since` and `recent` count as use; so
        // do members: the oldest log, empty, stays while its channel has
        // members here.
        let member = |n: &str| n == "member";
        memory.log("member", options, 8, member);
        let read = memory.log("read", options, 8, member);
        drop(read);
        for n in 0..30 {
            tokio::time::advance(Duration::from_millis(10)).await;
            if let Some(log) = memory.existing("read") {
                lock(&log).recent(&memory, 1);
            }
            memory.log(&format!("more-{n}"), options, 8, member);
        }
        assert!(memory.existing("read").is_some());
        assert!(memory.existing("member").is_some());
        // Channels with members past the bound: kept, and a sweep only
        // every eighth of the bound (8 here: every new log), not at each.
        let busy = Memory::default();
        for n in 0..400 {
            busy.log(&format!("busy-{n}"), options, 64, |_| true);
        }
        assert_eq!(busy.usage().channels, 400);
        let sweeps = lock(&busy.logs).sweeps;
        assert!(sweeps <= (400 - 64) / 8 + 1, "{sweeps} sweeps for 336 logs past the bound");
        // Once they have no members, a sweep brings them under the bound.
        for n in 0..9 {
            busy.log(&format!("after-{n}"), options, 64, |_| false);
        }
        assert!(busy.usage().channels <= 64, "{:?}", busy.usage());
        // A bound under 1 counts as 1.
        let one = Memory::default();
        one.log("a", options, 0, |_| false);
        one.log("b", options, 0, |_| false);
        assert_eq!(one.usage().channels, 1);
    }

    fn opts(size: usize, secs: u64) -> HistoryOptions {
        HistoryOptions { size, ttl: Duration::from_secs(secs) }
    }

    #[tokio::test(start_paused = true)]
    async fn trims_by_size_and_age() {
        let memory = Memory::default();
        let log = memory.log("c", opts(3, 10), 100, |_| false);
        for i in 0..5u8 {
            assert_eq!(lock(&log).append(&memory, Bytes::from(vec![i]), true).offset, u64::from(i) + 1);
        }
        assert_eq!(memory.usage().messages, 3);
        let offsets: Vec<u64> = lock(&log).recent(&memory, 10).iter().map(|e| e.position.offset).collect();
        assert_eq!(offsets, [3, 4, 5]);
        let epoch = lock(&log).top().epoch;
        assert!(lock(&log).since(&memory, &Position { epoch: epoch.clone(), offset: 2 }).complete);
        assert!(!lock(&log).since(&memory, &Position { epoch: epoch.clone(), offset: 1 }).complete);
        assert!(!lock(&log).since(&memory, &Position { epoch: "other".into(), offset: 4 }).complete);
        assert!(!lock(&log).since(&memory, &Position { epoch: epoch.clone(), offset: 6 }).complete);
        tokio::time::advance(Duration::from_secs(6)).await;
        lock(&log).append(&memory, Bytes::from_static(b"x"), true);
        tokio::time::advance(Duration::from_secs(5)).await;
        // The first three are 11 s old: gone; the fourth (6 s... 5 s) stays.
        assert_eq!(lock(&log).recent(&memory, 10).len(), 1);
        assert_eq!(memory.usage(), Usage { channels: 1, messages: 1, bytes: 1 });
        let since = lock(&log).since(&memory, &Position { epoch: epoch.clone(), offset: 5 });
        assert!(since.complete);
        assert_eq!(since.entries.len(), 1);
        // Nothing missed: complete even with all of it expired.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(lock(&log).since(&memory, &Position { epoch, offset: 6 }).complete);
        assert_eq!(memory.usage().messages, 0);
    }
}
