//! The mio event loop's graceful shutdown over real sockets: under load,
//! every connection gets the replies already queued and then a close frame
//! with 1001; the closing handshakes complete; new clients are refused; a
//! peer that never answers is dropped at the deadline.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_shutdown`.

mod common;

use common::{client_frame, close_payload, read_frame, LoopServer, OP_CLOSE, OP_TEXT};
use simples_ws::event_loop::{Accept, CloseReason, ConnId, Ctx, EventHandler, Options, Request};
use simples_ws::handshake::HandshakeError;
use simples_ws::{Message, PreparedFrame};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server did for one client (named by its path, `/c<n>`).
#[derive(Debug)]
struct Closed {
    name: String,
    /// Echoes queued (`Ctx::send` returned true).
    answered: usize,
    /// Messages that came after the close frame was queued (not echoed).
    refused: usize,
    reason: String,
}

/// Echoes every text message and reports, at `on_close`, what it did.
struct Echo {
    conns: HashMap<ConnId, Closed>,
    closes: mpsc::Sender<Closed>,
}

impl EventHandler for Echo {
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<Accept, HandshakeError> {
        let closed = Closed { name: req.path().to_owned(), answered: 0, refused: 0, reason: String::new() };
        self.conns.insert(id, closed);
        Ok(Accept::default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if !msg.is_data() {
            return;
        }
        let c = self.conns.get_mut(&id).expect("a message after on_close");
        if ctx.send(id, msg) {
            c.answered += 1;
        } else {
            c.refused += 1;
        }
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        let mut c = self.conns.remove(&id).expect("on_close twice or without on_open");
        c.reason = match reason {
            CloseReason::Closed(Some(f)) => format!("closed {}", f.code.0),
            CloseReason::Io(e) => format!("io {:?}", e.kind()),
            other => format!("{other:?}"),
        };
        let _ = self.closes.send(c);
    }
}

fn start(options: Options) -> (LoopServer, mpsc::Receiver<Closed>) {
    let (tx, rx) = mpsc::channel();
    (LoopServer::start(options, Echo { conns: HashMap::new(), closes: tx }), rx)
}

/// One client under load: sends `m0`, `m1`, ... as fast as the server
/// takes them and checks the echoes, in order, until the server's close
/// frame, which it answers. Returns the echoes received and the close code.
async fn busy_client(addr: std::net::SocketAddr, name: String) -> (usize, u16) {
    let (tcp, _) = common::raw_connect_with(addr, &name, &[]).await;
    let (mut rd, mut wr) = tcp.into_split();
    let closing = Arc::new(AtomicBool::new(false));
    let stop = closing.clone();
    let writer = tokio::spawn(async move {
        let mut n = 0usize;
        while !stop.load(Ordering::Acquire) {
            if wr.write_all(&client_frame(true, OP_TEXT, format!("m{n}").as_bytes())).await.is_err() {
                return;
            }
            n += 1;
            if n % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // RFC 6455 §5.5.1: answer the close frame with one.
        let _ = wr.write_all(&client_frame(true, OP_CLOSE, &close_payload(1001, b""))).await;
    });
    let mut echoes = 0usize;
    let code = loop {
        let f = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut rd)).await.expect("a frame").expect("read");
        match f.opcode {
            OP_TEXT => {
                assert_eq!(f.payload, format!("m{echoes}").as_bytes(), "{name}: echo {echoes} out of order");
                echoes += 1;
            }
            OP_CLOSE => break f.close_code().expect("a close code"),
            other => panic!("{name}: unexpected opcode {other}"),
        }
    };
    closing.store(true, Ordering::Release);
    writer.await.unwrap();
    // The server ends the TCP connection after the closing handshake.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut rest)).await.expect("EOF");
    (echoes, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_answers_what_it_accepted_then_closes_with_1001() {
    const CLIENTS: usize = 20;
    let (server, closes) = start(Options::default());
    let clients: Vec<_> = (0..CLIENTS).map(|i| tokio::spawn(busy_client(server.addr, format!("/c{i}")))).collect();
    // Let the load build up (every client echoed at least once).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    server.handle.shutdown(Duration::from_secs(5));

    let mut received = HashMap::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (echoes, code) = c.await.unwrap();
        assert_eq!(code, 1001, "client {i}");
        received.insert(format!("/c{i}"), echoes);
    }
    assert!(server.ended_within(Duration::from_secs(5)).await, "run did not return");
    println!("shutdown took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4), "the closing handshakes did not complete: {:?}", started.elapsed());
    let mut refused = 0;
    for _ in 0..CLIENTS {
        let c = closes.recv_timeout(Duration::from_secs(1)).expect("an on_close per client");
        // Every echo the server queued reached its client: nothing lost.
        assert!(c.answered > 0, "{c:?}: no load before the shutdown");
        assert_eq!(c.answered, received[&c.name], "{c:?}");
        assert_eq!(c.reason, "closed 1001", "{c:?}");
        refused += c.refused;
    }
    println!("messages that arrived after the close frame: {refused}");
    // The listening socket is closed.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err(), "a new client was accepted");
}

#[tokio::test]
async fn shutdown_deadline_drops_a_silent_peer_and_refuses_a_handshake_in_progress() {
    let (server, closes) = start(Options::default());
    // Open, but never reads or answers (the close timeout, 5 s, is longer
    // than the deadline).
    let (silent, _) = common::raw_connect_with(server.addr, "/silent", &[]).await;
    // Half a request head.
    let mut handshaking = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    handshaking.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    server.handle.shutdown(Duration::from_millis(300));
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), handshaking.read_to_end(&mut answer)).await.expect("EOF").unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(server.ended_within(Duration::from_secs(3)).await, "run did not return");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");
    let c = closes.recv_timeout(Duration::from_secs(1)).expect("on_close for the silent peer");
    assert_eq!((c.name.as_str(), c.reason.as_str()), ("/silent", "io TimedOut"), "{c:?}");
    drop(silent);
}

