//! permessage-deflate memory, measured with a counting allocator: the
//! per-context estimates that `Extension::memory` and the budget use match
//! what zlib-rs allocates, contexts are released without context takeover,
//! and an inflation bomb never allocates much more than the message limit.
//!
//! One test function only: the allocator's counters are global, so nothing
//! else may run concurrently in this binary.
#![cfg(feature = "deflate")]

use bytes::Bytes;
use simples_ws::deflate::{deflate_memory, inflate_memory, DeflateConfig, DeflateExtension, DeflateParams};
use simples_ws::proto::Role;
use simples_ws::{CloseCode, Config, DataKind, Extension, Message, Protocol, ProtocolError};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn current() -> usize {
    CURRENT.load(Relaxed)
}

fn params(nct: bool, bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: nct,
        client_no_context_takeover: nct,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    }
}

fn within(measured: usize, estimate: usize, what: &str) {
    let (lo, hi) = (estimate - estimate / 10, estimate + estimate / 10);
    assert!((lo..=hi).contains(&measured), "{what}: measured {measured} B, estimate {estimate} B");
}

/// A masked client frame.
fn client_frame(rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | rsv | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
    f.extend_from_slice(payload);
    f
}

#[test]
fn memory_matches_estimates_and_stays_bounded() {
    let cfg = DeflateConfig { min_size: 0, ..DeflateConfig::default() };
    let payload = Bytes::from(vec![b'a'; 100]);

    // Deflate contexts, kept with context takeover.
    for bits in [9u8, 10, 12, 15] {
        let mut ext = DeflateExtension::new(Role::Server, params(false, bits), &cfg);
        let before = current();
        let (_, out) = ext.encode(DataKind::Binary, payload.clone()).unwrap();
        let held = current() - before;
        // The output is a few bytes in a buffer of payload/2 + 64.
        within(held - (payload.len() / 2 + 64), deflate_memory(bits), &format!("deflate, {bits} bits"));
        assert_eq!(ext.memory(), deflate_memory(bits));
        drop(out);
    }

    // Inflate contexts.
    let mut sender = DeflateExtension::new(Role::Client, params(false, 15), &cfg);
    let (_, compressed) = sender.encode(DataKind::Binary, payload.clone()).unwrap();
    for bits in [9u8, 15] {
        let mut ext = DeflateExtension::new(Role::Server, params(false, bits), &cfg);
        let before = current();
        let out = ext.decode(0x40, compressed.clone(), true, 1 << 20).unwrap();
        assert_eq!(out, payload);
        let held = current() - before - out.len().max(64);
        within(held, inflate_memory(bits), &format!("inflate, {bits} bits"));
        assert_eq!(ext.memory(), inflate_memory(bits));
    }

    // Without context takeover nothing is held between messages.
    let mut ext = DeflateExtension::new(Role::Server, params(true, 15), &cfg);
    let before = current();
    let (_, out) = ext.encode(DataKind::Binary, payload.clone()).unwrap();
    let in_out = ext.decode(0x40, compressed.clone(), true, 1 << 20).unwrap();
    // Only the two output buffers remain.
    assert!(current() - before < 4096, "{} B held", current() - before);
    assert_eq!(ext.memory(), 0);
    drop((out, in_out));

    // An inflation bomb: 64 MiB of zeros in one small frame, against a
    // 1 MiB limit, fails with 1009 having allocated about the limit.
    let zeros = vec![0u8; 1 << 20];
    let best = DeflateConfig { level: 9, ..cfg.clone() };
    let mut bomb_ext = DeflateExtension::new(Role::Client, params(false, 15), &best);
    let mut bomb = Vec::new();
    // 64 messages of 1 MiB with context takeover, concatenated with their
    // flush markers: one stream of 64 MiB.
    for _ in 0..64 {
        let (_, part) = bomb_ext.encode(DataKind::Binary, Bytes::from(zeros.clone())).unwrap();
        bomb.extend_from_slice(&part);
        bomb.extend_from_slice(&[0, 0, 0xff, 0xff]);
    }
    drop((bomb_ext, zeros));
    assert!(bomb.len() < 128 << 10, "bomb of {} B", bomb.len());
    let frame = client_frame(0x40, 0x2, &bomb);
    drop(bomb);
    let limit = 1 << 20;
    let mut server = Protocol::new(Role::Server, Config { max_message_size: limit, max_frame_size: 1 << 20, ..Config::default() });
    server.set_extension(Box::new(DeflateExtension::new(Role::Server, params(false, 15), &cfg)));
    server.receive(&frame);
    let base = current();
    PEAK.store(base, Relaxed);
    let err = server.poll_message().unwrap_err();
    let peak = PEAK.load(Relaxed) - base;
    assert!(matches!(err, ProtocolError::MessageTooBig { .. }), "{err}");
    assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    assert!(peak < limit + (limit / 2) + inflate_memory(15) + frame.len(), "peak {peak} B for a limit of {limit} B");
    eprintln!("bomb: {} B frame, peak {} B while failing at a {} B limit", frame.len(), peak, limit);

    // And a protocol that never sees compression holds nothing.
    let mut plain = Protocol::new(Role::Server, Config::default());
    plain.set_extension(Box::new(DeflateExtension::new(Role::Server, params(false, 15), &cfg)));
    plain.receive(&client_frame(0, 0x1, b"hello"));
    assert_eq!(plain.poll_message().unwrap(), Some(Message::text("hello")));
    assert_eq!(plain.extension_memory(), 0);
}
