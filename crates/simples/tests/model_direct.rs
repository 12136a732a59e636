//! A shuttle model of the direct path of broadcasts (`src/ws/direct.rs`,
//! the state in `src/ws/signal.rs`), explored over many thread
//! interleavings: a broadcast made on a loop's thread writes its frame
//! straight into a connection's output while the connection's outbox is
//! empty, and the order every sender sees must stay the order of the
//! outbox.
//!
//! One connection on the loop. Another thread sends `X i` (a push into
//! the outbox, under its mutex) and then tells the loop's handler `i`
//! (through a mutex-guarded inbox: the synchronization that makes the
//! send happen before what the handler does next). The handler, on the
//! loop's thread, broadcasts `B i` (the direct path if open, taken with a
//! compare-exchange, else the outbox; more frames join a taken path) and
//! then sends `U i` itself (the outbox; and in a second run it sends
//! nothing, so that no push of its own closes the path after a
//! broadcast). At the end of the turn the loop writes the listed frames
//! (`before_writes`, reopening with a compare-exchange from `TAKEN`), and
//! every other turn it pumps the connection's outbox (every lock of the
//! outbox closes the path; the pump reopens it, under the lock, when it
//! ends empty).
//!
//! Checked, in the output: each stream in order, `X i` before `B i`
//! (happened before it), `B i` before `U i` and `U i` before `B i+1`
//! (the handler's order). The
//! `mutant_*` tests break one rule each (a lock that does not close the
//! path, the pump opening it after the unlock, the writer reopening with a
//! plain store, a broadcast taking the path with a plain store) and check
//! that the model catches the reordering.
//! `source_still_matches_the_model` fails when the sources no longer
//! contain the lines modelled here.

#[path = "common/restated.rs"]
mod restated;
use restated::restated;

use shuttle::sync::atomic::{AtomicU8, Ordering};
use shuttle::sync::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const TAKEN: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    X(u32),
    B(u32),
    U(u32),
}

/// What the model may get wrong (the mutants).
#[derive(Clone, Copy)]
struct Variant {
    /// Every lock of the outbox closes the path (`ConnInner::outbox`).
    close_on_lock: bool,
    /// The pump opens the path before it unlocks the outbox.
    open_under_lock: bool,
    /// The writer reopens with a compare-exchange from `TAKEN`.
    reopen_cas: bool,
    /// A broadcast takes an open path with a compare-exchange from `OPEN`.
    take_cas: bool,
}

const SOUND: Variant = Variant { close_on_lock: true, open_under_lock: true, reopen_cas: true, take_cas: true };

struct Conn {
    outbox: Mutex<VecDeque<Item>>,
    direct: AtomicU8,
    variant: Variant,
}

impl Conn {
    /// `ConnInner::outbox` and a push.
    fn push(&self, item: Item) {
        let mut q = self.outbox.lock().unwrap();
        if self.variant.close_on_lock {
            self.direct.store(CLOSED, Ordering::Relaxed);
        }
        q.push_back(item);
    }
}

fn run(each: u32, replies: bool, variant: Variant) {
    let conn = Arc::new(Conn { outbox: Mutex::new(VecDeque::new()), direct: AtomicU8::new(CLOSED), variant });
    let inbox: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (conn, inbox) = (conn.clone(), inbox.clone());
        shuttle::thread::spawn(move || {
            for i in 0..each {
                conn.push(Item::X(i));
                inbox.lock().unwrap().push(i);
            }
        })
    };
    // The loop thread (this one): its connection's output, and the
    // thread's list of frames taken on the direct path.
    let mut output: Vec<Item> = Vec::new();
    let mut listed: Vec<Item> = Vec::new();
    let mut handled = 0;
    let mut turn = 0;
    let items = if replies { 3 } else { 2 };
    while output.len() < items * each as usize {
        turn += 1;
        // The handler runs for each message it was told of this turn.
        let told: Vec<u32> = std::mem::take(&mut *inbox.lock().unwrap());
        for i in told {
            handled += 1;
            // `direct::offer` / `Signal::take_direct`, else the outbox.
            let taken = match conn.direct.load(Ordering::Relaxed) {
                OPEN if variant.take_cas => {
                    conn.direct.compare_exchange(OPEN, TAKEN, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                }
                OPEN => {
                    conn.direct.store(TAKEN, Ordering::Relaxed);
                    true
                }
                TAKEN => true,
                _ => false,
            };
            if taken {
                listed.push(Item::B(i));
            } else {
                conn.push(Item::B(i));
            }
            if replies {
                conn.push(Item::U(i));
            }
        }
        // `before_writes`: the listed frames, then the path reopened.
        if !listed.is_empty() {
            output.append(&mut listed);
            if variant.reopen_cas {
                let _ = conn.direct.compare_exchange(TAKEN, OPEN, Ordering::Relaxed, Ordering::Relaxed);
            } else {
                conn.direct.store(OPEN, Ordering::Relaxed);
            }
        }
        // The connection's own step (woken by the pushes: `model_loop.rs`
        // checks that no wake-up is lost) comes when it comes: here every
        // other turn, and after the listed frames are written (`step`
        // writes them first when the connection has some).
        if turn % 2 == 0 {
            pump(&conn, &mut output, variant);
        }
        shuttle::thread::yield_now();
    }
    sender.join().unwrap();
    assert_eq!(handled, each);
    let at = |item: Item| output.iter().position(|&o| o == item).unwrap_or_else(|| panic!("{item:?} lost: {output:?}"));
    for i in 0..each {
        assert!(at(Item::X(i)) < at(Item::B(i)), "X {i} sent before B {i} was broadcast, written after: {output:?}");
        if replies {
            assert!(at(Item::B(i)) < at(Item::U(i)), "B {i} broadcast before U {i} was sent, written after: {output:?}");
        }
        if i > 0 {
            if replies {
                assert!(at(Item::U(i - 1)) < at(Item::B(i)), "U {} sent before B {i} was broadcast, written after: {output:?}", i - 1);
            }
            let kinds: &[fn(u32) -> Item] = if replies { &[Item::X, Item::B, Item::U] } else { &[Item::X, Item::B] };
            for &kind in kinds {
                assert!(at(kind(i - 1)) < at(kind(i)), "a stream out of order: {output:?}");
            }
        }
    }
}

