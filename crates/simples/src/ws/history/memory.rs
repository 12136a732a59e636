//! The in-process history backend: one bounded log per channel.
//!
//! A log holds at most `size` messages, none older than `ttl` (trimmed on
//! every append and read, with tokio's clock, so tests can pause it). Its
//! epoch is drawn when the log is created (the first message published on
//! the channel in this process): a restarted process has new epochs, and
//! a client that recovers from a position of the old one gets
//! `recovered: false`.

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
    logs: Mutex<HashMap<String, Arc<Mutex<Log>>>>,
    messages: AtomicUsize,
    bytes: AtomicUsize,
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
    /// Channel `name`'s log, created (with a new epoch) if missing.
    pub(crate) fn log(&self, name: &str, options: HistoryOptions) -> Arc<Mutex<Log>> {
        let mut logs = lock(&self.logs);
        logs.entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Log { epoch: new_epoch(), last: 0, entries: VecDeque::new(), options }))
            })
            .clone()
    }

    /// Channel `name`'s log if it exists.
    pub(crate) fn existing(&self, name: &str) -> Option<Arc<Mutex<Log>>> {
        lock(&self.logs).get(name).cloned()
    }

    /// What the logs hold now.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            channels: lock(&self.logs).len(),
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

    /// The latest position (offset 0 before the first message).
    pub(crate) fn top(&self) -> Position {
        Position { epoch: self.epoch.clone(), offset: self.last }
    }

    /// The messages after `since` still here, and whether that is all.
    pub(crate) fn since(&mut self, memory: &Memory, since: &Position) -> Since {
        self.trim(memory, Instant::now());
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
        self.trim(memory, Instant::now());
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

    fn opts(size: usize, secs: u64) -> HistoryOptions {
        HistoryOptions { size, ttl: Duration::from_secs(secs) }
    }

    #[tokio::test(start_paused = true)]
    async fn trims_by_size_and_age() {
        let memory = Memory::default();
        let log = memory.log("c", opts(3, 10));
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
