//! What one idle WebSocket connection of a framework host (`server.ws(..)`)
//! costs in heap memory, counted with a counting global allocator (not
//! RSS: the figure is deterministic), so that the budget of the
//! performance issue (≤ 1 KiB per idle connection, and after one message
//! each) holds.
//!
//! A real server on 127.0.0.1 runs on its own runtime thread; the clients
//! are plain `std::net::TcpStream`s that do the opening handshake by hand
//! with a fixed request (the benchmark load generator's) and read the
//! answer into stack buffers, so the client side allocates nothing per
//! connection (their `Vec` is reserved before the first count): what is
//! counted is the server's. Live bytes are `allocated − freed`; the figure
//! per connection is the growth over `N` connections divided by `N`, and
//! includes the connections' share of shared tables (the host's registry
//! grows by doubling). Allocator overhead (malloc's headers and size
//! classes) is not counted: RSS adds it.
//!
//! One test function: the counters are global to this binary. It also
//! counts the allocator calls of a broadcast made on a loop's thread (the
//! direct path allocates nothing per delivery; through the outboxes it
//! was about one call per subscriber per burst).

#[path = "../../simples-ws/tests/common/counting.rs"]
mod counting;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;

use counting::{breakdown, by_size, echo_once, live_unmarked, mark_thread, open, settled, wait_until, CALLS, N, REQUEST};
use simples::ws::WsOptions;
use simples::{Server, WsHost};

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// The budget per idle connection (live heap bytes), and after one
/// message each. Measured at first (commit 7823af7): 2,862 B in 14
/// allocations, 3,777 B in 18 after one message; with the request head
/// in one compact allocation, 1,883 B in 5 (2,798 B in 9); with the
/// driver's queues released while idle and no wrapper around the boxed
/// driver, 1,859 B in 5 (1,878 B in 6); with the request table lazy and
/// the driver's arguments held once, 1,699 B (1,718 B); with what idle
/// connections never use boxed or lazy (protocol, `WebSocket`, `WsConn`,
/// request) and the driver's futures trimmed, 1,507 B (1,526 B); with a
/// fresh message's handler polled once at once (issue 14, K=1), 1,499 B
/// (1,518 B);
/// with the default idle timeout (a timer per connection) 112 B more. On
/// the event loops (`WsOptions::event_loop`, no task, no tokio
/// registration, no timer per connection: the loop's slab entry holds the
/// socket and the protocol), 931 B in 3 (950 B in 4); 971 B (990 B) with
/// the default idle timeout (the loop's timer heap); without the
/// handshake's own headers in the kept head (`ws/request.rs`, `CONSUMED`),
/// 834 B (853 B), 874 B (893 B) with the timeout, 1,506 B as a task;
/// with the connection as its handlers' waker (no `ConnWake`), the task's
/// waker boxed in the signal and the parsed request behind a `OnceBox`,
/// 776 B in 2 (795 B in 3), 816 B (835 B) with the timeout, 1,530 B as a
/// task; with the protocol's output chunk list boxed until used and the
/// member sets keyed by id, 736 B (755 B), 775 B (794 B) with the timeout,
/// 1,496 B as a task; with the peer address packed and the timers'
/// closing state boxed, 689 B (708 B), 729 B (748 B) with the timeout,
/// 1,456 B as a task; with the protocol's timers' marks 8 bytes each, its
/// output's length in the chunks' box and its extension behind a thin
/// pointer (the loop's slab entry 248 -> 216 B in release builds), the
/// signal's lister a thin pointer and the ended flags read from the
/// outbox (`ConnInner` 224 -> 208 B in malloc), the loop's entry 64 -> 56
/// B, 623 B (642 B), 663 B (682 B) with the timeout, 1,408 B as a task;
/// with the protocol's activity flag and rare state folded (184 B), the
/// loop's id read from the signal (entry 48 B) and the request's part
/// ends in its text (`ConnInner` 192 B in malloc), 576 B (595 B), 616 B
/// (634 B) with the timeout, 1,384 B as a task.
/// As tokio tasks
/// (`event_loop: false`, TLS connections), the task model's figures above
/// stay under [`BUDGET_TASKS`].
const BUDGET: f64 = 1024.0;
const BUDGET_AFTER_MESSAGE: f64 = 1024.0;
/// The budget of a connection run as a tokio task (default options, idle
/// and after one message): 1,522 B counted on 2026-12-05 (1,530 with the
/// task's waker boxed in its signal, which loop connections need not
/// carry; 1,456 with the smaller output, member sets, peer address and
/// timers; 1,408 with the smaller protocol and signal). Regression: with
/// the request held inline while the handshake's task waits for the
/// upgrade, the task was 144 B larger for the connection's life (1,650).
const BUDGET_TASKS: f64 = 1600.0;

