//! The direct path of a broadcast made on an event loop's thread (a
//! handler of one of its connections) to connections of that same loop:
//! the shared frame goes straight into each one's output, the way the
//! bare loop's `Ctx::broadcast` writes it, instead of into its outbox
//! (a lock, an unlock, a reference count up and down, a wake-up and a
//! pump per subscriber). A leaf.
//!
//! ```text
//!   broadcast on loop L's thread, target T on L, T's path OPEN or TAKEN
//!       -> T's path TAKEN, the frame listed for T here (thread-local)
//!   L, once per iteration before its writes (`before_writes`), and
//!   before any pump of a connection with frames listed: writes each
//!   connection's frames into its output in one go (a burst of broadcasts
//!   is one copy per connection, not one per broadcast: the outputs are
//!   visited once, as uWebSockets drains its topics), then reopens each
//!   path unless something closed it meanwhile (or the output is over
//!   HIGH_WATER: closed, and reopened by the pump once it drains)
//! ```
//!
//! Order: the path is open only while the target's outbox is empty (the
//! loop opens it under the outbox's lock; every lock of the outbox closes
//! it, see `Signal`), so nothing a sender queued before a broadcast waits
//! behind it; whatever is queued after closes it, so the broadcasts after
//! that go through the outbox too, behind it; and the loop pumps an outbox
//! only after writing the frames listed for it. `tests/model_direct.rs`
//! checks the rules over thread interleavings.
//!
//! Bounds: the path is open only while the output is under `HIGH_WATER`,
//! and the frames listed on a thread total at most [`BUDGET`] bytes (past
//! it broadcasts take the outbox): a loop's outputs hold at most
//! `BUDGET` bytes more than the outboxes' rules allow, all connections
//! together.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use simples_ws::event_loop::ConnId;
use simples_ws::PreparedFrame;

use super::signal::Signal;

/// Bytes of frames listed on one thread, at most, until its loop writes
/// them (a burst of 64 broadcasts of 64 B to 1,000 connections is 4.2 MB:
/// at 4 MiB the last of them took the outbox path and every subscriber
/// got two writes instead of one, 25% more CPU per delivery).
pub(crate) const BUDGET: usize = 16 << 20;

/// `Run::next` of a connection's last run.
const END: u32 = u32::MAX;

thread_local! {
    /// The number of the loop this thread runs; `0`: none.
    static HERE: Cell<u32> = const { Cell::new(0) };
    /// The frames listed on this thread and not yet written.
    static LISTED: RefCell<Listed> = const { RefCell::new(Listed::new()) };
}

/// What [`Listed`] keys connections by: a loop's [`ConnId`] (and a plain
/// number in the unit tests, which cannot make one).
pub(crate) trait Key: Copy {
    /// Small and dense, unique among live connections.
    fn index(self) -> usize;
}

impl Key for ConnId {
    fn index(self) -> usize {
        ConnId::index(self)
    }
}

/// The frames listed on a loop's thread, by connection.
///
/// A burst of broadcasts to the same connections lists each connection
/// one run of consecutive frames, grown by one per broadcast (a compare
/// and an increment per delivery), and written from the frame table in
/// one pass; a connection that skips a frame (a filter, a channel) starts
/// another run, chained to its last.
pub(crate) struct Listed<K = ConnId> {
    /// Each broadcast's frame, once.
    frames: Vec<Arc<PreparedFrame>>,
    /// Runs of consecutive frames, each connection's chained in order.
    runs: Vec<Run<K>>,
    /// The first run of each connection, in the order they came.
    firsts: Vec<u32>,
    /// By `ConnId::index`: the round a connection's last run was listed
    /// in, and that run (valid only for the current round).
    last: Vec<(u32, u32)>,
    /// Counts the writes, so that `last` needs no clearing (never `0`).
    round: u32,
    /// Bytes of the frames listed, as many times as listed.
    bytes: usize,
}

/// Frames `start..end` of the table, listed for one connection.
struct Run<K> {
    id: K,
    start: u32,
    end: u32,
    /// The connection's next run, or `END`.
    next: u32,
}

