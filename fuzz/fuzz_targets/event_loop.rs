//! Fuzzes the mio event loop (`simples_ws::event_loop`, feature `mio`) over
//! real loopback sockets: the input is a program of client operations
//! (connect, write a handshake, raw bytes or masked frames, read, half-close,
//! close, reset, run one loop iteration, stop gracefully) against a fresh
//! `EventLoop` and a handler that echoes, broadcasts, closes and sends to
//! other connections as the messages ask. Only the loop's public API is used.
//!
//! Input layout: a sequence of operations, each an opcode byte followed by
//! its arguments (missing bytes read as 0). `i` is a client, taken modulo
//! the number of clients (operations on clients do nothing while there is
//! none):
//!
//! | opcode % 12 | operation | arguments |
//! | --- | --- | --- |
//! | 0 | connect a new client (at most 8 at once) | |
//! | 1 | write an opening handshake | `i`, `v`: path `v % 6` of `PATHS`, bit 3: offer the `chat` subprotocol |
//! | 2 | write raw bytes | `i`, `n`, then `n` bytes |
//! | 3 | write one masked frame | `i`, `b0` (FIN, RSV, opcode as is), `n`: payload of `n` bytes from the input for `n < 250`, else `(n - 249) * 4 KiB` of `'x'` |
//! | 4 | read what the client has received | `i` |
//! | 5 | half-close (`shutdown(Write)`) | `i` |
//! | 6 | reset: `SO_LINGER` 0, then close | `i` |
//! | 7 | close | `i` |
//! | 8 | run `k % 4 + 1` loop iterations, no waiting | `k` |
//! | 9 | flood: `n * 16` small masked text frames, without reading | `i`, `n` |
//! | 10 | one loop iteration that may wait 1 ms (timers; at most 4 per input) | |
//! | 11 | graceful stop: `Handle::shutdown(2 ms)` and `EventLoop::run`; ends the program | |
//!
//! The handler reads the first byte of each data message: `b` broadcasts
//! it to every open connection, `c` closes the sender (4000), `k` closes
//! another connection (the one picked by the second byte), `s` sends it to
//! another connection, `p` sends it prepared, `q` sends the sender a
//! message of `second byte * 256` bytes; anything else is echoed.
//! Paths: `/reject` is refused (403), `/bad-proto` is accepted with a
//! subprotocol the client did not offer (500, with `on_close`), `/small`
//! gets a 64-byte message limit, `/timers` a 1 ms ping interval, 4 ms idle
//! timeout and 2 ms close timeout.
//!
//! Checked:
//! - no panic (debug assertions and overflow checks are on);
//! - `on_close` exactly once for each connection `on_open` accepted, never
//!   for another; `on_message` only between them; sends to a connection
//!   are refused inside its `on_open` and after its `on_close`;
//! - what any connection has queued stays under `max_queued` plus one
//!   message and a few control frames (the back-pressure and queue limits);
//!   `broadcast` counts at most the open connections;
//! - every client's received bytes are an HTTP response (101, or a 4xx; a
//!   500 only for `/bad-proto`, a 503 only after the stop) followed, after a
//!   101, by a valid server frame stream (parsed by a client `Protocol`):
//!   nothing after the server's close frame, text is UTF-8;
//! - once every client is closed, the loop's connection count returns to 0
//!   (and every accepted connection got its `on_close`);
//! - the loop keeps serving: a fresh client then completes a handshake and
//!   an echo, and after its closing handshake the count is 0 again;
//! - after the graceful stop, no connection is left.

#![no_main]

use libfuzzer_sys::fuzz_target;
use simples_ws::event_loop::{Accept, CloseReason, ConnId, Ctx, EventLoop, EventHandler, Options, Request};
use simples_ws::handshake::server::reject;
use simples_ws::handshake::HandshakeError;
use simples_ws::{CloseCode, Config, Message, PreparedFrame, Protocol, Role};
use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