/// Filler of every burst message, so a burst is far larger than what the
/// kernel's socket buffers can hold.
const PAD: usize = 200;

/// What one connection's [`Burst`] queued, reported at `on_close`.
#[derive(Debug)]
struct Queued {
    name: String,
    unicast: u64,
    broadcast: u64,
    reason: String,
}

/// Answers `go N` with N numbered messages (`u 0 ...`) queued at once, and
/// after every 50th a broadcast (`b k ...`, one `PreparedFrame` queued on
/// every connection). Counts, per connection, what was accepted.
struct Burst {
    conns: HashMap<ConnId, Queued>,
    broadcasts: u64,
    bursts: mpsc::Sender<String>,
    closes: mpsc::Sender<Queued>,
}

impl EventHandler for Burst {
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<Accept, HandshakeError> {
        let q = Queued { name: req.path().to_owned(), unicast: 0, broadcast: 0, reason: String::new() };
        self.conns.insert(id, q);
        Ok(Accept::default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        let Message::Text(t) = msg else { return };
        let n: u64 = t.as_str().strip_prefix("go ").expect("go N").parse().unwrap();
        let pad = "x".repeat(PAD);
        for i in 0..n {
            let q = self.conns.get_mut(&id).unwrap();
            assert!(ctx.send(id, Message::text(format!("u {} {pad}", q.unicast))), "{}: u {} refused", q.name, q.unicast);
            q.unicast += 1;
            if i % 50 == 49 {
                let frame = PreparedFrame::new(&Message::text(format!("b {} {pad}", self.broadcasts))).unwrap();
                let mut to = Vec::new();
                let sent = ctx.broadcast(&frame, |c| {
                    to.push(c);
                    true
                });
                // max_queued is far above the bursts: nothing is skipped, so
                // each connection the filter was asked about queued it.
                assert_eq!((sent.sent, sent.dropped), (to.len(), 0));
                for c in to {
                    self.conns.get_mut(&c).unwrap().broadcast += 1;
                }
                self.broadcasts += 1;
            }
        }
        let _ = self.bursts.send(self.conns[&id].name.clone());
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        let mut q = self.conns.remove(&id).expect("on_close without on_open");
        q.reason = match reason {
            CloseReason::Closed(Some(f)) => format!("closed {}", f.code.0),
            CloseReason::Io(e) => format!("io {:?}", e.kind()),
            other => format!("{other:?}"),
        };
        let _ = self.closes.send(q);
    }
}

/// The clients' receive buffer (SO_RCVBUF, set before connecting: the
/// kernel doubles it and does not autotune it).
const RCVBUF: usize = 64 * 1024;

/// The most the kernel can hold for one loopback connection: the server's
/// largest send buffer (/proc/sys/net/ipv4/tcp_wmem: the autotuning
/// maximum is the third field) and the client's fixed receive buffer.
fn kernel_buffer_max() -> usize {
    let f = "/proc/sys/net/ipv4/tcp_wmem";
    let s = std::fs::read_to_string(f).expect(f);
    let wmem: usize = s.split_whitespace().nth(2).expect(f).parse().expect(f);
    wmem + 2 * RCVBUF
}

/// A completed handshake to `path` from a socket with a `RCVBUF` receive
/// buffer.
async fn small_buffer_client(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(RCVBUF as u32).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(common::upgrade_request(path, &[]).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1, "EOF in the 101 head");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// Reads frames until the server's close frame, checking both streams:
/// `u` numbered 0, 1, 2... with no gap, `b` increasing. Answers the close.
/// Returns (u received, b received, close code).
async fn drain_client(mut tcp: tokio::net::TcpStream, name: String, slow: bool) -> (u64, u64, u16) {
    let (mut unicast, mut broadcast, mut last_b) = (0u64, 0u64, None::<u64>);
    let code = loop {
        let f = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut tcp))
            .await
            .unwrap_or_else(|_| panic!("{name}: stalled after {unicast} + {broadcast}"))
            .unwrap_or_else(|e| panic!("{name}: connection lost after {unicast} + {broadcast} frames, before the close frame: {e}"));
        match f.opcode {
            OP_TEXT => {
                let t = String::from_utf8(f.payload).unwrap();
                let mut parts = t.splitn(3, ' ');
                let (kind, seq) = (parts.next().unwrap(), parts.next().unwrap().parse::<u64>().unwrap());
                assert_eq!(parts.next().map(str::len), Some(PAD), "{name}: {kind} {seq} truncated");
                match kind {
                    "u" => {
                        assert_eq!(seq, unicast, "{name}: u message out of order or lost");
                        unicast += 1;
                    }
                    "b" => {
                        assert!(last_b.map_or(true, |l| seq > l), "{name}: b {seq} after b {last_b:?}");
                        last_b = Some(seq);
                        broadcast += 1;
                    }
                    other => panic!("{name}: unexpected {other:?}"),
                }
                if slow && (unicast + broadcast) % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            OP_CLOSE => break f.close_code().expect("a close code"),
            other => panic!("{name}: unexpected opcode {other}"),
        }
    };
    let _ = tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(code, b""))).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await.expect("EOF after the close");
    (unicast, broadcast, code)
}

