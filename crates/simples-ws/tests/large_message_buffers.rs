//! Regression (2026-12-05): a connection of the tokio driver that waits
//! for input frees its receive buffer (idle memory), so every large
//! message took a new allocation of its size and freed it. With glibc on
//! a runtime's main thread the heap's top was trimmed and grown again every
//! few messages, and the page faults and zeroing were 13% of the server's
//! CPU at 1 MiB echoes. The buffers of large frames are now kept per
//! thread for the next large frame (`tokio/io.rs`, `spares`).
//!
//! Counts the allocations of 128 KiB and more made while two connections
//! of a README-style server (`accept`, then `recv`/`send`) echo 1 MiB
//! messages in turn. The client is a plain `std::net::TcpStream` with its
//! buffers made before the count starts. One test function: the counter
//! is global to this binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use simples_ws::tokio::{accept, AcceptOptions};
use simples_ws::Config;

const LARGE: usize = 128 * 1024;
const SIZE: usize = 1 << 20;

static LARGE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call forwards to `System` with the caller's arguments; the
// counter is a plain atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            LARGE_ALLOCS.fetch_add(1, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= LARGE {
            LARGE_ALLOCS.fetch_add(1, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn open(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// Sends `frame` (a masked binary frame of `SIZE` bytes) and reads its
/// echo into `reply`, checking it.
fn echo(tcp: &mut TcpStream, frame: &[u8], reply: &mut [u8]) {
    tcp.write_all(frame).unwrap();
    tcp.read_exact(reply).unwrap();
    assert_eq!(&reply[..2], &[0x82, 127]);
    assert_eq!(u64::from_be_bytes(reply[2..10].try_into().unwrap()), SIZE as u64);
    // The mask key is zero: the payload goes out as it came in.
    assert!(reply[10..] == frame[14..], "the echo differs");
}

#[test]
fn large_messages_reuse_the_receive_buffers_of_earlier_ones() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = std::thread::spawn(move || {
        runtime.block_on(async move {
            let config = Config { max_message_size: 4 * SIZE, max_frame_size: 4 * SIZE, ..Config::default() };
            let options = AcceptOptions { config, ..AcceptOptions::default() };
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let options = options.clone();
                tokio::spawn(async move {
                    let (mut ws, _) = accept(tcp, &options).await.unwrap();
                    while let Ok(msg) = ws.recv().await {
                        if msg.is_data() {
                            ws.send(msg).await.unwrap();
                        }
                    }
                });
            }
            std::future::pending::<()>().await
        })
    });
    let mut frame = vec![0x82, 0xff];
    frame.extend_from_slice(&(SIZE as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend((0..SIZE).map(|i| (i % 251) as u8));
    let mut reply = vec![0u8; 10 + SIZE];
    let mut conns = [open(addr), open(addr)];
    for conn in &mut conns {
        echo(conn, &frame, &mut reply);
    }
    let before = LARGE_ALLOCS.load(Relaxed);
    for i in 0..20 {
        echo(&mut conns[i % 2], &frame, &mut reply);
    }
    let made = LARGE_ALLOCS.load(Relaxed) - before;
    // One per message before the buffers were kept.
    assert!(made <= 1, "{made} allocations of 128 KiB or more for 20 messages of 1 MiB");
    drop(conns);
}
