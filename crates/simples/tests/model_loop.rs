//! A shuttle model of how a framework connection on an event loop is woken
//! (`src/ws/looped.rs`), explored over many thread interleavings: the
//! loop's side of what `model_signal.rs` checks for the tokio task.
//!
//! Senders on other threads push into the connection's outbox under its
//! mutex and, when the push found it empty, call `Signal::notify`, whose
//! fixed waker (`Signal::fixed`, made when the connection joins its loop)
//! is the connection's `ConnWake`: unless the connection is already
//! listed (`queued`), it goes on its lane's ready list and the loop is
//! woken (`Handle::wake`: a coalesced flag, then the loop's eventfd). The
//! loop steps a connection once when it adopts it (`open`, which may
//! already race with senders), then, woken, takes the ready list
//! (`on_wake`) and steps each connection:
//! `queued` cleared first, then the signal taken, and a bounded batch
//! pumped from the outbox; a batch that
//! leaves a backlog comes back through `on_drained` (modelled as the loop
//! listing the connection again itself).
//!
//! The model restates those steps with shuttle's primitives (the eventfd
//! and `epoll_wait` as a flag under a mutex with a condition variable). A
//! lost wake-up leaves the loop waiting with messages in the outbox and
//! every sender done: shuttle reports a deadlock. The `mutant_*` tests
//! clear `queued` after the pump instead of before, or take the signal
//! after the pump instead of before, and check that the model catches the
//! lost wake-up. `source_still_matches_the_model`
//! fails when the sources no longer contain the lines modelled here.

#[path = "common/restated.rs"]
mod restated;
use restated::restated;

use shuttle::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use shuttle::sync::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Wake, Waker};

const SET: u8 = 1;
/// Messages the loop moves from the outbox per step (`pump`'s bound).
const BATCH: usize = 2;

/// What the model may get wrong (the mutants).
#[derive(Clone, Copy)]
struct Variant {
    /// `step` clears `queued` before it looks at the outbox.
    clear_queued_first: bool,
    /// `step` takes the signal before it pumps.
    take_then_pump: bool,
}

const SOUND: Variant = Variant {
    clear_queued_first: true,
    take_then_pump: true,
};

/// `Signal::fixed` (the notified bit and the connection's waker; the
/// running bit belongs to handlers, which `model_signal.rs` covers).
struct Signal {
    state: AtomicU8,
    waker: Waker,
}

impl Signal {
    fn notify(&self) {
        if self.state.fetch_or(SET, Ordering::AcqRel) == 0 {
            self.waker.wake_by_ref();
        }
    }

    fn take(&self) -> bool {
        self.state.fetch_and(!SET, Ordering::AcqRel) & SET != 0
    }
}

/// The loop's `Handle` (`woken`, then the eventfd) and the lane's ready
/// list.
struct Lane {
    ready: Mutex<Vec<usize>>,
    woken: AtomicBool,
    eventfd: Mutex<bool>,
    readable: Condvar,
}

impl Lane {
    /// `Handle::wake`.
    fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            *self.eventfd.lock().unwrap() = true;
            self.readable.notify_one();
        }
    }
}

/// `Signal::list` with the signal's `queued` flag, and the lane's
/// `Lister::list` (a separate `ConnWake` allocation until 2026-12-05).
struct ConnWake {
    lane: Arc<Lane>,
    id: usize,
    queued: AtomicBool,
}

impl Wake for ConnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.lane.ready.lock().unwrap().push(self.id);
            self.lane.wake();
        }
    }
}

/// One connection: its outbox and signal.
struct Conn {
    outbox: Mutex<VecDeque<u32>>,
    signal: Signal,
}

impl Conn {
    /// `WsConn::send`: push, and notify when the outbox was empty
    /// (`Pushed::wakes`).
    fn send(&self, m: u32) {
        let was_empty = {
            let mut q = self.outbox.lock().unwrap();
            let was_empty = q.is_empty();
            q.push_back(m);
            was_empty
        };
        if was_empty {
            self.signal.notify();
        }
    }
}