/// `jobs::pump`: everything into the output, then, the outbox empty,
/// the path opened (under the lock, or after it in the mutant).
fn pump(conn: &Conn, output: &mut Vec<Item>, variant: Variant) {
    let mut q = conn.outbox.lock().unwrap();
    if variant.close_on_lock {
        conn.direct.store(CLOSED, Ordering::Relaxed);
    }
    output.extend(q.drain(..));
    if variant.open_under_lock {
        conn.direct.store(OPEN, Ordering::Relaxed);
        drop(q);
    } else {
        drop(q);
        conn.direct.store(OPEN, Ordering::Relaxed);
    }
}

#[test]
fn the_direct_path_keeps_every_senders_order() {
    for replies in [true, false] {
        shuttle::check_random(move || run(3, replies, SOUND), 3000);
        shuttle::check_pct(move || run(3, replies, SOUND), 3000, 3);
    }
}

fn caught(variant: Variant) {
    for replies in [true, false] {
        shuttle::check_random(move || run(3, replies, variant), 20_000);
    }
}

#[test]
#[should_panic(expected = "written after")]
fn mutant_a_push_that_does_not_close_the_path_is_caught() {
    caught(Variant { close_on_lock: false, ..SOUND });
}

#[test]
#[should_panic(expected = "written after")]
fn mutant_the_pump_opening_after_the_unlock_is_caught() {
    caught(Variant { open_under_lock: false, ..SOUND });
}

#[test]
#[should_panic(expected = "written after")]
fn mutant_a_plain_store_reopening_the_path_is_caught() {
    caught(Variant { reopen_cas: false, ..SOUND });
}

/// The bug this mutant restates was in `Signal::take_direct` until
/// 2026-12-05: a load of `OPEN` then a store of `TAKEN`, so a push on
/// another thread between the two had its `CLOSED` overwritten, the
/// loop reopened the path over a non-empty outbox, and a broadcast made
/// after that push (told of it) was written before it.
#[test]
#[should_panic(expected = "written after")]
fn mutant_a_plain_store_taking_the_path_is_caught() {
    caught(Variant { take_cas: false, ..SOUND });
}

/// The lines of the sources this model restates; if one changed, revisit
/// the model.
#[test]
fn source_still_matches_the_model() {
    restated("conn.rs", include_str!("../src/ws/conn.rs"), &["let outbox = lock(&self.outbox); self.wake.close_direct(); outbox"]);
    restated(
        "jobs.rs",
        include_str!("../src/ws/jobs.rs"),
        &["if outbox.is_empty() && !outbox.is_closing() && waiting < HIGH_WATER { // Under the lock: a push after this closes it again. conn.inner.wake.open_direct(); }"],
    );
    restated(
        "signal.rs",
        include_str!("../src/ws/signal.rs"),
        &[
            "OPEN => self.direct.compare_exchange(OPEN, TAKEN, Ordering::Relaxed, Ordering::Relaxed).ok().map(|_| (*id, true)), TAKEN => Some((*id, false)), _ => None,",
            "let _ = self.direct.compare_exchange(TAKEN, OPEN, Ordering::Relaxed, Ordering::Relaxed);",
            "self.direct.store(CLOSED, Ordering::Relaxed);",
        ],
    );
    let looped = restated(
        "looped.rs",
        include_str!("../src/ws/looped.rs"),
        &["fn before_writes(&mut self, ctx: &mut Ctx<'_>) { self.write_direct(ctx); }"],
    );
    let write = looped.find("if direct::listed(id) { self.write_direct(ctx); }").expect("step writes the listed frames");
    let pump = looped.find("let backlog = pump(").unwrap();
    assert!(write < pump, "step must write the listed frames before it pumps");
    restated(
        "host.rs",
        include_str!("../src/ws/host.rs"),
        &["if here != 0 && direct::offer(here, &conn.inner.wake, &frame) { queued += 1; continue; }"],
    );
}