const MAX_CLIENTS: usize = 8;
const MAX_MESSAGE: usize = 16 << 10;
const MAX_QUEUED: usize = 32 << 10;
/// The protocol stops queueing pongs past this backlog (`recv::PONG_BACKLOG`).
const PONG_BACKLOG: usize = 64 << 10;
/// Largest message a handler sends (`q` with second byte 255).
const MAX_SENT: usize = 255 * 256;
/// What a connection may have queued: a send is refused once the output
/// reaches `max_queued` (so one message may go over it), broadcasts go over
/// it only into an empty output (one frame), pongs stop at the pong
/// backlog; plus the 101 response and a few control frames.
const QUEUE_BOUND: usize = (if MAX_QUEUED > PONG_BACKLOG { MAX_QUEUED } else { PONG_BACKLOG }) + MAX_SENT + 14 + 4 * 131 + 1024;
/// How many loop iterations the final checks wait for (normally a few
/// suffice: loopback delivery is synchronous; after the first 8 each may
/// wait 1 ms, so this is at least 3 s for the timers). Counted, not timed:
/// an input flooding the loop with thousands of frames takes ~70 ms of CPU
/// per iteration with ASan, and a fuzzer starved of CPU (niced beside a
/// build) failed a 3 s wall-clock limit in 4 iterations, a false report.
const PATIENCE: usize = 3000;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const PATHS: [&str; 6] = ["/", "/reject", "/bad-proto", "/small", "/timers", "/echo?x=1"];

#[derive(Default)]
struct State {
    /// Connections `on_open` accepted whose `on_close` has not come yet.
    open: HashSet<ConnId>,
    opened: usize,
    closed: usize,
}

/// The handler; shared with the program (`EventLoop::run` takes it by value).
#[derive(Clone, Default)]
struct Probe(Rc<RefCell<State>>);

/// Every open connection's queue is within the bound.
fn check_queues(ctx: &mut Ctx<'_>) {
    let mut ids = Vec::new();
    ctx.for_each(|_, id| ids.push(id));
    for id in ids {
        if let Some(q) = ctx.queued(id) {
            assert!(q <= QUEUE_BOUND, "connection {id:?} has {q} bytes queued (bound {QUEUE_BOUND})");
        }
    }
}

fn others(ctx: &mut Ctx<'_>, me: ConnId) -> Vec<ConnId> {
    let mut ids = Vec::new();
    ctx.for_each(|_, id| {
        if id != me {
            ids.push(id)
        }
    });
    ids
}

impl EventHandler for Probe {
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<Accept, HandshakeError> {
        assert!(!ctx.is_open(id), "open inside its own on_open");
        assert!(!ctx.send(id, Message::text("early")), "a send inside on_open was accepted");
        let mut accept = Accept::default();
        match req.path() {
            "/reject" => return Err(reject(403, "refused by the fuzz handler")),
            "/bad-proto" => accept.protocol = Some("not-offered".into()),
            "/small" => accept.config = Some(Config { max_message_size: 64, max_frame_size: 64, ..config() }),
            "/timers" => {
                accept.config = Some(Config {
                    ping_interval: Some(Duration::from_millis(1)),
                    idle_timeout: Some(Duration::from_millis(4)),
                    close_timeout: Duration::from_millis(2),
                    ..config()
                })
            }
            _ => accept.protocol = req.select_protocol(&["chat"]).map(str::to_owned),
        }
        let mut st = self.0.borrow_mut();
        assert!(st.open.insert(id), "on_open twice for {id:?}");
        st.opened += 1;
        Ok(accept)
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        assert!(self.0.borrow().open.contains(&id), "on_message for {id:?}, not open");
        if msg.is_data() {
            let payload = msg.payload();
            let arg = payload.get(1).copied().unwrap_or(0);
            match payload.first() {
                Some(b'b') => {
                    let frame = PreparedFrame::new(&msg).expect("prepared frame");
                    let open = ctx.connections();
                    let r = ctx.broadcast(&frame, |_| true);
                    assert!(r.sent + r.dropped <= open, "broadcast counted {r:?} with {open} connections");
                }
                Some(b'c') => {
                    ctx.close(id, CloseCode(4000), "asked to");
                    assert!(!ctx.send(id, Message::text("after close")), "a send after close was accepted");
                }
                Some(b'k') => {
                    let o = others(ctx, id);
                    if !o.is_empty() {
                        ctx.close(o[usize::from(arg) % o.len()], CloseCode(4001), "closed by another");
                    }
                }
                Some(b's') => {
                    let o = others(ctx, id);
                    if !o.is_empty() {
                        ctx.send(o[usize::from(arg) % o.len()], msg);
                    }
                }
                Some(b'p') => {
                    let frame = PreparedFrame::new(&msg).expect("prepared frame");
                    ctx.send_prepared(id, &frame);
                }
                Some(b'q') => {
                    ctx.send(id, Message::binary(vec![b'q'; usize::from(arg) * 256]));
                }
                _ => {
                    ctx.send(id, msg);
                }
            }
        }
        check_queues(ctx);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        let _ = reason;
        {
            let mut st = self.0.borrow_mut();
            assert!(st.open.remove(&id), "on_close twice or without on_open for {id:?}");
            st.closed += 1;
        }
        assert!(!ctx.is_open(id), "open inside its own on_close");
        assert!(!ctx.send(id, Message::text("late")), "a send after on_close was accepted");
        check_queues(ctx);
    }
}

