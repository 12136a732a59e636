//! A connection's bounded outgoing queue and the slow-client policy.
//!
//! Senders (the connection's own handlers, broadcasts from anywhere) push
//! here under a short lock; the connection's driver moves messages into the
//! protocol's output only while less than [`HIGH_WATER`] bytes wait there.
//!
//! The rule (as uWebSockets' back-pressure): **an empty queue takes one
//! message of any size**; the limits (`max_queued_bytes`,
//! `max_queued_messages`) bound what waits behind it. So a host can always
//! send a message as large as the ones it accepts (an echo of a 16 MiB
//! message with the default 1 MiB queue), and a client that stops reading
//! still holds a bounded amount: with `M` the largest message sent to it, at
//! most `max(max_queued_bytes, M)` here plus `HIGH_WATER + M` in the
//! protocol's output (the driver moves one whole message whenever the output
//! is under `HIGH_WATER`). A full queue is resolved by the host's
//! [`SlowPolicy`] without ever waiting.

use std::collections::VecDeque;
use std::sync::Arc;

use simples_ws::{CloseCode, Message, PreparedFrame};

use super::options::{SlowAction, SlowPolicy};

/// Bytes the driver lets wait in the protocol's output before it stops
/// taking messages from the outbox.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// Items an empty queue makes room for (see `Outbox::enqueue`).
const FIRST_CAPACITY: usize = 16;

/// One queued item.
pub(crate) enum Out {
    /// A message for this connection only (compressed if negotiated).
    Message(Message),
    /// A frame encoded once and shared (broadcasts). Behind an `Arc`: one
    /// reference count per subscriber instead of the frame's two `Bytes`
    /// (cloned and dropped through their vtables), and a queue item half
    /// the size to move.
    Frame(Arc<PreparedFrame>),
    /// Start the closing handshake.
    Close(CloseCode, String),
}

impl Out {
    /// Bytes it takes in the queue: the frame's, or the message's payload.
    pub(crate) fn size(&self) -> usize {
        match self {
            Out::Message(m) => m.payload().len(),
            Out::Frame(f) => f.as_bytes().len(),
            Out::Close(..) => 0,
        }
    }
}

/// The queue and its limits.
pub(crate) struct Outbox {
    queue: VecDeque<Out>,
    bytes: usize,
    /// A close is queued: no more data is accepted.
    closing: bool,
    /// The driver has ended: nothing is accepted.
    finished: bool,
    /// Messages the slow-client policy discarded (`WsConn::dropped`);
    /// saturates. A `u32` to fit in the struct's padding.
    dropped: u32,
}

/// What became of a pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued in an empty queue (the driver must be woken).
    Queued,
    /// Queued behind other items: the driver, which takes items until the
    /// queue is empty or comes back for the rest, needs no wake-up.
    QueuedBehind,
    /// Queued after dropping this many old messages (`DropOldest`).
    QueuedDropping(usize),
    /// Not queued: the queue was full (`DropNewest`).
    Dropped,
    /// Not queued: the queue was full and the connection is now closing
    /// with this code (`Close`); the driver must be woken.
    Closing(CloseCode),
    /// Not queued: the connection is closed or closing.
    Closed,
}

impl Pushed {
    /// The slow-client action this outcome reports, if any.
    pub(crate) fn slow_action(self) -> Option<SlowAction> {
        match self {
            Pushed::QueuedDropping(n) => Some(SlowAction::Dropped(n)),
            Pushed::Dropped => Some(SlowAction::Dropped(1)),
            Pushed::Closing(code) => Some(SlowAction::Closed(code)),
            Pushed::Queued | Pushed::QueuedBehind | Pushed::Closed => None,
        }
    }

    /// Whether the driver has something new to do.
    pub(crate) fn wakes(self) -> bool {
        matches!(self, Pushed::Queued | Pushed::QueuedDropping(_) | Pushed::Closing(_))
    }
}