/// `conns` connections, `senders` threads each sending `each` messages to
/// every connection; the loop runs until it has moved every message.
fn run(conns: usize, senders: usize, each: u32, variant: Variant) {
    let lane = Arc::new(Lane {
        ready: Mutex::new(Vec::new()),
        woken: AtomicBool::new(false),
        eventfd: Mutex::new(false),
        readable: Condvar::new(),
    });
    let wakes: Vec<Arc<ConnWake>> = (0..conns)
        .map(|id| {
            Arc::new(ConnWake {
                lane: lane.clone(),
                id,
                queued: AtomicBool::new(false),
            })
        })
        .collect();
    let all: Arc<Vec<Conn>> = Arc::new(
        wakes
            .iter()
            .map(|wake| Conn {
                outbox: Mutex::new(VecDeque::new()),
                signal: Signal {
                    state: AtomicU8::new(0),
                    waker: Waker::from(wake.clone()),
                },
            })
            .collect(),
    );
    let total = conns * senders * each as usize;
    let mut threads = Vec::new();
    for s in 0..senders {
        let all = all.clone();
        threads.push(shuttle::thread::spawn(move || {
            for i in 0..each {
                for conn in all.iter() {
                    conn.send(s as u32 * 1000 + i);
                }
            }
        }));
    }
    // The loop thread (this one).
    let mut moved = vec![Vec::new(); conns];
    let mut done = 0;
    // `open` steps the connection once, registered with its host (so
    // reachable by senders) just before.
    let mut again: Vec<usize> = (0..conns).collect();
    while done < total {
        if again.is_empty() {
            // `epoll_wait`, then `on_wake` if the coalesced flag is set.
            let mut readable = lane.eventfd.lock().unwrap();
            while !*readable {
                readable = lane.readable.wait(readable).unwrap();
            }
            *readable = false;
        }
        let mut ready = std::mem::take(&mut again);
        if lane.woken.load(Ordering::Acquire) && lane.woken.swap(false, Ordering::AcqRel) {
            ready.append(&mut lane.ready.lock().unwrap());
        }
        for id in ready {
            let (conn, wake) = (&all[id], &wakes[id]);
            if variant.clear_queued_first {
                wake.queued.store(false, Ordering::Release);
            }
            if variant.take_then_pump {
                conn.signal.take();
            }
            // `pump`: a bounded batch; a backlog comes back (`on_drained`).
            let backlog = {
                let mut q = conn.outbox.lock().unwrap();
                for _ in 0..BATCH.min(q.len()) {
                    moved[id].push(q.pop_front().unwrap());
                    done += 1;
                }
                !q.is_empty()
            };
            if !variant.take_then_pump {
                conn.signal.take();
            }
            if !variant.clear_queued_first {
                wake.queued.store(false, Ordering::Release);
            }
            if backlog {
                again.push(id);
            }
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    // Every message moved once, each sender's in its order.
    for m in &moved {
        assert_eq!(m.len(), senders * each as usize);
        for s in 0..senders as u32 {
            let mine: Vec<u32> = m.iter().copied().filter(|v| v / 1000 == s).collect();
            assert_eq!(mine, (0..each).map(|i| s * 1000 + i).collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_connection_on_a_loop_loses_no_wake_up() {
    shuttle::check_random(|| run(1, 1, 3, SOUND), 2000);
    shuttle::check_pct(|| run(1, 2, 3, SOUND), 2000, 3);
    shuttle::check_random(|| run(2, 2, 2, SOUND), 2000);
}

#[test]
#[should_panic(expected = "deadlock")]
fn mutant_queued_cleared_after_the_pump_is_caught() {
    // A send between the pump and the clearing finds the connection still
    // listed: nobody lists it again.
    shuttle::check_random_with_seed(
        || {
            run(
                1,
                1,
                3,
                Variant {
                    clear_queued_first: false,
                    take_then_pump: true,
                },
            )
        },
        1,
        5000,
    );
}

#[test]
#[should_panic(expected = "deadlock")]
fn mutant_signal_taken_after_the_pump_is_caught() {
    // A send between the pump and the take finds the bit still set and
    // wakes nobody; the take then clears it, and the message waits with
    // the connection listed nowhere.
    shuttle::check_random_with_seed(
        || {
            run(
                1,
                1,
                3,
                Variant {
                    clear_queued_first: true,
                    take_then_pump: false,
                },
            )
        },
        1,
        5000,
    );
}

/// The lines of the sources this model restates; if one changed, revisit
/// the model.
#[test]
fn source_still_matches_the_model() {
    let looped = restated(
        "looped.rs",
        include_str!("../src/ws/looped.rs"),
        &[
            // ConnWake: the lane's `Lister` (the signal's part is checked below)
            "fn list(&self, id: ConnId) { lock(&self.ready).push(id); self.handle.wake(); }",
            // on_wake
            "self.ready.extend(lock(&self.lane.ready).drain(..)); let mut ready = std::mem::take(&mut self.ready); for id in ready.drain(..) { self.step(ctx, id); }",
            // open: registered, then stepped at once
            "host.register(&conn);",
            "paused: false, rare }); self.step(ctx, id); }",
            // on_drained
            "fn on_drained(&mut self, ctx: &mut Ctx<'_>, id: ConnId) { self.step(ctx, id);",
            // step: queued cleared first ...
            "// A wake-up from now on lists the connection again. entry.conn.inner.wake.unlist();",
            // ... then take, pump.
            "// `Signal::list`), and what they announce is pumped below. conn.inner.wake.take();",
            // the signal lists on the lane, and the handlers' waker is the
            // connection, which lists the same way
            "Signal::fixed(self.lister.clone(), self.lane.number, id)",
            "impl Wake for ConnInner { fn wake(self: Arc<Self>) { self.wake.list(); } fn wake_by_ref(self: &Arc<Self>) { self.wake.list(); } }",
            "if backlog { ctx.notify_drained(id); }",
        ],
    );
    let queued = looped.find("entry.conn.inner.wake.unlist();").unwrap();
    let take = looped.find("conn.inner.wake.take();").unwrap();
    let pump = looped.find("let backlog = pump(").unwrap();
    assert!(queued < take && take < pump, "step's order changed");
    restated(
        "signal.rs",
        include_str!("../src/ws/signal.rs"),
        &[
            // ConnWake's flag, now the signal's
            "if !self.queued.swap(true, Ordering::AcqRel) { lister.list(*id); }",
            "pub(crate) fn unlist(&self) { self.queued.store(false, Ordering::Release); }",
            "if self.state.fetch_or(SET, Ordering::AcqRel) == 0 { match &self.target { Target::Task(w) => w.wake(), Target::Fixed(..) => self.list(), } }",
        ],
    );
    restated(
        "event_loop/server.rs",
        include_str!("../../simples-ws/src/event_loop/server.rs"),
        &[
            "if !self.woken.swap(true, Ordering::AcqRel) { let _ = self.waker.wake(); }",
            "if handle.woken.load(Ordering::Acquire) && handle.woken.swap(false, Ordering::AcqRel) {",
        ],
    );
    restated("conn.rs", include_str!("../src/ws/conn.rs"), &["if pushed.wakes() { self.inner.wake.notify(); }"]);
}