fn config() -> Config {
    Config { max_message_size: MAX_MESSAGE, max_frame_size: MAX_MESSAGE, ..Config::default() }
}

/// A client socket and what it has received, parsed as the server's
/// response and frame stream.
struct Client {
    stream: TcpStream,
    /// Everything written (to tell which responses are allowed).
    written: Vec<u8>,
    /// Received bytes not parsed yet.
    pending: Vec<u8>,
    /// The status of the server's response head, once complete.
    status: Option<u16>,
    /// After a 101: the client side of the protocol.
    proto: Option<Protocol>,
    /// Text messages received (for the final echo check).
    texts: Vec<String>,
    /// The server's close frame was received.
    close_seen: bool,
    /// The peer ended the stream (read returned 0 or failed).
    gone: bool,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the loop");
        stream.set_nonblocking(true).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            written: Vec::new(),
            pending: Vec::new(),
            status: None,
            proto: None,
            texts: Vec::new(),
            close_seen: false,
            gone: false,
        }
    }

    /// Writes what the socket takes of `data` (non-blocking).
    fn write(&mut self, data: &[u8]) {
        let mut at = 0;
        while at < data.len() {
            match self.stream.write(&data[at..]) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break, // WouldBlock, or the server is gone
            }
        }
        self.written.extend_from_slice(&data[..at]);
    }

    fn handshake(&mut self, path: &str, chat: bool) {
        let protocol = if chat { "Sec-WebSocket-Protocol: chat\r\n" } else { "" };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n"
        );
        self.write(req.as_bytes());
    }

    /// Reads everything available and checks it.
    fn absorb(&mut self, stopped: bool) {
        let mut buf = [0u8; 16 << 10];
        while !self.gone {
            match self.stream.read(&mut buf) {
                Ok(0) => self.gone = true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => self.gone = true, // reset
            }
        }
        self.parse(stopped);
    }

    fn parse(&mut self, stopped: bool) {
        if self.status.is_none() {
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                assert!(self.pending.len() < 4096, "no end of the response head in {} bytes", self.pending.len());
                return;
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            let status: u16 = head
                .strip_prefix("HTTP/1.1 ")
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {head:?}"));
            let bad_proto = self.written.windows(10).any(|w| w == b"/bad-proto");
            match status {
                101 => {
                    let mut cfg = Config::default();
                    cfg.max_message_size = 1 << 20;
                    self.proto = Some(Protocol::new(Role::Client, cfg));
                }
                400 | 403 | 405 | 426 | 431 => {}
                500 if bad_proto => {}
                503 if stopped => {}
                s => panic!("unexpected response status {s}: {head:?}"),
            }
            self.status = Some(status);
            self.pending.drain(..end + 4);
        }
        let Some(p) = &mut self.proto else {
            self.pending.clear(); // an error response's body
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        assert!(!self.close_seen, "{} bytes after the server's close frame", self.pending.len());
        p.receive(&self.pending);
        self.pending.clear();
        loop {
            match p.poll_message() {
                Ok(Some(Message::Text(t))) => {
                    if self.texts.len() < 16 {
                        self.texts.push(t.as_str().to_owned());
                    }
                }
                Ok(Some(Message::Close(_))) => self.close_seen = true,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("the server's frame stream is invalid: {e:?}"),
            }
        }
        let _ = p.output().take_all(); // our pongs and close replies: not sent
    }

    fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }
}

/// A masked client frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

struct Program<'a> {
    data: &'a [u8],
}

impl Program<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
}

/// Runs the loop until `done` holds (checked after each iteration), waiting
/// at most 1 ms per iteration and `PATIENCE` iterations in all.
fn run_until(lp: &mut EventLoop<Probe>, h: &mut Probe, what: &str, mut done: impl FnMut(&mut EventLoop<Probe>) -> bool) {
    let start = Instant::now();
    let mut spins = 0;
    while !done(lp) {
        assert!(spins < PATIENCE, "the loop did not get there in {spins} iterations ({:?}): {what}", start.elapsed());
        let wait = if spins < 8 { Duration::ZERO } else { Duration::from_millis(1) };
        lp.run_once(h, Some(wait)).expect("run_once");
        spins += 1;
    }
}

