//! A shuttle model of the outbox's wake-up signal (`src/ws/signal.rs`) and
//! of how the connection's task uses it (`src/ws/driver.rs`), explored over
//! many thread interleavings.
//!
//! Broadcasters push into a connection's outbox under its mutex and call
//! `Signal::notify` when the push found the outbox empty
//! (`Pushed::wakes`); the connection's task takes the notification, moves a
//! bounded batch from the outbox into the protocol (`pump`), then waits in
//! one `select`: on `Signal::wait`, on its running handler, and (with a
//! backlog) on the socket draining. Its handler sends too (`conn.send`, a
//! push into its own outbox), polled inside `Signal::running`: that push
//! sets the signal's bit without waking the task, and `running` reports
//! the bit, so the task pumps right after a handler that finished, and
//! wakes itself after one that sent and still waits.
//!
//! `Signal` is one atomic state (the notified bit, the running bit) and an
//! `AtomicWaker`; the model restates it with shuttle's atomics, the
//! `AtomicWaker` being a waker slot (register replaces, wake takes and
//! wakes), which is its contract.
//!
//! A lost wake-up leaves the task waiting with messages in the outbox and
//! every pusher done: shuttle reports a deadlock. The `mutant_*` tests
//! drop the second look in `wait`, or the self-wake after a handler that
//! sent and still waits, and check that the model catches the lost
//! wake-up. `source_still_matches_the_model` fails when the sources no
//! longer contain the lines modelled here.

use shuttle::future::{block_on, spawn};
use shuttle::sync::atomic::{AtomicU8, Ordering};
use shuttle::sync::Mutex;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const SET: u8 = 1;
const RUNNING: u8 = 2;

/// What the model may leave out (the mutants).
#[derive(Clone, Copy)]
struct Variant {
    second_look: bool,
    self_wake: bool,
}

const SOUND: Variant = Variant { second_look: true, self_wake: true };

/// `Signal`.
struct Signal {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
    variant: Variant,
}

