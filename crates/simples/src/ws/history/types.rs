//! The history's values: options, positions, entries, what a recovery
//! did, and the memory a host's histories use; epochs. A leaf: the
//! backends and the host's state (`ws/state.rs`) build on it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use simples_ws::Message;

/// How much history a channel keeps: at most `size` messages, none older
/// than `ttl`, whichever is smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// The most messages kept (the oldest go first). Default: `100`.
    /// At least 1.
    pub size: usize,
    /// How long a message is kept. Default: 2 minutes.
    pub ttl: Duration,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { size: 100, ttl: Duration::from_secs(120) }
    }
}

/// Where a message stands in its channel's history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Changes whenever the history is lost (a new one starts at offset 1).
    pub epoch: String,
    /// The message's number in the epoch: 1 for the first, then +1 each.
    pub offset: u64,
}

/// A message of a channel's history, from [`Channel::history`](crate::ws::Channel::history).
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Its position.
    pub position: Position,
    /// The message as it was published (without the position fields).
    pub message: Message,
}

/// What [`Channel::join`](crate::ws::Channel::join) (and a client's
/// `@join`) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Whether the connection is now complete: every message after the
    /// position it gave was replayed (trivially `true` when it gave none).
    /// `false` when the gap could not be filled (the messages were
    /// trimmed, the epoch changed, or the channel keeps no history): the
    /// application should reload its state.
    pub recovered: bool,
    /// The position of the last message sent to the connection before
    /// live delivery took over (the channel's latest when nothing was
    /// replayed); `None` when the channel keeps no history.
    pub position: Option<Position>,
    /// How many missed messages were replayed.
    pub replayed: usize,
}

/// History memory of a host, counted in [`WsStats`](crate::ws::WsStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) channels: usize,
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An epoch: 16 random hex digits.
pub(crate) fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_differ() {
        let (a, b) = (new_epoch(), new_epoch());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