fn run(data: &[u8]) {
    static SIGPIPE: std::sync::Once = std::sync::Once::new();
    // A Rust `main` ignores SIGPIPE; libFuzzer's does not, and the loop's
    // `writev` to a reset peer would kill the process.
    SIGPIPE.call_once(|| unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    });
    let options = Options {
        protocols: vec!["chat".into()],
        config: config(),
        max_queued: MAX_QUEUED,
        read_high_water: 8 << 10,
        read_low_water: 2 << 10,
        events: 16,
        ..Options::default()
    };
    let mut lp: EventLoop<Probe> = EventLoop::bind("127.0.0.1:0".parse().unwrap(), options).expect("bind");
    let addr = lp.local_addr().unwrap();
    let mut h = Probe::default();
    let mut clients: Vec<Client> = Vec::new();
    let mut prog = Program { data };
    let mut waits = 0;
    let mut stopped = false;

    while !prog.data.is_empty() && !stopped {
        let op = prog.byte() % 12;
        if op == 0 {
            if clients.len() < MAX_CLIENTS {
                clients.push(Client::connect(addr));
            }
            continue;
        }
        match op {
            8 => {
                for _ in 0..prog.byte() % 4 + 1 {
                    lp.run_once(&mut h, Some(Duration::ZERO)).expect("run_once");
                }
                continue;
            }
            10 => {
                if waits < 4 {
                    waits += 1;
                    lp.run_once(&mut h, Some(Duration::from_millis(1))).expect("run_once");
                }
                continue;
            }
            11 => {
                let handle = lp.handle();
                handle.shutdown(Duration::from_millis(2));
                lp.run(h.clone()).expect("run (graceful stop)");
                stopped = true;
                continue;
            }
            _ => {}
        }
        let i = usize::from(prog.byte());
        if clients.is_empty() {
            continue;
        }
        let i = i % clients.len();
        match op {
            1 => {
                let v = prog.byte();
                clients[i].handshake(PATHS[usize::from(v % 6)], v & 8 != 0);
            }
            2 => {
                let n = usize::from(prog.byte());
                let bytes = prog.bytes(n).to_vec();
                clients[i].write(&bytes);
            }
            3 => {
                let b0 = prog.byte();
                let n = prog.byte();
                let payload = if n < 250 { prog.bytes(usize::from(n)).to_vec() } else { vec![b'x'; usize::from(n - 249) * 4096] };
                clients[i].write(&frame(b0, &payload));
            }
            4 => clients[i].absorb(false),
            5 => {
                let _ = clients[i].stream.shutdown(Shutdown::Write);
            }
            6 => clients.swap_remove(i).reset(),
            7 => drop(clients.swap_remove(i)),
            9 => {
                let n = usize::from(prog.byte()) * 16;
                let mut burst = Vec::with_capacity(n * 8);
                for _ in 0..n {
                    burst.extend_from_slice(&frame(0x81, b"fl"));
                }
                clients[i].write(&burst);
            }
            _ => unreachable!(),
        }
    }

    // What every client received so far must be valid.
    if !stopped {
        lp.run_once(&mut h, Some(Duration::ZERO)).expect("run_once");
    }
    for c in &mut clients {
        c.absorb(stopped);
    }
    if stopped {
        assert_eq!(lp.connections(), 0, "connections left after the graceful stop");
        assert!(h.0.borrow().open.is_empty(), "on_close missing after the graceful stop");
        return;
    }

    // Every client leaves: the loop must forget them all.
    drop(clients);
    run_until(&mut lp, &mut h, "every connection gone after the clients closed", |lp| lp.connections() == 0);
    assert!(h.0.borrow().open.is_empty(), "on_close missing: {:?}", h.0.borrow().open);

    // It keeps serving: a well-behaved client's handshake and echo.
    let mut c = Client::connect(addr);
    c.handshake("/", false);
    c.write(&frame(0x81, b"echo check"));
    run_until(&mut lp, &mut h, "the fresh client's echo", |_| {
        c.absorb(false);
        c.texts.iter().any(|t| t == "echo check") || c.gone
    });
    assert_eq!(c.status, Some(101));
    assert!(c.texts.iter().any(|t| t == "echo check"), "no echo for the fresh client");
    c.write(&frame(0x88, &1000u16.to_be_bytes()));
    run_until(&mut lp, &mut h, "the fresh client's closing handshake", |_| {
        c.absorb(false);
        c.close_seen || c.gone
    });
    assert!(c.close_seen, "no close frame for the fresh client");
    drop(c);
    run_until(&mut lp, &mut h, "the fresh client gone", |lp| lp.connections() == 0);
    let st = h.0.borrow();
    assert!(st.open.is_empty() && st.opened == st.closed, "on_open/on_close mismatch: {} / {}", st.opened, st.closed);
}

fuzz_target!(|data: &[u8]| run(data));