impl Signal {
    fn notify(&self) {
        if self.state.fetch_or(SET, Ordering::AcqRel) == 0 {
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    fn take(&self) -> bool {
        self.state.fetch_and(!SET, Ordering::AcqRel) & SET != 0
    }

    fn running<T>(&self, poll: impl FnOnce() -> T) -> (T, bool) {
        self.state.fetch_or(RUNNING, Ordering::AcqRel);
        let result = poll();
        let notified = self.state.fetch_and(!RUNNING, Ordering::AcqRel) & SET != 0;
        (result, notified)
    }

    /// One poll of `wait`.
    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.variant.second_look && self.take() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// One connection: its outbox (items waiting) and its signal.
struct Conn {
    outbox: Mutex<Vec<u32>>,
    wake: Signal,
}

/// `WsConn::push`: queue under the lock, wake when the outbox was empty.
fn push(conn: &Conn, item: u32) {
    let was_empty = {
        let mut q = conn.outbox.lock().unwrap();
        let was_empty = q.is_empty();
        q.push(item);
        was_empty
    };
    if was_empty {
        conn.wake.notify();
    }
}

/// The connection's own handler for one received message: sends `item`
/// at its first poll, then finishes, or (`forever`) waits for something
/// that never comes (a request's answer) until the connection ends.
struct Handler {
    item: u32,
    sent: bool,
    forever: bool,
}

impl Handler {
    fn poll(&mut self, conn: &Conn) -> Poll<()> {
        if !self.sent {
            self.sent = true;
            push(conn, self.item);
        }
        if self.forever {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

/// The connection's task: take the notification, `pump` at most `batch`
/// items, start the handler of the next received message (`own` of them,
/// the last one never finishing), then select over the signal, the
/// handler (polled inside `running`) and the socket (ready at once with a
/// backlog), until `total` items went through.
async fn driver(conn: Arc<Conn>, batch: usize, total: usize, own: u32) -> Vec<u32> {
    let mut got = Vec::new();
    let mut handler: Option<Handler> = None;
    let mut received = 0;
    loop {
        conn.wake.take();
        let backlog = {
            let mut q = conn.outbox.lock().unwrap();
            let n = q.len().min(batch);
            got.extend(q.drain(..n));
            !q.is_empty()
        };
        if got.len() == total {
            return got;
        }
        if handler.is_none() && received < own {
            handler = Some(Handler { item: 1000 + received, sent: false, forever: received + 1 == own });
            received += 1;
        }
        poll_fn(|cx| {
            if conn.wake.poll_wait(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some(h) = handler.as_mut() {
                let (poll, notified) = conn.wake.running(|| h.poll(&conn));
                if notified && poll.is_pending() && conn.wake.variant.self_wake {
                    cx.waker().wake_by_ref();
                }
                if poll.is_ready() {
                    handler = None;
                    return Poll::Ready(());
                }
            }
            if backlog {
                return Poll::Ready(()); // `Drive::Writable`: the socket drained
            }
            Poll::Pending
        })
        .await;
    }
}

fn run(pushers: u32, each: u32, own: u32, batch: usize, variant: Variant) {
    let conn = Arc::new(Conn {
        outbox: Mutex::new(Vec::new()),
        wake: Signal { state: AtomicU8::new(0), waker: Mutex::new(None), variant },
    });
    let total = (pushers * each + own) as usize;
    let got = block_on(async {
        let d = spawn(driver(conn.clone(), batch, total, own));
        for p in 0..pushers {
            let conn = conn.clone();
            spawn(async move {
                for i in 0..each {
                    push(&conn, p * 100 + i);
                }
            });
        }
        d.await.unwrap()
    });
    // Every message arrived once, each sender's in its order.
    assert_eq!(got.len(), total);
    for p in 0..pushers {
        let mine: Vec<u32> = got.iter().copied().filter(|x| x / 100 == p).collect();
        assert_eq!(mine, (0..each).map(|i| p * 100 + i).collect::<Vec<_>>());
    }
    let mine: Vec<u32> = got.iter().copied().filter(|x| *x >= 1000).collect();
    assert_eq!(mine, (0..own).map(|i| 1000 + i).collect::<Vec<_>>());
}

// Each run explores one interleaving: PCT (probabilistic concurrency
// testing) and random scheduling, a few thousand runs each.

#[test]
fn outbox_signal_loses_no_wake_up_for_one_pusher() {
    shuttle::check_pct(|| run(1, 3, 0, 1, SOUND), 2000, 3);
    shuttle::check_random(|| run(1, 3, 0, 2, SOUND), 2000);
}

#[test]
fn outbox_signal_loses_no_wake_up_with_three_pushers() {
    shuttle::check_pct(|| run(3, 2, 0, 2, SOUND), 2000, 3);
    shuttle::check_random(|| run(3, 3, 0, 1, SOUND), 2000);
}

#[test]
fn handler_sends_lose_no_wake_up_alone_or_beside_pushers() {
    // Alone: one task, nothing to interleave (PCT refuses that).
    shuttle::check_random(|| run(0, 0, 3, 1, SOUND), 10);
    shuttle::check_pct(|| run(1, 3, 2, 1, SOUND), 2000, 3);
    shuttle::check_random(|| run(2, 2, 3, 2, SOUND), 2000);
}

#[test]
#[should_panic(expected = "deadlock")]
fn mutant_wait_without_second_look_is_caught() {
    // Fixed seeds for the mutants: random schedules may miss them (the
    // same model of `split.rs` did once).
    shuttle::check_random_with_seed(|| run(1, 2, 0, 1, Variant { second_look: false, self_wake: true }), 1, 5000);
}

#[test]
#[should_panic(expected = "deadlock")]
fn mutant_no_self_wake_after_a_handler_that_sent_and_waits_is_caught() {
    // Its send set the bit without waking the task: nobody else will.
    shuttle::check_random_with_seed(|| run(0, 0, 1, 1, Variant { second_look: true, self_wake: false }), 1, 100);
}

/// The lines of the sources this model restates; if one changed, revisit
/// the model.
#[test]
fn source_still_matches_the_model() {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let signal = norm(include_str!("../src/ws/signal.rs"));
    for line in [
        "if self.state.fetch_or(SET, Ordering::AcqRel) == 0 { match &self.target { Target::Task(w) => w.wake(),",
        "self.state.fetch_and(!SET, Ordering::AcqRel) & SET != 0",
        "self.state.fetch_or(RUNNING, Ordering::AcqRel); let result = poll(); let notified = self.state.fetch_and(!RUNNING, Ordering::AcqRel) & SET != 0;",
        "if self.take() { return Poll::Ready(()); } waker.register(cx.waker()); // A notify between the check and the registration. if self.take() { return Poll::Ready(()); } Poll::Pending",
    ] {
        assert!(signal.contains(line), "signal.rs no longer contains: {line}");
    }
    let driver = norm(include_str!("../src/ws/driver.rs"));
    let line = "conn.inner.wake.take(); if host.force.load(Ordering::SeqCst) != generation { break None; } let backlog = pump_into(";
    assert!(driver.contains(line), "driver.rs no longer contains: {line}");
    let jobs = norm(include_str!("../src/ws/jobs.rs"));
    let line = "let (poll, notified) = this.wake.running(|| Pin::new(task).poll(cx)); if notified && poll.is_pending() { cx.waker().wake_by_ref(); }";
    assert!(jobs.contains(line), "jobs.rs no longer contains: {line}");
    let outbox = norm(include_str!("../src/ws/outbox.rs"));
    assert!(outbox.contains("let was_empty = self.queue.is_empty();"), "outbox.rs: the wake-up on a push into an empty outbox");
    assert!(outbox.contains("matches!(self, Pushed::Queued | Pushed::QueuedDropping(_) | Pushed::Closing(_))"));
    let conn = norm(include_str!("../src/ws/conn.rs"));
    assert!(conn.contains("if pushed.wakes() { self.inner.wake.notify(); }"), "conn.rs: push wakes the task");
}