/// Limits of one host's queues.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) bytes: usize,
    pub(crate) messages: usize,
    pub(crate) policy: SlowPolicy,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox { queue: VecDeque::new(), bytes: 0, closing: false, finished: false, dropped: 0 }
    }

    /// Queues a data item under `limits`.
    pub(crate) fn push(&mut self, out: Out, limits: &Limits) -> Pushed {
        if self.closing || self.finished {
            return Pushed::Closed;
        }
        let size = out.size();
        // An empty queue takes any one message: the limits bound what waits
        // behind it (see the module docs), so no message is refused for its
        // size alone.
        let fits = |q: &Outbox| {
            q.queue.is_empty() || (q.queue.len() < limits.messages && q.bytes + size <= limits.bytes)
        };
        if fits(self) {
            let was_empty = self.queue.is_empty();
            self.enqueue(out, size);
            return if was_empty { Pushed::Queued } else { Pushed::QueuedBehind };
        }
        match limits.policy {
            SlowPolicy::DropNewest => {
                self.count_dropped(1);
                Pushed::Dropped
            }
            // Ends at the latest with the queue empty, which takes anything.
            SlowPolicy::DropOldest => {
                let mut dropped = 0;
                while !self.queue.is_empty() && !fits(self) {
                    if let Some(old) = self.queue.pop_front() {
                        self.bytes -= old.size();
                        dropped += 1;
                    }
                }
                self.enqueue(out, size);
                self.count_dropped(dropped);
                Pushed::QueuedDropping(dropped)
            }
            SlowPolicy::Close(code) => {
                self.queue.clear();
                self.bytes = 0;
                self.closing = true;
                self.queue.push_back(Out::Close(code, "slow consumer".into()));
                Pushed::Closing(code)
            }
        }
    }

    fn count_dropped(&mut self, n: usize) {
        self.dropped = self.dropped.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Messages the slow-client policy discarded so far.
    pub(crate) fn dropped(&self) -> u64 {
        u64::from(self.dropped)
    }

    /// Queues a close after what is already queued (a graceful close).
    /// `false` if already closing or finished.
    pub(crate) fn push_close(&mut self, code: CloseCode, reason: String) -> bool {
        if self.closing || self.finished {
            return false;
        }
        self.closing = true;
        self.queue.push_back(Out::Close(code, reason));
        true
    }

    fn enqueue(&mut self, out: Out, size: usize) {
        if self.queue.capacity() == 0 {
            // The queue is freed whenever the driver empties it (an idle
            // connection holds none), so every burst starts here: room for
            // a burst of broadcasts at once (16 items) instead of
            // growing 4, 8, 16 (three allocations and two copies).
            self.queue.reserve_exact(FIRST_CAPACITY);
        }
        self.bytes += size;
        self.queue.push_back(out);
    }

    /// Takes items totalling about `room` bytes into `into` (empty): at
    /// least one when `room` is not zero (a large message must make
    /// progress), and a close whatever the room (the closing handshake and
    /// its timer must start even when the client reads nothing).
    ///
    /// When everything queued fits (the usual burst of broadcasts), the
    /// queue is swapped with `into` instead of moved item by item: the two
    /// keep their capacities, and the driver hands its emptied one back
    /// on the next call.
    pub(crate) fn take(&mut self, room: usize, into: &mut VecDeque<Out>) {
        debug_assert!(into.is_empty());
        if self.bytes <= room {
            // The loop below would take every item too.
            std::mem::swap(&mut self.queue, into);
            self.bytes = 0;
            return;
        }
        let mut taken = 0;
        while let Some(front) = self.queue.front() {
            let size = front.size();
            let is_close = matches!(front, Out::Close(..));
            if !is_close && taken + size > room && (taken > 0 || room == 0) {
                break;
            }
            taken += size;
            self.bytes -= size;
            into.extend(self.queue.pop_front());
        }
    }

    /// Frees the queue's capacity if nothing waits (the connection is
    /// idle).
    pub(crate) fn release_if_empty(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// `(bytes, messages)` waiting.
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.bytes, self.queue.len())
    }

    /// The driver ended: refuse everything and free the queue.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.queue = VecDeque::new();
        self.bytes = 0;
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing || self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Out {
        Out::Message(Message::binary(vec![0u8; n]))
    }

    fn limits(policy: SlowPolicy) -> Limits {
        Limits { bytes: 100, messages: 3, policy }
    }

    #[test]
    fn drop_newest_keeps_the_queue() {
        let mut q = Outbox::new();
        let l = limits(SlowPolicy::DropNewest);
        assert_eq!(q.push(msg(10), &l), Pushed::Queued);
        for _ in 0..2 {
            assert_eq!(q.push(msg(10), &l), Pushed::QueuedBehind);
        }
        assert_eq!(q.push(msg(10), &l), Pushed::Dropped);
        assert_eq!(q.len(), (30, 3));
    }

    #[test]
    fn drop_oldest_makes_room_by_bytes_and_count() {
        let mut q = Outbox::new();
        let l = limits(SlowPolicy::DropOldest);
        q.push(msg(40), &l);
        q.push(msg(40), &l);
        assert_eq!(q.push(msg(50), &l), Pushed::QueuedDropping(1));
        assert_eq!(q.len(), (90, 2));
        assert_eq!(q.push(msg(1), &l), Pushed::QueuedBehind);
        assert_eq!(q.push(msg(1), &l), Pushed::QueuedDropping(1));
        assert_eq!(q.len(), (52, 3));
        // Larger than the whole queue: everything older goes, and it waits
        // alone (an empty queue takes any one message).
        assert_eq!(q.push(msg(500), &l), Pushed::QueuedDropping(3));
        assert_eq!(q.len(), (500, 1));
    }

    #[test]
    fn regression_message_larger_than_queue_limit_is_queued_alone() {
        // BUG: an echo host accepting 16 MiB messages closed with 1008 on
        // every one larger than `max_queued_bytes` (Autobahn 9.1.4-9.4.x).
        for policy in [SlowPolicy::DropNewest, SlowPolicy::DropOldest, SlowPolicy::Close(CloseCode::POLICY_VIOLATION)] {
            let mut q = Outbox::new();
            let l = limits(policy);
            assert_eq!(q.push(msg(1000), &l), Pushed::Queued, "{policy:?}");
            assert_eq!(q.len(), (1000, 1));
            // Nothing waits behind it: the limit holds for what comes next.
            let next = q.push(msg(1), &l);
            assert!(next.slow_action().is_some(), "{policy:?}: {next:?}");
            assert!(q.len().0 <= 1000, "{policy:?}");
            // Once the driver took it, the next large one is queued again.
            let mut out = VecDeque::new();
            q.take(10, &mut out);
            if !q.is_closing() {
                assert!(q.is_empty(), "{policy:?}");
                assert_eq!(q.push(msg(1000), &l), Pushed::Queued, "{policy:?}");
            }
        }
    }

    #[test]
    fn close_policy_discards_and_refuses_more() {
        let mut q = Outbox::new();
        let l = limits(SlowPolicy::Close(CloseCode::TRY_AGAIN_LATER));
        q.push(msg(60), &l);
        assert_eq!(q.push(msg(60), &l), Pushed::Closing(CloseCode::TRY_AGAIN_LATER));
        assert_eq!(q.len(), (0, 1));
        assert_eq!(q.push(msg(1), &l), Pushed::Closed);
        assert!(!q.push_close(CloseCode::NORMAL, String::new()));
    }

    #[test]
    fn take_respects_room_but_always_moves_one() {
        let mut q = Outbox::new();
        let l = Limits { bytes: 1 << 20, messages: 100, policy: SlowPolicy::DropNewest };
        for _ in 0..4 {
            q.push(msg(1000), &l);
        }
        let mut out = VecDeque::new();
        q.take(10, &mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        q.take(2500, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(q.len(), (1000, 1));
        out.clear();
        q.take(0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_burst_into_an_empty_queue_allocates_once() {
        let mut q = Outbox::new();
        let l = Limits { bytes: 1 << 20, messages: 100, policy: SlowPolicy::DropNewest };
        q.push(msg(1), &l);
        let cap = q.queue.capacity();
        assert!(cap >= FIRST_CAPACITY, "{cap}");
        for _ in 1..FIRST_CAPACITY {
            q.push(msg(1), &l);
        }
        assert_eq!(q.queue.capacity(), cap, "no growth within the first burst");
    }

    #[test]
    fn drops_are_counted_in_the_padding() {
        let mut q = Outbox::new();
        let l = limits(SlowPolicy::DropNewest);
        for _ in 0..5 {
            q.push(msg(10), &l);
        }
        assert_eq!(q.dropped(), 2);
        let l = limits(SlowPolicy::DropOldest);
        q.push(msg(95), &l);
        assert_eq!(q.dropped(), 5);
        // The counter costs no room (a connection's state is per idle
        // connection).
        assert_eq!(std::mem::size_of::<Outbox>(), std::mem::size_of::<VecDeque<Out>>() + 16);
    }

    #[test]
    fn a_queued_item_stays_small() {
        // Every queued broadcast is one item per subscriber, moved into the
        // driver's batch: the shared frame is behind an `Arc` (it was 72
        // bytes inline), so an item is no larger than a message.
        assert!(std::mem::size_of::<Out>() <= std::mem::size_of::<Message>() + 8, "{}", std::mem::size_of::<Out>());
    }

    #[test]
    fn take_of_everything_keeps_order_and_empties_the_queue() {
        let mut q = Outbox::new();
        let l = Limits { bytes: 1 << 20, messages: 100, policy: SlowPolicy::DropNewest };
        for n in 1..=3 {
            q.push(msg(n), &l);
        }
        q.push_close(CloseCode::NORMAL, String::new());
        let mut out = VecDeque::new();
        q.take(6, &mut out);
        let sizes: Vec<usize> = out.iter().map(Out::size).collect();
        assert_eq!(sizes, [1, 2, 3, 0]);
        assert!(matches!(out.back(), Some(Out::Close(..))));
        assert!(q.is_empty());
        assert_eq!(q.len(), (0, 0));
        // Closing: nothing more; a fresh queue wakes its driver again.
        assert_eq!(q.push(msg(1), &l), Pushed::Closed);
        let mut q = Outbox::new();
        q.push(msg(5), &l);
        out.clear();
        q.take(5, &mut out);
        assert_eq!(q.push(msg(5), &l), Pushed::Queued);
    }

    #[test]
    fn regression_close_taken_when_the_socket_is_full() {
        // The close policy queued a close while the protocol's output was
        // at its high-water mark: it must still be taken, or the closing
        // handshake (and its timer) never starts and the connection stays.
        let mut q = Outbox::new();
        let l = Limits { bytes: 10, messages: 100, policy: SlowPolicy::Close(CloseCode::POLICY_VIOLATION) };
        q.push(msg(8), &l);
        assert_eq!(q.push(msg(8), &l), Pushed::Closing(CloseCode::POLICY_VIOLATION));
        let mut out = VecDeque::new();
        q.take(0, &mut out);
        assert!(matches!(out.make_contiguous(), [Out::Close(..)]));
    }
}
