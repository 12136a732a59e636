//! The mio event loop under pressure, over real sockets: a client that
//! sends without reading its replies is paused by TCP back-pressure (its
//! queued replies stay bounded, other clients keep being served, nothing is
//! lost once it reads), and more than 1,024 connections ready in one
//! `epoll_wait` are all served.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_pressure`.

mod common;

use common::{client_frame, read_frame, upgrade_request, LoopServer, OP_BINARY, OP_TEXT};
use simples_ws::event_loop::{ConnId, Ctx, EventLoop, EventHandler, Options, Request};
use simples_ws::handshake::HandshakeError;
use simples_ws::{CloseCode, Config, Message};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Echoes every data message. The connection opened on `/abuse` is
/// watched: the largest output it had queued after an echo is kept; a
/// `status` message (from any other connection) is answered with its
/// state, `open=<bool> paused=<bool> queued=<bytes> conns=<connections>`,
/// and `kick` closes it (answered `kicked=<bool>`).
#[derive(Default)]
struct Echo {
    abusive: Option<ConnId>,
    max_queued: Arc<AtomicUsize>,
    opened: usize,
    messages: usize,
}

impl EventHandler for Echo {
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<simples_ws::event_loop::Accept, HandshakeError> {
        self.opened += 1;
        if req.path() == "/abuse" {
            self.abusive = Some(id);
        }
        Ok(Default::default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        self.messages += 1;
        match (&msg, self.abusive) {
            (Message::Text(t), Some(a)) if t.as_str() == "status" => {
                let (open, paused) = (ctx.is_open(a), ctx.is_paused(a));
                let queued = ctx.queued(a).unwrap_or(0);
                let status = format!("open={open} paused={paused} queued={queued} conns={}", ctx.connections());
                ctx.send(id, Message::text(status));
            }
            (Message::Text(t), Some(a)) if t.as_str() == "kick" => {
                let kicked = ctx.close(a, CloseCode::GOING_AWAY, "kicked");
                ctx.send(id, Message::text(format!("kicked={kicked}")));
            }
            _ if msg.is_data() => {
                ctx.send(id, msg);
                if Some(id) == self.abusive {
                    self.max_queued.fetch_max(ctx.queued(id).unwrap_or(0), Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

/// The payload of echo request `i`: its index, then a pattern.
fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut p = common::pattern(len, i as u8);
    p[..4].copy_from_slice(&(i as u32).to_be_bytes());
    p
}

/// Sends `command` over `ws` and returns the text answer.
async fn ask(ws: &mut tokio::net::TcpStream, command: &str) -> String {
    ws.write_all(&client_frame(true, OP_TEXT, command.as_bytes())).await.unwrap();
    let f = common::expect_frame(ws).await;
    String::from_utf8(f.payload).unwrap()
}

/// A field of a `status` answer.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    status.split(' ').find_map(|kv| kv.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Asks over `ws` for the abusive connection's state until `done` says
/// yes (within 2 s: on a busy machine the loop may be behind the clients).
async fn status_until(ws: &mut tokio::net::TcpStream, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut state = ask(ws, "status").await;
    for _ in 0..100 {
        if done(&state) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        state = ask(ws, "status").await;
    }
    panic!("{what}: the server says {state}");
}

/// `count` echo requests of `len` bytes each, as masked frames.
fn echo_requests(count: usize, len: usize) -> Vec<u8> {
    let mut requests = Vec::with_capacity(count * (len + 8));
    for i in 0..count {
        requests.extend_from_slice(&client_frame(true, OP_BINARY, &payload(i, len)));
    }
    requests
}

/// Writes `bytes` on `tcp` without reading until the writes block for
/// 500 ms (or all is written); how much was written.
async fn write_until_blocked(tcp: &tokio::net::TcpStream, bytes: &[u8]) -> usize {
    let mut written = 0;
    let mut last_progress = Instant::now();
    while written < bytes.len() && last_progress.elapsed() < Duration::from_millis(500) {
        match tcp.try_write(&bytes[written..]) {
            Ok(n) => {
                written += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the write failed: {e}"),
        }
    }
    written
}

/// The regression of issue 13: a client that sent 50 MiB of echo requests
/// without reading made the loop read all of it and queue the replies (up
/// to `max_queued`, 16 MiB, before closing it). Now reading stops at the
/// high-water mark: its queued replies stay under the mark plus one read's
/// replies, its writes block, another client keeps its echoes, and once it
/// reads it gets every reply, byte for byte, in order.
#[tokio::test]
async fn client_that_never_reads_is_paused_not_buffered() {
    const LEN: usize = 16 * 1024;
    const COUNT: usize = 50 * 64; // 50 MiB of payload
    let options = Options::default();
    let high = options.read_high_water;
    // One read (64 KiB) may complete a request begun in the previous one.
    let bound = high + 64 * 1024 + LEN + 64;
    let handler = Echo::default();
    let max_queued = handler.max_queued.clone();
    let server = LoopServer::start(options, handler);

    let (abusive, _) = common::raw_connect_with(server.addr, "/abuse", &[]).await;
    let (mut good, _) = common::raw_connect_with(server.addr, "/good", &[]).await;
    let requests = echo_requests(COUNT, LEN);
    let written = write_until_blocked(&abusive, &requests).await;
    println!("the client wrote {written} of {} bytes before its writes blocked", requests.len());
    assert!(written < requests.len(), "the server read all {written} bytes: no back-pressure");

    // The server is not reading it, and holds little for it.
    let state = status_until(&mut good, "paused", |s| field(s, "paused") == "true").await;
    let queued: usize = field(&state, "queued").parse().unwrap();
    assert!(queued <= bound, "{queued} bytes queued, bound {bound}");
    // The other client keeps being served.
    for i in 0..10 {
        let m = payload(i, 1000);
        good.write_all(&client_frame(true, OP_BINARY, &m)).await.unwrap();
        assert_eq!(common::expect_frame(&mut good).await.payload, m);
    }

    // Now it reads: every reply arrives, in order, while it writes the rest.
    let (mut rd, mut wr) = abusive.into_split();
    let rest = requests[written..].to_vec();
    let writer = tokio::spawn(async move {
        wr.write_all(&rest).await.unwrap();
        wr
    });
    let read_all = async {
        for i in 0..COUNT {
            let f = read_frame(&mut rd).await.expect("an echo");
            assert!(f.opcode == OP_BINARY && f.payload == payload(i, LEN), "echo {i} differs");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_all).await.expect("every echo within 120 s");
    let _wr = writer.await.unwrap();
    let max = max_queued.load(Ordering::Relaxed);
    println!("largest queued output of the abusive connection: {max} bytes (bound {bound})");
    assert!(max <= bound, "queued output reached {max} bytes, bound {bound}");
    drop(server);
}

/// A paused connection is not wedged: the application can still close it,
/// and a peer that neither reads nor answers is dropped after the close
/// timeout, which frees its slot; the other clients are served throughout.
#[tokio::test]
async fn paused_connection_can_still_be_closed_and_leaves() {
    let config = Config { close_timeout: Duration::from_millis(300), ..Config::default() };
    let server = LoopServer::start(Options { config, ..Options::default() }, Echo::default());
    let (abusive, _) = common::raw_connect_with(server.addr, "/abuse", &[]).await;
    let (mut good, _) = common::raw_connect_with(server.addr, "/good", &[]).await;
    let requests = echo_requests(50 * 64, 16 * 1024);
    let written = write_until_blocked(&abusive, &requests).await;
    assert!(written < requests.len(), "the server read all {written} bytes: no back-pressure");
    status_until(&mut good, "paused", |s| field(s, "paused") == "true").await;

    assert_eq!(ask(&mut good, "kick").await, "kicked=true");
    let kicked = Instant::now();
    let state = status_until(&mut good, "the kicked connection leaves", |s| field(s, "conns") == "1").await;
    assert_eq!(field(&state, "open"), "false", "{state}");
    assert!(kicked.elapsed() >= Duration::from_millis(250), "left before the close timeout: {:?}", kicked.elapsed());
    let m = payload(7, 100);
    good.write_all(&client_frame(true, OP_BINARY, &m)).await.unwrap();
    assert_eq!(common::expect_frame(&mut good).await.payload, m);
    drop(abusive);
    drop(server);
}

/// The loop walked a poll's events with `events.iter().nth(i)` (quadratic).
/// 1,500 connections that all send at once: one `epoll_wait` (with room for
/// 2,048 events) reports more than 1,024 of them, and every one is echoed.
#[test]
fn more_than_1024_ready_connections_in_one_poll_are_all_served() {
    const CONNS: usize = 1500;
    const BATCH: usize = 100;
    // Both ends of every connection are in this process.
    common::shared::ensure_descriptors(2 * CONNS as u64 + 100);
    let options = Options { events: 2048, ..Options::default() };
    let mut lp: EventLoop<Echo> = EventLoop::bind("127.0.0.1:0".parse().unwrap(), options).unwrap();
    let addr = lp.local_addr().unwrap();
    let mut handler = Echo::default();
    let give_up = Instant::now() + Duration::from_secs(60);

    // The handshakes, in batches (the loop runs on this thread).
    let mut clients: Vec<std::net::TcpStream> = Vec::with_capacity(CONNS);
    while clients.len() < CONNS {
        let batch = clients.len()..clients.len() + BATCH;
        for _ in batch.clone() {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            tcp.write_all(upgrade_request("/", &[]).as_bytes()).unwrap();
            clients.push(tcp);
        }
        while handler.opened < batch.end {
            assert!(Instant::now() < give_up, "only {} connections opened", handler.opened);
            lp.run_once(&mut handler, Some(Duration::from_millis(50))).unwrap();
        }
        for tcp in &mut clients[batch] {
            let head = common::read_head_blocking(tcp);
            assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        }
    }

    // Every client sends one message; then the loop runs.
    for (i, tcp) in clients.iter_mut().enumerate() {
        tcp.write_all(&client_frame(true, OP_TEXT, format!("m{i}").as_bytes())).unwrap();
    }
    let mut most_in_one_poll = 0;
    while handler.messages < CONNS {
        assert!(Instant::now() < give_up, "only {} messages served", handler.messages);
        let before = handler.messages;
        lp.run_once(&mut handler, Some(Duration::from_millis(50))).unwrap();
        most_in_one_poll = most_in_one_poll.max(handler.messages - before);
    }
    println!("most messages served in one iteration: {most_in_one_poll}");
    assert!(most_in_one_poll > 1024, "at most {most_in_one_poll} connections were ready in one poll");
    common::expect_numbered_echoes(&mut clients);
}

/// `Options` keeps the back-pressure marks it documents.
#[test]
fn back_pressure_defaults_are_as_documented() {
    let o = Options::default();
    assert_eq!((o.read_high_water, o.read_low_water, o.events), (64 << 10, 16 << 10, 1024));
}
