//! What an idle connection handed to an unbound event loop
//! (`EventLoop::unbound` + `Ctx::adopt`, the framework's planned model)
//! costs in heap memory, counted with a counting global allocator (live
//! bytes, deterministic), and that the application's controls allocate
//! nothing per call (`Handle::wake`, `Ctx::pause_reading`,
//! `Ctx::notify_drained`).
//!
//! The handshakes are done by hand on a std `TcpListener` in a thread of
//! the test (as the framework does them on hyper), each connection's
//! `Protocol` built with one shared `Arc<Config>`, then handed to the loop
//! through a channel and `Handle::wake`. One test function: the counters
//! are global to this binary.

#[path = "common/counting.rs"]
mod counting;

use counting::{breakdown, by_size, echo_once, open, settled, wait_until, CALLS, N, REQUEST};
use simples_ws::event_loop::{ConnId, Ctx, EventHandler, EventLoop, Handle, Options};
use simples_ws::handshake::server::{parse_request, ServerConfig};
use simples_ws::handshake::ServerPolicy;
use simples_ws::{Config, Message, Protocol, Role};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// Connections adopted and not closed.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Allocation calls made by 1,000 rounds of the controls (-1: not measured).
static CONTROL_ALLOCS: AtomicIsize = AtomicIsize::new(-1);

struct Adopter {
    inbox: mpsc::Receiver<(TcpStream, Protocol)>,
    ids: Vec<ConnId>,
    /// Set to measure the controls at the next `on_wake`.
    measure: Arc<AtomicUsize>,
    handle: Handle,
}

impl EventHandler for Adopter {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if msg.is_data() {
            ctx.send(id, msg);
        }
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, _: ConnId, _: simples_ws::event_loop::CloseReason) {
        OPEN.fetch_sub(1, Relaxed);
    }

    fn on_wake(&mut self, ctx: &mut Ctx<'_>) {
        while let Ok((stream, proto)) = self.inbox.try_recv() {
            let id = ctx.adopt(stream, proto).expect("adopt");
            self.ids.push(id);
            OPEN.fetch_add(1, Relaxed);
        }
        if self.measure.swap(0, Relaxed) == 1 {
            let id = self.ids[0];
            let before = CALLS.load(Relaxed);
            for _ in 0..1000 {
                assert!(ctx.pause_reading(id, true));
                assert!(ctx.pause_reading(id, false));
                assert!(ctx.notify_drained(id));
                self.handle.wake();
            }
            CONTROL_ALLOCS.store(CALLS.load(Relaxed) - before, Relaxed);
        }
    }
}

/// Accepts and does the opening handshake by hand; hands each connection
/// to the loop.
fn handshakes(listener: TcpListener, to_loop: mpsc::SyncSender<(TcpStream, Protocol)>, handle: Handle) {
    let config = Arc::new(Config::default());
    let server_config = ServerConfig::default();
    while let Ok((mut tcp, _)) = listener.accept() {
        let mut head = [0u8; 1024];
        let mut len = 0;
        let (request, consumed) = loop {
            let n = tcp.read(&mut head[len..]).expect("read the request");
            assert!(n > 0);
            len += n;
            if let Some(r) = parse_request(&head[..len], &server_config).expect("a valid request") {
                break r;
            }
        };
        let response = ServerPolicy::default().decide(&request).expect("accepted").response_bytes();
        tcp.write_all(&response).expect("send the 101");
        let mut proto = Protocol::new(Role::Server, config.clone());
        proto.receive(&head[consumed..len]);
        if to_loop.send((tcp, proto)).is_err() {
            return;
        }
        handle.wake();
    }
}

#[test]
fn adopted_idle_connection_memory_and_controls_allocate_nothing() {
    let mut lp = EventLoop::unbound(Options::default()).unwrap();
    let handle = lp.handle();
    let (tx, inbox) = mpsc::sync_channel(N);
    let measure = Arc::new(AtomicUsize::new(0));
    let adopter = Adopter { inbox, ids: Vec::with_capacity(2 * N), measure: measure.clone(), handle: handle.clone() };
    let looping = std::thread::spawn(move || lp.run(adopter).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = handle.clone();
    std::thread::spawn(move || handshakes(listener, tx, h));

    let mut warm: Vec<TcpStream> = (0..8).map(|_| open(addr, REQUEST)).collect();
    for c in &mut warm {
        echo_once(c);
    }
    wait_until("the warm-up connections to be adopted", || OPEN.load(Relaxed) == 8);
    // Let the loop release the warm-up connections' buffers (swept after 1 s).
    std::thread::sleep(Duration::from_millis(1200));
    let before = settled();
    let sizes_before = by_size();
    let mut clients: Vec<TcpStream> = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(open(addr, REQUEST));
    }
    wait_until("every connection to be adopted", || OPEN.load(Relaxed) == N + 8);
    let idle = settled();
    let sizes_idle = by_size();
    let per = (idle.0 - before.0) as f64 / N as f64;
    let allocs = (idle.1 - before.1) as f64 / N as f64;
    println!(
        "adopted by an unbound event loop: {per:.0} B in {allocs:.2} allocations per idle connection\n  idle: {}",
        breakdown(&sizes_before, &sizes_idle),
    );

    measure.store(1, Relaxed);
    handle.wake();
    wait_until("the controls to be measured", || CONTROL_ALLOCS.load(Relaxed) >= 0);
    let calls = CONTROL_ALLOCS.load(Relaxed);
    println!("1,000 rounds of pause_reading(true/false), notify_drained and wake: {calls} allocation calls");
    assert_eq!(calls, 0, "the controls allocate per call");
    // The slab's share (`Conn`: 264 B, 312 until 2026-12-05; the slab doubling its storage) and
    // nothing per connection besides: the protocol holds no buffer while
    // idle, its `Config` is shared.
    assert!(per <= 700.0, "{per:.0} B per idle adopted connection");

    // One message each, then a second of quiet: the loop's sweep (the loop
    // reads the system clock, so this waits in real time) releases every
    // buffer the message needed, the small encoding buffer that
    // `Output::shrink` keeps for busy connections too (it stayed, 19 B per
    // connection, until 2026-12-05).
    // Baseline: the idle connections after a sweep of their own.
    std::thread::sleep(Duration::from_millis(1200));
    let quiet = settled();
    let sizes_quiet = by_size();
    for c in &mut clients {
        echo_once(c);
    }
    std::thread::sleep(Duration::from_millis(1200));
    let swept = settled();
    let kept = (swept.0 - quiet.0) as f64 / N as f64;
    println!("after one message each and the idle sweep: {kept:+.1} B per connection\n  {}", breakdown(&sizes_quiet, &by_size()));
    assert!(kept <= 2.0, "{kept:.1} B per connection kept after one message and the idle sweep");

    drop(clients);
    drop(warm);
    wait_until("every connection to close", || OPEN.load(Relaxed) == 0);
    handle.stop();
    looping.join().unwrap();
}
