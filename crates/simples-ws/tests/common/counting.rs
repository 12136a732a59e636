//! Shared by the memory tests of both crates
//! (`crates/simples-ws/tests/idle_memory.rs`,
//! `crates/simples/tests/ws_memory_budget.rs`, which includes this file by
//! path): a counting global allocator (live bytes and allocations, by size,
//! and allocation calls) and raw `std::net` clients that do the opening
//! handshake by hand into stack buffers, so that they allocate nothing per
//! connection. A test binary installs it with
//! `#[global_allocator] static ALLOC: counting::Counting = counting::Counting;`
//! and has one test function: the counters are global.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Connections per measurement.
pub const N: usize = 200;

/// The load generator's handshake request (`bench/loadgen/src/codec.rs`)
/// for `/echo`, with the key of RFC 6455 §1.3.
pub const REQUEST: &[u8] = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

pub struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCS: AtomicIsize = AtomicIsize::new(0);
/// Live allocations by size (the last slot: `SIZES` bytes and more), for
/// the breakdown printed per connection.
pub const SIZES: usize = 4096;
static BY_SIZE: [AtomicIsize; SIZES + 1] = [const { AtomicIsize::new(0) }; SIZES + 1];

/// Allocation calls (allocations and reallocations) since the start.
pub static CALLS: AtomicIsize = AtomicIsize::new(0);

/// Bytes allocated minus bytes freed by threads not marked with
/// [`mark_thread`]: what those threads made that is still live, plus what
/// they made that a marked thread freed.
static LIVE_UNMARKED: AtomicIsize = AtomicIsize::new(0);

std::thread_local! {
    /// Set by [`mark_thread`]. `const`, no destructor: reading it from the
    /// allocator never allocates.
    static MARKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread (e.g. a server's event loop, from a handler
/// that runs there): its allocations leave [`live_unmarked`].
pub fn mark_thread() {
    MARKED.with(|m| m.set(true));
}

/// See [`LIVE_UNMARKED`].
pub fn live_unmarked() -> isize {
    LIVE_UNMARKED.load(Relaxed)
}

fn count(size: usize, n: isize) {
    if n > 0 {
        CALLS.fetch_add(1, Relaxed);
    }
    if !MARKED.try_with(|m| m.get()).unwrap_or(false) {
        LIVE_UNMARKED.fetch_add(size as isize * n, Relaxed);
    }
    LIVE_BYTES.fetch_add(size as isize * n, Relaxed);
    LIVE_ALLOCS.fetch_add(n, Relaxed);
    BY_SIZE[size.min(SIZES)].fetch_add(n, Relaxed);
}

// SAFETY: every call forwards to `System` with the caller's arguments; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size(), 1);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(layout.size(), -1);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size(), 1);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        p
    }
}


/// Live `(bytes, allocations)` now.
pub fn live() -> (isize, isize) {
    (LIVE_BYTES.load(Relaxed), LIVE_ALLOCS.load(Relaxed))
}

/// Live allocations by size now (on the stack: taking it allocates nothing).
pub fn by_size() -> [isize; SIZES + 1] {
    std::array::from_fn(|i| BY_SIZE[i].load(Relaxed))
}

/// The allocation sizes that grew by at least one per two connections
/// between `from` and `to`: `size B x count per connection`, largest
/// share first.
pub fn breakdown(from: &[isize; SIZES + 1], to: &[isize; SIZES + 1]) -> String {
    let mut grown: Vec<(usize, f64)> = (0..=SIZES)
        .map(|size| (size, (to[size] - from[size]) as f64 / N as f64))
        .filter(|&(_, per)| per.abs() >= 0.5)
        .collect();
    grown.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
    let shown: Vec<String> = grown
        .iter()
        .map(|(size, per)| if *size == SIZES { format!("{SIZES}+ B x {per:.1}") } else { format!("{size} B x {per:.1}") })
        .collect();
    shown.join(", ")
}

/// One client: handshake by hand, nothing allocated.
pub fn open(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.write_all(request).expect("send the handshake");
    let mut head = [0u8; 512];
    let mut len = 0;
    while !head[..len].ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut head[len..len + 1]).expect("read the answer");
        assert!(n == 1 && len + 1 < head.len(), "the handshake's answer ended early or is too long");
        len += 1;
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "not upgraded: {}", String::from_utf8_lossy(&head[..len]));
    tcp
}

/// Sends one masked 5-byte text message and reads its 7-byte echo.
pub fn echo_once(tcp: &mut TcpStream) {
    let key = [1u8, 2, 3, 4];
    let mut frame = [0x81, 0x85, key[0], key[1], key[2], key[3], 0, 0, 0, 0, 0];
    for (i, b) in b"hello".iter().enumerate() {
        frame[6 + i] = b ^ key[i % 4];
    }
    tcp.write_all(&frame).expect("send a message");
    let mut reply = [0u8; 7];
    tcp.read_exact(&mut reply).expect("read the echo");
    assert_eq!(&reply, b"\x81\x05hello");
}

/// Polls `check` until it is true (10 s at most).
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the live byte count stops moving (the server's tasks have
/// gone idle after the last reply), and returns it.
pub fn settled() -> (isize, isize) {
    let mut last = live();
    let mut stable = 0;
    wait_until("the server to go idle", || {
        let now = live();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
        stable >= 10
    });
    last
}