impl<K: Key> Listed<K> {
    const fn new() -> Listed<K> {
        Listed { frames: Vec::new(), runs: Vec::new(), firsts: Vec::new(), last: Vec::new(), round: 1, bytes: 0 }
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Lists `frame` for `id`: `first` when its path was open (nothing
    /// listed for it since the last write). Inline for a burst's common
    /// case: the connection's last run ends just before the frame.
    #[inline]
    fn list(&mut self, id: K, first: bool, frame: &Arc<PreparedFrame>) {
        if !self.frames.last().is_some_and(|last| Arc::ptr_eq(last, frame)) {
            self.frames.push(frame.clone());
        }
        self.bytes += frame.as_bytes().len();
        // At most `BUDGET` frames (each at least 2 bytes): no overflow.
        let at = (self.frames.len() - 1) as u32;
        if !first {
            if let Some(&(_, tail)) = self.last.get(id.index()).filter(|&&(round, _)| round == self.round) {
                let run = &mut self.runs[tail as usize];
                if run.end == at {
                    run.end = at + 1;
                    return;
                }
            }
        }
        self.start_run(id, first, at);
    }

    /// A new run for `id`, starting at frame `at`: its first, or chained
    /// to its last.
    #[inline(never)]
    fn start_run(&mut self, id: K, first: bool, at: u32) {
        let index = id.index();
        if self.last.len() <= index {
            self.last.resize(index + 1, (0, 0));
        }
        let (round, tail) = self.last[index];
        let new = self.runs.len() as u32;
        self.runs.push(Run { id, start: at, end: at + 1, next: END });
        if !first && round == self.round {
            self.runs[tail as usize].next = new;
        } else {
            self.firsts.push(new);
        }
        self.last[index] = (self.round, new);
    }

    /// Calls `write` for each connection with frames listed, in the
    /// order they were first listed, with its frames in order; then
    /// forgets them.
    fn drain(&mut self, mut write: impl FnMut(K, Frames<'_, K>)) {
        for &first in &self.firsts {
            let run = &self.runs[first as usize];
            let frames = Frames { frames: &self.frames, runs: &self.runs, at: run.start, end: run.end, next: run.next };
            write(run.id, frames);
        }
        self.frames.clear();
        self.runs.clear();
        self.firsts.clear();
        self.bytes = 0;
        self.round = self.round.checked_add(1).unwrap_or(1);
        if self.runs.capacity() > 1 << 20 {
            self.frames = Vec::new();
            self.runs = Vec::new();
            self.firsts = Vec::new();
        }
    }
}

/// One connection's listed frames, in order (see [`drain`]).
pub(crate) struct Frames<'a, K = ConnId> {
    frames: &'a [Arc<PreparedFrame>],
    runs: &'a [Run<K>],
    /// The next frame of the current run, and its end.
    at: u32,
    end: u32,
    /// The run after the current one, or `END`.
    next: u32,
}

impl<'a, K> Iterator for Frames<'a, K> {
    type Item = &'a PreparedFrame;

    fn next(&mut self) -> Option<&'a PreparedFrame> {
        while self.at == self.end {
            let run = self.runs.get(self.next as usize)?;
            (self.at, self.end, self.next) = (run.start, run.end, run.next);
        }
        let frame = &self.frames[self.at as usize];
        self.at += 1;
        Some(frame)
    }
}

/// A new loop's number: never `0`, never reused in the process.
pub(crate) fn lane_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Called once by a loop's thread, before its loop runs.
pub(crate) fn enter(lane: u32) {
    HERE.set(lane);
}

/// The loop this thread runs (`0`: none): read once per broadcast.
pub(crate) fn here() -> u32 {
    HERE.get()
}

/// A broadcast's `frame` for the connection of `signal`, made on the
/// thread of loop `here` (not `0`): `true` if it took the direct path
/// (then it is this thread's loop's to write, see [`drain`]).
pub(crate) fn offer(here: u32, signal: &Signal, frame: &Arc<PreparedFrame>) -> bool {
    LISTED.with_borrow_mut(|listed| {
        if listed.bytes + frame.as_bytes().len() > BUDGET && !listed.is_empty() {
            return false;
        }
        let Some((id, first)) = signal.take_direct(here) else {
            return false;
        };
        listed.list(id, first, frame);
        true
    })
}

/// Whether frames are listed for `id` on this thread.
pub(crate) fn listed(id: ConnId) -> bool {
    LISTED.with_borrow(|listed| {
        !listed.is_empty() && listed.last.get(id.index()).is_some_and(|&(round, _)| round == listed.round)
    })
}

/// Whether frames are listed on this thread.
pub(crate) fn pending() -> bool {
    LISTED.with_borrow(|listed| !listed.is_empty())
}

/// Hands every connection's listed frames to `write` (see
/// [`Listed::drain`]). `write` must not broadcast (it runs with the list
/// borrowed): the loop only copies into outputs there.
pub(crate) fn drain(write: impl FnMut(ConnId, Frames<'_>)) {
    LISTED.with_borrow_mut(|listed| listed.drain(write));
}

#[cfg(test)]
mod tests {
    use super::*;
    use simples_ws::Message;

    fn frame(text: &str) -> Arc<PreparedFrame> {
        Arc::new(PreparedFrame::new(&Message::text(text)).unwrap())
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Id(usize);

    impl Key for Id {
        fn index(self) -> usize {
            self.0
        }
    }

    fn id(index: usize) -> Id {
        Id(index)
    }

    /// What `drain` hands over: each connection's frames as text.
    fn drained(listed: &mut Listed<Id>) -> Vec<(Id, Vec<String>)> {
        let mut out = Vec::new();
        listed.drain(|id, frames| {
            let texts = frames.map(|f| String::from_utf8_lossy(&f.as_bytes()[2..]).into_owned()).collect();
            out.push((id, texts));
        });
        out
    }

    fn texts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_burst_to_the_same_connections_is_one_run_each() {
        let mut listed = Listed::<Id>::new();
        let frames: Vec<_> = (0..4).map(|i| frame(&format!("m{i}"))).collect();
        for (n, f) in frames.iter().enumerate() {
            for c in [3, 1, 2] {
                listed.list(id(c), n == 0, f);
            }
        }
        assert_eq!(listed.runs.len(), 3);
        assert_eq!(listed.bytes, 12 * 4);
        let all = texts(&["m0", "m1", "m2", "m3"]);
        assert_eq!(drained(&mut listed), vec![(id(3), all.clone()), (id(1), all.clone()), (id(2), all)]);
        assert!(listed.is_empty() && listed.bytes == 0);
    }

    #[test]
    fn a_connection_that_skips_a_frame_gets_chained_runs_in_order() {
        let mut listed = Listed::<Id>::new();
        let frames: Vec<_> = (0..5).map(|i| frame(&format!("m{i}"))).collect();
        // Connection 1 gets every frame; 2 gets m0, m1, m3 (a filter left
        // m2 out); 3 only m2 and m4.
        let targets: [&[usize]; 5] = [&[1, 2], &[1, 2], &[1, 3], &[1, 2], &[1, 3]];
        let mut seen = std::collections::HashSet::new();
        for (f, to) in frames.iter().zip(targets) {
            for &c in to {
                listed.list(id(c), seen.insert(c), f);
            }
        }
        assert_eq!(
            drained(&mut listed),
            vec![
                (id(1), texts(&["m0", "m1", "m2", "m3", "m4"])),
                (id(2), texts(&["m0", "m1", "m3"])),
                (id(3), texts(&["m2", "m4"])),
            ]
        );
    }

    #[test]
    fn the_same_frame_listed_twice_for_a_connection_goes_out_twice() {
        let mut listed = Listed::<Id>::new();
        let (a, b) = (frame("a"), frame("b"));
        listed.list(id(1), true, &a);
        listed.list(id(1), false, &a);
        listed.list(id(1), false, &b);
        assert_eq!(drained(&mut listed), vec![(id(1), texts(&["a", "a", "b"]))]);
    }

    /// Regression (2026-12-05): at 4 MiB the last broadcast of such a
    /// burst took the outbox path, and every subscriber got two writes.
    #[test]
    fn a_burst_of_64_broadcasts_of_64_bytes_to_1000_connections_fits_the_budget() {
        let mut listed = Listed::<Id>::new();
        for n in 0..64 {
            let f = frame(&"x".repeat(64));
            for c in 0..1000 {
                listed.list(id(c), n == 0, &f);
            }
        }
        assert_eq!(listed.bytes, 64 * 1000 * 66);
        assert!(listed.bytes <= BUDGET, "{} B listed, budget {BUDGET} B", listed.bytes);
        assert_eq!(listed.runs.len(), 1000);
    }

    #[test]
    fn a_new_round_forgets_the_last_one() {
        let mut listed = Listed::<Id>::new();
        let (a, b) = (frame("a"), frame("b"));
        listed.list(id(1), true, &a);
        assert_eq!(drained(&mut listed), vec![(id(1), texts(&["a"]))]);
        // `first` is false (the path was already taken) but the round is
        // new: a fresh run, not a chain onto a run that was written.
        listed.list(id(1), false, &b);
        assert_eq!(drained(&mut listed), vec![(id(1), texts(&["b"]))]);
        assert_eq!(drained(&mut listed), vec![]);
    }
}
