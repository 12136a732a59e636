//! [`Signal`]: wakes a connection's task, lock-free.
//!
//! One atomic state and an `AtomicWaker`: `notify` sets the `SET` bit and
//! wakes the task if the bit was clear and the task is not running its
//! handler; `wait` resolves once the bit is set, clearing it. A connection
//! on an event loop has a fixed waker instead ([`Signal::fixed`]).
//! Notifications while the task waits to run coalesce into one. Cheaper
//! than `tokio::sync::Notify`, whose waiter list takes a lock on every
//! wait.
//!
//! A handler's `conn.send` runs inside the connection's own task, which
//! looks at its outbox right after the handler anyway: waking it would
//! only poll it once more for nothing. So the task marks the time it
//! polls its handler ([`Signal::running`]); a notification meanwhile (from
//! the handler or from another thread) only sets the bit, and `running`
//! reports it, for the task to act on (see `driver.rs`). Both bits live in
//! one atomic, changed by read-modify-writes only, so that a notification
//! either sees the task running (and the task then sees its bit) or wakes
//! it: none is lost.
//!
//! A loop connection's signal also tells whether a broadcast made on its
//! loop's thread may write straight into its output (`direct.rs`): the
//! *direct* state, open only while its outbox is empty and its output
//! under `HIGH_WATER`, as its loop last saw them under the outbox's lock.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures_util::task::AtomicWaker;
use simples_ws::event_loop::ConnId;

/// Notified since the last `wait` or `take`.
const SET: u8 = 1;
/// The task is polling its handler: a notification needs no wake-up.
const RUNNING: u8 = 2;

/// The direct path is closed: the outbox may hold items (every lock of
/// the outbox closes it), or the output is full, or it is a task's signal.
const CLOSED: u8 = 0;
/// A broadcast on the loop's thread may take the direct path.
const OPEN: u8 = 1;
/// Broadcasts took it: their frames wait in the thread's list (more may
/// join them) until the loop writes them, and reopens the path if nothing
/// closed it meanwhile.
const TAKEN: u8 = 2;

/// Where a loop connection's wake-ups list it: its loop's lane
/// (`looped.rs`), which this leaf cannot name.
pub(crate) trait Lister: Send + Sync {
    /// Lists `id` for its loop to step, and wakes the loop.
    fn list(&self, id: ConnId);
}

/// A loop's [`Lister`] behind a thin pointer: 8 bytes in each of its
/// connections' signals where an `Arc<dyn Lister>` took 16 (the loop makes
/// one and clones it; a listing goes through one more pointer).
#[allow(clippy::redundant_allocation)]
pub(crate) type SharedLister = Arc<Box<dyn Lister>>;

pub(crate) struct Signal {
    state: AtomicU8,
    /// `CLOSED`, `OPEN` or `TAKEN` (loop connections only).
    direct: AtomicU8,
    /// The connection is listed on its loop until the loop steps it (loop
    /// connections only): listed once however many wake-ups come.
    queued: AtomicBool,
    /// The number of the connection's loop (`direct::lane_number`); `0`
    /// for a task's.
    lane: u32,
    target: Target,
}

/// Who a notification wakes.
enum Target {
    /// A tokio task, registered by each [`Signal::wait`]; boxed: most
    /// connections are on a loop (8 B less for each).
    Task(Box<AtomicWaker>),
    /// A connection on an event loop: its loop's lane, the same for its
    /// whole life, so nothing is registered, taken or cloned per
    /// notification; and the connection's id on its loop. Its handlers'
    /// waker is the connection itself (`Wake for ConnInner`, in
    /// `looped.rs`), which lists it the same way: no allocation of its own.
    Fixed(SharedLister, ConnId),
}

impl Default for Signal {
    /// A task's signal.
    fn default() -> Signal {
        Signal {
            state: AtomicU8::new(0),
            direct: AtomicU8::new(CLOSED),
            queued: AtomicBool::new(false),
            lane: 0,
            target: Target::Task(Box::default()),
        }
    }
}

impl Signal {
    /// The signal of a connection on an event loop: every notification
    /// that finds the bit clear wakes `waker` (see `looped.rs`). [`wait`]
    /// is not for it: its loop calls [`take`] before it looks at the
    /// outbox.
    ///
    /// [`wait`]: Signal::wait
    /// [`take`]: Signal::take
    /// `lane`: the loop's number (not `0`); `id`: the connection's id
    /// there.
    pub(crate) fn fixed(lister: SharedLister, lane: u32, id: ConnId) -> Signal {
        Signal {
            state: AtomicU8::new(0),
            direct: AtomicU8::new(CLOSED),
            queued: AtomicBool::new(false),
            lane,
            target: Target::Fixed(lister, id),
        }
    }

    /// Lists a loop connection on its loop, once until the loop steps it
    /// ([`unlist`](Signal::unlist)): what its notifications and its
    /// handlers' waker do. Nothing for a task's signal.
    pub(crate) fn list(&self) {
        if let Target::Fixed(lister, id) = &self.target {
            if !self.queued.swap(true, Ordering::AcqRel) {
                lister.list(*id);
            }
        }
    }

    /// The connection's id on its loop (`None` for a task's signal).
    #[inline]
    pub(crate) fn loop_id(&self) -> Option<ConnId> {
        match &self.target {
            Target::Fixed(_, id) => Some(*id),
            Target::Task(_) => None,
        }
    }

    /// The loop steps the connection: a wake-up from now on lists it
    /// again.
    pub(crate) fn unlist(&self) {
        self.queued.store(false, Ordering::Release);
    }

