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

/// `Send::next` of a connection's last frame.
const END: u32 = u32::MAX;

thread_local! {
    /// The number of the loop this thread runs; `0`: none.
    static HERE: Cell<u32> = const { Cell::new(0) };
    /// The frames listed on this thread and not yet written.
    static LISTED: RefCell<Listed> = const { RefCell::new(Listed::new()) };
}

/// The frames listed on a loop's thread, by connection.
pub(crate) struct Listed {
    /// Each broadcast's frame, once.
    frames: Vec<Arc<PreparedFrame>>,
    /// Every frame listed, each connection's chained in order.
    sends: Vec<Send>,
    /// The first send of each connection, in the order they came.
    firsts: Vec<u32>,
    /// By `ConnId::index`: the round a connection's last send was listed
    /// in, and that send (valid only for the current round).
    last: Vec<(u32, u32)>,
    /// Counts the writes, so that `last` needs no clearing (never `0`).
    round: u32,
    /// Bytes of the frames listed.
    bytes: usize,
}

/// One frame listed for one connection.
struct Send {
    id: ConnId,
    frame: u32,
    next: u32,
}

impl Listed {
    const fn new() -> Listed {
        Listed { frames: Vec::new(), sends: Vec::new(), firsts: Vec::new(), last: Vec::new(), round: 1, bytes: 0 }
    }

    fn list(&mut self, id: ConnId, first: bool, frame: &Arc<PreparedFrame>) {
        if !self.frames.last().is_some_and(|last| Arc::ptr_eq(last, frame)) {
            self.frames.push(frame.clone());
        }
        self.bytes += frame.as_bytes().len();
        let send = u32::try_from(self.sends.len()).unwrap_or(END);
        self.sends.push(Send { id, frame: u32::try_from(self.frames.len() - 1).unwrap_or(0), next: END });
        let index = id.index();
        if self.last.len() <= index {
            self.last.resize(index + 1, (0, 0));
        }
        let (round, tail) = self.last[index];
        if !first && round == self.round {
            self.sends[tail as usize].next = send;
        } else {
            self.firsts.push(send);
        }
        self.last[index] = (self.round, send);
    }

    /// Calls `write` for each connection with frames listed, in the
    /// order they were first listed, with its frames in order; then
    /// forgets them.
    fn drain(&mut self, mut write: impl FnMut(ConnId, &mut dyn Iterator<Item = &PreparedFrame>)) {
        for &first in &self.firsts {
            let id = self.sends[first as usize].id;
            let mut at = first;
            let mut frames = std::iter::from_fn(|| {
                let send = self.sends.get(at as usize)?;
                at = send.next;
                Some(&*self.frames[send.frame as usize])
            });
            write(id, &mut frames);
        }
        self.frames.clear();
        self.sends.clear();
        self.firsts.clear();
        self.bytes = 0;
        self.round = self.round.checked_add(1).unwrap_or(1);
        if self.sends.capacity() > 1 << 20 {
            self.frames = Vec::new();
            self.sends = Vec::new();
            self.firsts = Vec::new();
        }
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
        if listed.bytes + frame.as_bytes().len() > BUDGET && !listed.sends.is_empty() {
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
        !listed.sends.is_empty() && listed.last.get(id.index()).is_some_and(|&(round, _)| round == listed.round)
    })
}

/// Whether frames are listed on this thread.
pub(crate) fn pending() -> bool {
    LISTED.with_borrow(|listed| !listed.sends.is_empty())
}

/// Hands every connection's listed frames to `write` (see
/// [`Listed::drain`]). `write` must not broadcast (it runs with the list
/// borrowed): the loop only copies into outputs there.
pub(crate) fn drain(write: impl FnMut(ConnId, &mut dyn Iterator<Item = &PreparedFrame>)) {
    LISTED.with_borrow_mut(|listed| listed.drain(write));
}
