//! Giving back to the system what a burst of handshakes freed (glibc's
//! `malloc` only; elsewhere this does nothing).
//!
//! Every WebSocket handshake goes through hyper with ~30 KiB of
//! short-lived allocations (its read and write buffers, the connection's
//! tasks). A burst of handshakes in parallel grows the allocator's heap by
//! that much per handshake in flight, and once they are freed glibc keeps
//! the pages: it returns only the top of its heap, and what stays (the
//! connections' few bytes, the server's tables) sits above the holes.
//! Measured with the benchmark's 10,000 idle connections opened 200 at a
//! time on the event loops (`BENCHMARKS.md`): 1,530 B of RSS per
//! connection, 1,033 B after one `malloc_trim`.
//!
//! So when handshakes stop for [`QUIET`] after at least [`BURST`] of them
//! since the last trim, a task calls `malloc_trim(0)`: one pass over the
//! heap that hands the free pages back (measured below a millisecond for a
//! 35 MB heap). A server that never pauses its handshakes reuses the
//! pages instead (the heap then stays at what its handshakes in flight
//! take).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long handshakes must have stopped before a trim.
const QUIET: Duration = Duration::from_secs(1);
/// Handshakes since the last trim that make one worth it (fewer leave
/// little to give back).
const BURST: u64 = 256;

/// Handshakes done (101 sent), ever.
static DONE: AtomicU64 = AtomicU64::new(0);
/// `DONE` at the last trim.
static TRIMMED_AT: AtomicU64 = AtomicU64::new(0);
/// A watcher task is running.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Counts a handshake that answered 101, and starts the watcher on the
/// current runtime if none runs.
pub(crate) fn handshake_done() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    DONE.fetch_add(1, Ordering::AcqRel);
    if WATCHING.swap(true, Ordering::AcqRel) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(watch());
        }
        Err(_) => WATCHING.store(false, Ordering::Release),
    }
}

/// Clears `WATCHING` however the watcher ends (its runtime may stop it).
struct Watching;

impl Drop for Watching {
    fn drop(&mut self) {
        WATCHING.store(false, Ordering::Release);
    }
}

/// Waits until handshakes have stopped for `QUIET`, trims if `BURST` of
/// them came since the last trim, and ends.
async fn watch() {
    let _watching = Watching;
    let mut seen = DONE.load(Ordering::Acquire);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = DONE.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            continue;
        }
        if now - TRIMMED_AT.load(Ordering::Acquire) >= BURST {
            TRIMMED_AT.store(now, Ordering::Release);
            let started = std::time::Instant::now();
            trim();
            tracing::debug!(handshakes = now, took_us = started.elapsed().as_micros() as u64, "heap trimmed after a burst of handshakes");
        }
        return;
    }
}

/// `malloc_trim(0)`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` takes a padding size and only returns free
    // pages of the allocator's own heaps to the system (with each arena's
    // lock held); it touches no memory the program holds. Measured in
    // BENCHMARKS.md ("idle RSS after a burst of handshakes").
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    // The only test of this crate's unit tests that completes handshakes:
    // the counters are the process's.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_handshakes_is_trimmed_once_they_stop_and_a_trickle_is_not() {
        for _ in 0..BURST {
            handshake_done();
        }
        assert!(WATCHING.load(Ordering::Acquire), "a watcher runs");
        let burst = DONE.load(Ordering::Acquire);
        // Still coming: no trim yet.
        tokio::time::sleep(QUIET / 2).await;
        handshake_done();
        tokio::time::sleep(QUIET / 2 + Duration::from_millis(1)).await;
        assert!(TRIMMED_AT.load(Ordering::Acquire) < burst, "trimmed while handshakes came");
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(TRIMMED_AT.load(Ordering::Acquire), burst + 1, "trimmed after the burst stopped");
        assert!(!WATCHING.load(Ordering::Acquire), "the watcher ended");
        // A few more, then quiet: fewer than BURST since the trim.
        for _ in 0..3 {
            handshake_done();
        }
        tokio::time::sleep(QUIET * 3).await;
        assert_eq!(TRIMMED_AT.load(Ordering::Acquire), burst + 1, "no trim for a trickle");
        assert!(!WATCHING.load(Ordering::Acquire));
    }
}