    /// The loop saw the outbox empty and open, under its lock, and the
    /// output under `HIGH_WATER`: broadcasts on its thread may write
    /// straight into the output. Called with the outbox locked.
    pub(crate) fn open_direct(&self) {
        if self.lane != 0 {
            self.direct.store(OPEN, Ordering::Relaxed);
        }
    }

    /// Something may wait in the outbox, or the output is full: the
    /// direct path is closed until the loop pumps the outbox empty again.
    /// Called by every lock of the outbox (`ConnInner::outbox`), so a push
    /// closes it before it returns; and the loop, which reopens it only
    /// under that lock, cannot miss one. A plain store: every writer but
    /// the loop's thread only ever closes.
    pub(crate) fn close_direct(&self) {
        self.direct.store(CLOSED, Ordering::Relaxed);
    }

    /// A broadcast on the thread of loop `here` takes the direct path if
    /// the connection is that loop's and the path is open (`OPEN`: the
    /// first frame listed since the loop last wrote them; `TAKEN`: more),
    /// the path then `TAKEN`. Returns the connection's id on the loop and
    /// whether this is its first frame listed.
    ///
    /// `Relaxed` is enough: only this thread opens the path (under the
    /// outbox's lock), and a push that happened before this broadcast
    /// (through whatever synchronization made it so) closed the path
    /// before, which this load then sees (coherence). Taken with a
    /// compare-exchange, not a store: a push on another thread between a
    /// load of `OPEN` and a store of `TAKEN` would have its `CLOSED`
    /// overwritten, the loop would reopen the path over a non-empty
    /// outbox, and a later broadcast (made after that push) would be
    /// written before it (`model_direct`'s
    /// `mutant_a_plain_store_taking_the_path_is_caught`).
    pub(crate) fn take_direct(&self, here: u32) -> Option<(ConnId, bool)> {
        match &self.target {
            Target::Fixed(_, id) if self.lane == here => match self.direct.load(Ordering::Relaxed) {
                OPEN => self.direct.compare_exchange(OPEN, TAKEN, Ordering::Relaxed, Ordering::Relaxed).ok().map(|_| (*id, true)),
                TAKEN => Some((*id, false)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The loop wrote the listed frames: the path reopens unless a push
    /// (or anything else) closed it meanwhile.
    pub(crate) fn reopen_direct(&self) {
        let _ = self.direct.compare_exchange(TAKEN, OPEN, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Wakes the waiting task (or the next `wait`), unless the task is
    /// [`running`](Signal::running) its handler.
    pub(crate) fn notify(&self) {
        if self.state.fetch_or(SET, Ordering::AcqRel) == 0 {
            match &self.target {
                Target::Task(w) => w.wake(),
                Target::Fixed(..) => self.list(),
            }
        }
    }

    /// Clears the notification; `true` if there was one. The task calls it
    /// before it looks at what notifications announce (its outbox): one
    /// that comes later sets the bit again.
    pub(crate) fn take(&self) -> bool {
        self.state.fetch_and(!SET, Ordering::AcqRel) & SET != 0
    }

    /// Runs `poll` (the task polling its handler) marked as running: a
    /// notification meanwhile does not wake the task. Returns `poll`'s
    /// result and whether the bit is set at the end (a notification came
    /// meanwhile, or is still pending): the task must then look at its
    /// outbox before it waits (or wake itself).
    pub(crate) fn running<T>(&self, poll: impl FnOnce() -> T) -> (T, bool) {
        self.state.fetch_or(RUNNING, Ordering::AcqRel);
        let result = poll();
        let notified = self.state.fetch_and(!RUNNING, Ordering::AcqRel) & SET != 0;
        (result, notified)
    }

    /// Resolves once notified since the last `wait` resolved (or `take`).
    /// Cancel-safe. A task's signal only (see [`Signal::fixed`]).
    pub(crate) async fn wait(&self) {
        let Target::Task(waker) = &self.target else {
            unreachable!("a loop connection's signal is taken by its loop, never awaited");
        };
        poll_fn(|cx| {
            if self.take() {
                return Poll::Ready(());
            }
            waker.register(cx.waker());
            // A notify between the check and the registration.
            if self.take() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    /// A signal fits in 24 bytes (the task's waker boxed, the loop's
    /// lister a thin pointer; 40 and 32 before): part of every
    /// connection's `ConnInner`, counted per idle connection by
    /// `ws_memory_budget`.
    #[test]
    fn a_signal_is_three_words() {
        assert_eq!(std::mem::size_of::<Signal>(), 24);
    }

    #[tokio::test]
    async fn a_notify_before_or_while_waiting_is_never_lost() {
        let s = Arc::new(Signal::default());
        s.notify();
        s.notify();
        tokio::time::timeout(Duration::from_secs(1), s.wait()).await.expect("stored notification");
        // Coalesced: nothing left.
        assert!(tokio::time::timeout(Duration::from_millis(20), s.wait()).await.is_err());
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.wait().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.notify();
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("woken").unwrap();
    }

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_notify_while_running_wakes_nobody_and_is_reported() {
        let s = Signal::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut wait = Box::pin(s.wait());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        // The task's own handler sends: no wake-up, but the task learns it.
        let ((), notified) = s.running(|| s.notify());
        assert!(notified);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // The task takes it before it looks at its outbox.
        assert!(s.take());
        let ((), notified) = s.running(|| ());
        assert!(!notified);
        // Outside `running`, a notification wakes the task again.
        s.notify();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