/// What a browser sends (Chrome's headers, a session cookie): the request
/// head the connection keeps for `WsConn::header` & co. is larger.
const BROWSER_REQUEST: &[u8] = b"GET /echo?room=lobby HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
Pragma: no-cache\r\nCache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\nOrigin: http://localhost\r\nSec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9,fr;q=0.8\r\n\
Cookie: theme=dark; simples_session=0123456789abcdef0123456789abcdef\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/// Per-connection live bytes and allocations: idle after the handshake,
/// then after one echoed message each.
#[derive(Debug, Clone, Copy)]
struct PerConn {
    idle: f64,
    idle_allocs: f64,
    after_message: f64,
    after_message_allocs: f64,
    /// Of `idle`, the bytes threads other than the connection's loop made
    /// (net of what the loop freed of theirs; see `counting::live_unmarked`).
    idle_elsewhere: f64,
}

/// Opens `N` connections with `request` to the host `/echo` built by
/// `build` and measures them.
fn measure(name: &str, request: &[u8], build: impl FnOnce(&mut Server) -> WsHost) -> PerConn {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut server = Server::new("127.0.0.1:0");
    let host = build(&mut server);
    let running = runtime.block_on(server.start()).expect("server starts");
    let addr = running.local_addr();
    let mut clients: Vec<TcpStream> = Vec::with_capacity(N);
    // Warm up: what is allocated once (the metric handles, thread-local
    // buffers, the runtime's and hyper's first use) is not per connection.
    for _ in 0..8 {
        let mut c = open(addr, request);
        echo_once(&mut c);
    }
    wait_until("the warm-up connections to end", || host.stats().connections == 0);
    let before = settled();
    let elsewhere_before = live_unmarked();
    let sizes_before = by_size();
    for _ in 0..N {
        clients.push(open(addr, request));
    }
    wait_until("every connection to register", || host.stats().connections == N);
    let idle = settled();
    let idle_elsewhere = (live_unmarked() - elsewhere_before) as f64 / N as f64;
    let sizes_idle = by_size();
    for c in &mut clients {
        echo_once(c);
    }
    let after = settled();
    let sizes_after = by_size();
    // What a message costs in allocator calls on a connection that was
    // idle before it (its queues released): the server's whole round trip.
    let calls = CALLS.load(Relaxed);
    for c in &mut clients {
        echo_once(c);
    }
    settled();
    let calls_per_echo = (CALLS.load(Relaxed) - calls) as f64 / N as f64;
    let per = |a: (isize, isize)| ((a.0 - before.0) as f64 / N as f64, (a.1 - before.1) as f64 / N as f64);
    let ((idle_b, idle_a), (after_b, after_a)) = (per(idle), per(after));
    println!(
        "{name}: {idle_b:.0} B in {idle_a:.1} allocations per idle connection ({idle_elsewhere:.0} B by other threads than its loop's); \
         {after_b:.0} B in {after_a:.1} after one message each; \
         {calls_per_echo:.1} allocator calls per echo of an idle connection\n  idle: {}\n  after one message: {}",
        breakdown(&sizes_before, &sizes_idle),
        breakdown(&sizes_before, &sizes_after),
    );
    drop(clients);
    wait_until("the connections to end", || host.stats().connections == 0);
    runtime.block_on(running.stop());
    PerConn { idle: idle_b, idle_allocs: idle_a, after_message: after_b, after_message_allocs: after_a, idle_elsewhere }
}

/// An echo host in plain mode, its connections on one event loop.
///
/// One loop, whatever the machine: each loop's connection table (a slab)
/// grows by doubling, so the share of empty slots counted per connection
/// depends on how many connections each loop holds (`N` / loops). With the
/// default (one loop per core) this test measured 915-979 B per idle
/// connection with 1, 2, 4 and 8 loops, and 1,179 B with 3 (67 connections
/// per loop in 128 slots); CI's machine failed the budget at 1,026 B. A
/// table slot is ~390 B, so the worst case adds up to one slot per
/// connection to the figure below (within LIMITS.md's 16 KiB row for the
/// connection's structures).
fn echo_host(server: &mut Server, options: WsOptions) -> WsHost {
    echo_host_at(server, "/echo", options)
}