/// Clients that ask for a burst larger than twice what the kernel can
/// buffer, then read nothing until the shutdown has begun: the loop holds
/// most of each burst, and the 1001 is queued behind it. Every message
/// `Ctx::send` / `Ctx::broadcast` accepted must arrive, in order, before
/// the 1001; `slow`: the clients read slowly, so that draining takes longer
/// than the close timeout (`close_timeout`): the close timeout runs from
/// the last write, not from when the 1001 was queued (it used to, and cut
/// such clients off mid-backlog).
async fn shutdown_with_backlog(slow: bool, close_timeout: Duration) {
    const CLIENTS: usize = 3;
    let per_msg = PAD + 12;
    let burst = (2 * kernel_buffer_max() / per_msg) as u64;
    let options = Options {
        max_queued: 1 << 30,
        config: simples_ws::Config { close_timeout, ..simples_ws::Config::default() },
        ..Options::default()
    };
    let (tx_bursts, bursts) = mpsc::channel();
    let (tx_closes, closes) = mpsc::channel();
    let handler = Burst { conns: HashMap::new(), broadcasts: 0, bursts: tx_bursts, closes: tx_closes };
    let server = LoopServer::start(options, handler);
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let name = format!("/c{i}");
        let mut tcp = small_buffer_client(server.addr, &name).await;
        tcp.write_all(&client_frame(true, OP_TEXT, format!("go {burst}").as_bytes())).await.unwrap();
        clients.push((name, tcp));
    }
    for _ in 0..CLIENTS {
        bursts.recv_timeout(Duration::from_secs(20)).expect("every burst queued");
    }
    // Let the loop write what the kernel takes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.handle.shutdown(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let readers: Vec<_> = clients.into_iter().map(|(name, tcp)| tokio::spawn(drain_client(tcp, name.clone(), slow))).collect();
    let mut received = HashMap::new();
    for (i, r) in readers.into_iter().enumerate() {
        let (u, b, code) = r.await.unwrap();
        assert_eq!(code, 1001, "client {i}");
        received.insert(format!("/c{i}"), (u, b));
    }
    let drained = started.elapsed();
    if slow {
        // The case this checks: reading the backlog took longer than the
        // close timeout, counted from when the 1001 was queued.
        assert!(drained > 2 * close_timeout, "the slow clients read everything in {drained:?}");
    }
    assert!(server.ended_within(Duration::from_secs(10)).await, "run did not return");
    let took = started.elapsed();
    for _ in 0..CLIENTS {
        let q = closes.recv_timeout(Duration::from_secs(1)).expect("an on_close per client");
        assert_eq!(q.unicast, burst, "{q:?}");
        assert_eq!((q.unicast, q.broadcast), received[&q.name], "{q:?}: queued vs received (u, b)");
        // A slow client may answer the 1001 more than the close timeout
        // after the loop's last write: that write only filled the kernel's
        // send buffer (up to tcp_wmem's maximum), which the client still
        // had to read. What it was owed had all reached it (checked above).
        let timed_out_after_delivery = slow && q.reason == "Failed(CloseTimeout)";
        assert!(q.reason == "closed 1001" || timed_out_after_delivery, "{q:?}");
    }
    println!("burst {burst} x {per_msg} B per client, shutdown took {took:?} (slow: {slow}, close timeout {close_timeout:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_a_backlog_larger_than_the_socket_buffers_before_1001() {
    shutdown_with_backlog(false, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_a_backlog_that_takes_longer_than_the_close_timeout_to_read() {
    shutdown_with_backlog(true, Duration::from_millis(300)).await;
}
