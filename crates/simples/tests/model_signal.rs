//! A shuttle model of the outbox's wake-up signal (`src/ws/signal.rs`) and
//! of how the connection's task uses it (`src/ws/driver.rs`), explored over
//! many thread interleavings.
//!
//! Broadcasters push into a connection's outbox under its mutex and call
//! `Signal::notify` when the push found the outbox empty
//! (`Pushed::wakes`); the connection's task moves a bounded batch from the
//! outbox into the protocol (`pump`), then waits on `Signal::wait` only if
//! the outbox is empty (with a backlog it comes back when the socket drained
//! instead). `Signal` is a flag and an `AtomicWaker`: `notify` sets the flag
//! and wakes if it was clear; `wait` clears the flag or registers its waker
//! and looks at the flag once more. The model restates that with shuttle's
//! atomics; the `AtomicWaker` is a waker slot (register replaces, wake takes
//! and wakes), which is its contract.
//!
//! A lost wake-up leaves the task waiting with messages in the outbox and
//! every pusher done: shuttle reports a deadlock. The `mutant_*` test drops
//! the second look in `wait` and checks that the model catches the lost
//! wake-up. `source_still_matches_the_model` fails when `signal.rs` no
//! longer contains the lines modelled here.

use shuttle::future::{block_on, spawn, yield_now};
use shuttle::sync::atomic::{AtomicBool, Ordering};
use shuttle::sync::Mutex;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// `Signal`, with the second look optional (the mutant leaves it out).
struct Signal {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
    second_look: bool,
}

impl Signal {
    fn notify(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.second_look && self.set.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
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

/// The connection's task: `pump` at most `batch` items, then wait on the
/// signal when nothing is left (else come back after "writing"), until
/// `total` items went through.
async fn driver(conn: Arc<Conn>, batch: usize, total: usize) -> Vec<u32> {
    let mut got = Vec::new();
    while got.len() < total {
        let backlog = {
            let mut q = conn.outbox.lock().unwrap();
            let n = q.len().min(batch);
            got.extend(q.drain(..n));
            !q.is_empty()
        };
        if backlog {
            yield_now().await; // `Drive::Writable`: the socket drained
        } else if got.len() < total {
            conn.wake.wait().await;
        }
    }
    got
}

fn run(pushers: u32, each: u32, batch: usize, second_look: bool) {
    let conn = Arc::new(Conn {
        outbox: Mutex::new(Vec::new()),
        wake: Signal { set: AtomicBool::new(false), waker: Mutex::new(None), second_look },
    });
    let total = (pushers * each) as usize;
    let got = block_on(async {
        let d = spawn(driver(conn.clone(), batch, total));
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
    // Every message arrived once, each pusher's in its order.
    assert_eq!(got.len(), total);
    for p in 0..pushers {
        let mine: Vec<u32> = got.iter().copied().filter(|x| x / 100 == p).collect();
        assert_eq!(mine, (0..each).map(|i| p * 100 + i).collect::<Vec<_>>());
    }
}

// Each run explores one interleaving: PCT (probabilistic concurrency
// testing) and random scheduling, a few thousand runs each.

#[test]
fn outbox_signal_loses_no_wake_up_for_one_pusher() {
    shuttle::check_pct(|| run(1, 3, 1, true), 2000, 3);
    shuttle::check_random(|| run(1, 3, 2, true), 2000);
}

#[test]
fn outbox_signal_loses_no_wake_up_with_three_pushers() {
    shuttle::check_pct(|| run(3, 2, 2, true), 2000, 3);
    shuttle::check_random(|| run(3, 3, 1, true), 2000);
}

#[test]
#[should_panic(expected = "deadlock")]
fn mutant_wait_without_second_look_is_caught() {
    shuttle::check_random(|| run(1, 2, 1, false), 5000);
}

/// The lines of `signal.rs` and `conn.rs` this model restates; if one
/// changed, revisit the model.
#[test]
fn source_still_matches_the_model() {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let signal = norm(include_str!("../src/ws/signal.rs"));
    for line in [
        "if !self.set.swap(true, Ordering::AcqRel) { self.waker.wake(); }",
        "if self.set.swap(false, Ordering::AcqRel) { return Poll::Ready(()); } self.waker.register(cx.waker()); // A notify between the check and the registration. if self.set.swap(false, Ordering::AcqRel) { return Poll::Ready(()); } Poll::Pending",
    ] {
        assert!(signal.contains(line), "signal.rs no longer contains: {line}");
    }
    let outbox = norm(include_str!("../src/ws/outbox.rs"));
    assert!(outbox.contains("let was_empty = self.queue.is_empty();"), "outbox.rs: the wake-up on a push into an empty outbox");
    assert!(outbox.contains("matches!(self, Pushed::Queued | Pushed::QueuedDropping(_) | Pushed::Closing(_))"));
    let conn = norm(include_str!("../src/ws/conn.rs"));
    assert!(conn.contains("if pushed.wakes() { self.inner.wake.notify(); }"), "conn.rs: push wakes the task");
}