/// [`echo_host`] at route `path`.
fn echo_host_at(server: &mut Server, path: &str, options: WsOptions) -> WsHost {
    let options = WsOptions { origins: simples::ws::Origins::Any, event_loop_threads: 1, ..options };
    // Runs on the connection's loop (its thread then counts apart; the
    // warm-up's connections mark it before the measured ones); a task's
    // runs on a runtime worker, marked as well.
    let echo = server.ws(path, options, |_| {
        mark_thread();
        async {}
    });
    echo.on_message(|conn, message| {
        let _ = conn.send(message);
        async {}
    });
    echo
}

/// Subscribers of the broadcast measurement.
const SUBS: usize = 200;
/// Messages the publisher writes at once.
const BURST: usize = 10;

/// Allocator calls per delivery of broadcasts made by a `/pub` handler to
/// a `/sub` host on the same loop (hosts with the same thread count share
/// it), in bursts of `BURST` messages: the messages, their frames and the
/// broadcasts' snapshots are per broadcast (a few calls shared by `SUBS`
/// deliveries); the direct path (`src/ws/direct.rs`) adds none per
/// delivery.
fn broadcast_calls_per_delivery() -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut server = Server::new("127.0.0.1:0");
    let options = WsOptions {
        origins: simples::ws::Origins::Any,
        event_loop_threads: 1,
        idle_timeout: None,
        ..WsOptions::default()
    };
    let subs = server.ws("/sub", options.clone(), |_| async {});
    let publisher = server.ws("/pub", options, |_| async {});
    {
        let subs = subs.clone();
        publisher.on_message(move |_, message| {
            subs.broadcast(message);
            async {}
        });
    }
    let running = runtime.block_on(server.start()).expect("server starts");
    let addr = running.local_addr();
    let sub_request = String::from_utf8_lossy(REQUEST).replace("GET /echo ", "GET /sub ");
    let pub_request = String::from_utf8_lossy(REQUEST).replace("GET /echo ", "GET /pub ");
    let mut members: Vec<TcpStream> = Vec::with_capacity(SUBS);
    for _ in 0..SUBS {
        members.push(open(addr, sub_request.as_bytes()));
    }
    wait_until("every subscriber to register", || subs.stats().connections == SUBS);
    let mut publisher_tcp = open(addr, pub_request.as_bytes());
    // A masked 5-byte text message, `BURST` of them in one write.
    let key = [1u8, 2, 3, 4];
    let mut one = [0x81, 0x85, key[0], key[1], key[2], key[3], 0, 0, 0, 0, 0];
    for (i, b) in b"hello".iter().enumerate() {
        one[6 + i] = b ^ key[i % 4];
    }
    let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * BURST).collect();
    let round = |publisher_tcp: &mut TcpStream, members: &mut Vec<TcpStream>| {
        publisher_tcp.write_all(&burst).expect("publish");
        for m in members.iter_mut() {
            let mut got = [0u8; 7 * BURST];
            m.read_exact(&mut got).expect("a subscriber reads the burst");
            assert!(got.chunks(7).all(|f| f == b"\x81\x05hello"), "a broadcast came back wrong");
        }
    };
    // Warm-up: the loop's lists, the outputs' small buffers, the snapshot.
    for _ in 0..3 {
        round(&mut publisher_tcp, &mut members);
    }
    settled();
    let calls = CALLS.load(Relaxed);
    for _ in 0..5 {
        round(&mut publisher_tcp, &mut members);
    }
    settled();
    let per = (CALLS.load(Relaxed) - calls) as f64 / (5 * BURST * SUBS) as f64;
    drop((members, publisher_tcp));
    wait_until("the subscribers to end", || subs.stats().connections == 0);
    runtime.block_on(running.stop());
    per
}

