//! The subscriber registry of the single-threaded tokio servers
//! (tokio-tungstenite, fastwebsockets): a slab of per-subscriber unbounded
//! channels, each with a byte budget of [`MAX_QUEUED`](crate::MAX_QUEUED).
//! The publisher never waits: past the budget a delivery is dropped and
//! counted; the subscriber's writer gives the budget back as it writes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use slab::Slab;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

struct Entry<M> {
    tx: UnboundedSender<M>,
    queued: Rc<Cell<usize>>,
}

/// Every subscriber of one server (one thread: `Rc`, `RefCell`).
pub struct Subscribers<M> {
    slab: RefCell<Slab<Entry<M>>>,
}

impl<M> Default for Subscribers<M> {
    fn default() -> Self {
        Subscribers { slab: RefCell::new(Slab::new()) }
    }
}

/// One subscriber's registration (removed on drop) and its queue's sender.
pub struct Subscription<M> {
    /// The subscriber's queue, for its own control frames.
    pub tx: UnboundedSender<M>,
    queued: Rc<Cell<usize>>,
    key: usize,
    registry: Rc<Subscribers<M>>,
}

impl<M> Subscribers<M> {
    /// Registers a subscriber; the receiver yields what is published to
    /// it, in order.
    pub fn subscribe(self: &Rc<Self>) -> (Subscription<M>, UnboundedReceiver<M>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Rc::new(Cell::new(0));
        let key = self.slab.borrow_mut().insert(Entry { tx: tx.clone(), queued: queued.clone() });
        (Subscription { tx, queued, key, registry: self.clone() }, rx)
    }

    /// Queues `make()` (a `len`-byte message) on every subscriber with room
    /// in its budget; counts a drop for each one without.
    pub fn publish(&self, len: usize, make: impl Fn() -> M) {
        for (_, sub) in self.slab.borrow().iter() {
            if sub.queued.get() >= crate::MAX_QUEUED {
                crate::count_drop();
                continue;
            }
            if sub.tx.send(make()).is_ok() {
                sub.queued.set(sub.queued.get() + len);
            }
        }
    }
}

impl<M> Subscription<M> {
    /// The subscriber's budget, for its writer (which may be another task).
    pub fn budget(&self) -> Budget {
        Budget(self.queued.clone())
    }
}

/// A subscriber's byte budget, as its writer sees it.
pub struct Budget(Rc<Cell<usize>>);

impl Budget {
    /// `bytes` of published messages were written: budget given back.
    pub fn written(&self, bytes: usize) {
        self.0.set(self.0.get() - bytes);
    }
}

impl<M> Drop for Subscription<M> {
    fn drop(&mut self) {
        self.registry.slab.borrow_mut().remove(self.key);
    }
}