#[test]
fn idle_connection_memory_stays_within_budget() {
    // As the benchmark server (`bench/servers/simples-host`): no idle
    // timeout, so no timer per connection.
    let bench = measure("plain echo, no idle timeout", REQUEST, |s| {
        echo_host(s, WsOptions { idle_timeout: None, ..WsOptions::default() })
    });
    // The benchmark server's echo host is the route `/*`: the request's
    // path becomes a route parameter the connection keeps.
    let wildcard = measure("plain echo on `/*`, no idle timeout", REQUEST, |s| {
        echo_host_at(s, "/*", WsOptions { idle_timeout: None, ..WsOptions::default() })
    });
    // The defaults: a 30 s idle timeout (a ping every 15 s), so each
    // connection has a timer.
    let defaults = measure("plain echo, default options", REQUEST, |s| echo_host(s, WsOptions::default()));
    // The same with a browser's request head kept for `WsConn::header`.
    let browser = measure("plain echo, default options, browser request", BROWSER_REQUEST, |s| {
        echo_host(s, WsOptions::default())
    });
    // As tokio tasks (what TLS connections are).
    let tasks = measure("plain echo, default options, tokio tasks", REQUEST, |s| {
        echo_host(s, WsOptions { event_loop: false, ..WsOptions::default() })
    });
    assert!(tasks.idle <= BUDGET_TASKS && tasks.after_message <= BUDGET_TASKS, "tokio tasks: {tasks:?}");
    for (what, m) in [("no idle timeout", bench), ("`/*`", wildcard), ("default options", defaults)] {
        assert!(m.idle <= BUDGET, "{what}: {:.0} B per idle connection (budget {BUDGET} B)", m.idle);
        assert!(
            m.after_message <= BUDGET_AFTER_MESSAGE,
            "{what}: {:.0} B per connection after one message (budget {BUDGET_AFTER_MESSAGE} B)",
            m.after_message
        );
    }
    // The browser's request head costs what it holds, no more.
    let head = (BROWSER_REQUEST.len() - REQUEST.len()) as f64;
    assert!(browser.idle <= defaults.idle + head + 64.0, "browser request: {browser:?} vs {defaults:?}");
    // Allocations per connection: the `WsConn` and the request head (its
    // loop slot and entry are in shared tables; the connection's waker,
    // a third until 2026-12-05, is the `WsConn` itself). Compared with a
    // half to spare: a shared table that grows once while the 200
    // connect (a loop's hand-over list, when the machine is busy) adds
    // 0.005.
    assert!(bench.idle_allocs < 2.5 && bench.after_message_allocs < 3.5, "no idle timeout: {bench:?}");
    // Regression (idle RSS of the bench's `/*` host, 2026-12-05): its
    // parameter took three more allocations (~170 B); it now lives in the
    // request head's, and costs its few bytes there.
    assert!(wildcard.idle_allocs < 2.5 && wildcard.idle <= bench.idle + 48.0, "`/*`: {wildcard:?} vs {bench:?}");
    assert!(defaults.idle_allocs < 2.5 && defaults.after_message_allocs < 3.5, "default options: {defaults:?}");
    // Regression (idle RSS, 2026-12-05): a loop connection's lasting
    // blocks are made by its loop's thread, in the loop's malloc arena,
    // not by the runtime thread that ran the handshake among its ~30 KiB
    // of short-lived buffers (whose pages they then pinned: 4.0-4.5 KB of
    // RSS per connection); and what the runtime made for the hand-over is
    // freed by the runtime (a block freed by another thread lands in that
    // thread's cache, then serves its short-lived allocations from the
    // loop's arena: 1.25 MB of holes for 10,000 connections).
    // The direct path: no allocator call per delivery (through the
    // outboxes, each subscriber's queue was allocated and freed per burst:
    // 0.1 calls per delivery at bursts of 10).
    let per_delivery = broadcast_calls_per_delivery();
    println!("broadcast on the loop's thread: {per_delivery:.3} allocator calls per delivery ({SUBS} subscribers, bursts of {BURST})");
    assert!(per_delivery < 0.05, "{per_delivery:.3} allocator calls per delivery of a broadcast on the loop's thread");
    // The regression kept 29 B (42 on `/*`) per connection off the loop's
    // thread; 0 B now, and 8-9 B at times (1.6-1.8 KB over the 200
    // connections, on a busy machine: a shared table that grew while they
    // connected, such as the loop's hand-over list, which the handshakes'
    // runtime thread fills; not per connection), hence 16 B of slack.
    for (what, m) in [("no idle timeout", bench), ("`/*`", wildcard), ("default options", defaults)] {
        assert!(m.idle_elsewhere.abs() <= 16.0, "{what}: {:.0} B per idle connection made (or freed) off its loop's thread", m.idle_elsewhere);
    }
}
