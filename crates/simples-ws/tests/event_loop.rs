//! The mio event loop (`simples_ws::event_loop`, feature `mio`) over real
//! sockets, with this crate's tokio client on the other side: echo,
//! handshake rejection, broadcast, a slow subscriber, the closing handshake
//! both ways, a peer vanishing mid-frame, the idle timeout.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop`.

use simples_ws::event_loop::{Accept, CloseReason, ConnId, Ctx, EventLoop, Handle, EventHandler, Options, Request};
use simples_ws::handshake::server::reject;
use simples_ws::handshake::HandshakeError;
use simples_ws::tokio::connect;
use simples_ws::{CloseCode, Config, Message, PreparedFrame, ProtocolError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STEP: Duration = Duration::from_secs(5);

async fn step<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(STEP, f).await.unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Echo,
    Sub,
    Pub,
}

/// What the test server saw.
#[derive(Debug)]
#[allow(dead_code)]
enum Ev {
    Open(ConnId, String),
    Close(ConnId, String),
}

struct TestHandler {
    roles: HashMap<ConnId, Role>,
    events: mpsc::Sender<Ev>,
    /// The slow subscriber of `slow_subscriber_is_dropped_not_waited_for`.
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    dropped: AtomicUsize,
    max_queued: AtomicUsize,
}

impl EventHandler for TestHandler {
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<Accept, HandshakeError> {
        if req.path() == "/reject" {
            return Err(reject(403, "not here"));
        }
        let role = match req.path() {
            "/sub" => Role::Sub,
            "/pub" => Role::Pub,
            _ => Role::Echo,
        };
        self.roles.insert(id, role);
        let _ = self.events.send(Ev::Open(id, req.path().to_owned()));
        let protocol = req.select_protocol(&["chat"]).map(str::to_owned);
        Ok(Accept { protocol, ..Accept::default() })
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if !msg.is_data() {
            return;
        }
        match self.roles[&id] {
            Role::Echo => match &msg {
                Message::Text(t) if t.as_str() == "close-me" => {
                    assert!(ctx.close(id, CloseCode(4000), "as asked"));
                }
                Message::Text(t) if t.as_str() == "count" => {
                    let n = ctx.connections();
                    ctx.send(id, Message::text(n.to_string()));
                }
                _ => {
                    assert!(ctx.send(id, msg));
                }
            },
            Role::Sub => {}
            Role::Pub => {
                let frame = PreparedFrame::new(&msg).unwrap();
                let roles = &self.roles;
                let r = ctx.broadcast(&frame, |c| roles.get(&c) == Some(&Role::Sub));
                self.stats.dropped.fetch_add(r.dropped, Ordering::Relaxed);
                let subs: Vec<ConnId> = roles.iter().filter(|(_, r)| **r == Role::Sub).map(|(c, _)| *c).collect();
                for c in subs {
                    let q = ctx.queued(c).unwrap_or(0);
                    self.stats.max_queued.fetch_max(q, Ordering::Relaxed);
                }
            }
        }
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        assert!(self.roles.remove(&id).is_some(), "on_close twice or without on_open");
        let what = match reason {
            CloseReason::Closed(Some(f)) => format!("closed {}", f.code.0),
            CloseReason::Closed(None) => "closed".to_owned(),
            CloseReason::Failed(e) => format!("failed {e:?}"),
            CloseReason::Io(e) => format!("io {e}"),
            CloseReason::Handshake(e) => format!("handshake {}", e.status()),
        };
        let _ = self.events.send(Ev::Close(id, what));
    }
}

struct Server {
    addr: SocketAddr,
    handle: Handle,
    thread: Option<std::thread::JoinHandle<()>>,
    events: mpsc::Receiver<Ev>,
    stats: Arc<Stats>,
}

impl Server {
    fn start(options: Options) -> Server {
        let mut lp: EventLoop<TestHandler> = EventLoop::bind("127.0.0.1:0".parse().unwrap(), options).unwrap();
        let addr = lp.local_addr().unwrap();
        let handle = lp.handle();
        let (tx, events) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let handler = TestHandler { roles: HashMap::new(), events: tx, stats: stats.clone() };
        let thread = std::thread::spawn(move || lp.run(handler).unwrap());
        Server { addr, handle, thread: Some(thread), events, stats }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The next close event (skipping opens), waiting up to `STEP`.
    fn next_close(&self) -> (ConnId, String) {
        let deadline = std::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left).expect("no on_close in time") {
                Ev::Close(id, what) => return (id, what),
                Ev::Open(..) => {}
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

#[tokio::test]
async fn echo_all_sizes_and_a_burst() {
    let server = Server::start(Options::default());
    let (mut ws, resp) = step("connect", connect(&server.url("/echo"))).await.unwrap();
    let _ = resp;
    for n in [0usize, 1, 125, 126, 65535, 65536, 1 << 20, 3 << 20] {
        let m = Message::binary(big(n));
        ws.send(m.clone()).await.unwrap();
        assert!(step("echo", ws.recv()).await.unwrap() == m, "{n} bytes");
        let t = Message::text("é".repeat(n / 2));
        ws.send(t.clone()).await.unwrap();
        assert!(step("echo", ws.recv()).await.unwrap() == t, "{n} text bytes");
    }
    // A burst: replies are corked and leave in few writes; order is kept.
    for i in 0..1000 {
        ws.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..1000 {
        assert_eq!(step("burst", ws.recv()).await.unwrap(), Message::text(format!("m{i}")));
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
    assert_eq!(server.next_close().1, "closed 1000");
}

async fn raw_handshake(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = step("response head", tcp.read(&mut b)).await.unwrap();
        if n == 0 {
            break;
        }
        head.push(b[0]);
    }
    (tcp, String::from_utf8(head).unwrap())
}

#[tokio::test]
async fn handshake_rejections_carry_their_status() {
    let server = Server::start(Options::default());
    // The application's refusal.
    let (mut tcp, head) = raw_handshake(server.addr, "/reject", "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let mut rest = Vec::new();
    step("EOF after rejection", tcp.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&rest), "not here\n");
    // A bad request: no version.
    let (_, head) = raw_handshake(server.addr, "/", "").await;
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    // A head over the limit.
    let huge = format!("X-Big: {}\r\nSec-WebSocket-Version: 13\r\n", "a".repeat(9000));
    let (_, head) = raw_handshake(server.addr, "/", &huge).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    // Accepted, with a subprotocol chosen by on_open.
    let (_, head) = raw_handshake(server.addr, "/", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x, chat\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Protocol: chat\r\n"), "{head}");
}

#[tokio::test]
async fn handshake_timeout_answers_408_or_400_and_closes() {
    let server = Server::start(Options { handshake_timeout: Duration::from_millis(200), ..Options::default() });
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut got = Vec::new();
    step("response and EOF", tcp.read_to_end(&mut got)).await.unwrap();
    assert!(got.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn broadcast_reaches_every_subscriber_once_in_order() {
    let server = Server::start(Options::default());
    const SUBS: usize = 20;
    const MSGS: usize = 200;
    let mut subs = Vec::new();
    for _ in 0..SUBS {
        subs.push(step("sub", connect(&server.url("/sub"))).await.unwrap().0);
    }
    let (mut publisher, _) = step("pub", connect(&server.url("/pub"))).await.unwrap();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for i in 0..MSGS {
                    let m = step("broadcast", ws.recv()).await.unwrap();
                    let want = if i % 2 == 0 { Message::text(format!("b{i}")) } else { Message::binary(big(i * 100)) };
                    assert!(m == want, "message {i}");
                }
                ws
            })
        })
        .collect();
    for i in 0..MSGS {
        let m = if i % 2 == 0 { Message::text(format!("b{i}")) } else { Message::binary(big(i * 100)) };
        publisher.feed(m).await.unwrap();
    }
    publisher.flush().await.unwrap();
    for r in readers {
        let mut ws = r.await.unwrap();
        // Nothing more, not even back to the publisher.
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
    }
    assert_eq!(server.stats.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn slow_subscriber_is_dropped_not_waited_for() {
    const LIMIT: usize = 256 * 1024;
    let server = Server::start(Options { max_queued: LIMIT, ..Options::default() });
    // Never reads.
    let (_slow, _) = step("slow sub", connect(&server.url("/sub"))).await.unwrap();
    let (mut fast, _) = step("fast sub", connect(&server.url("/sub"))).await.unwrap();
    let (mut publisher, _) = step("pub", connect(&server.url("/pub"))).await.unwrap();
    let payload = big(64 * 1024);
    // 32 MiB in all: far more than the kernel buffers and the limit.
    for i in 0..512u32 {
        let mut p = payload.clone();
        p[..4].copy_from_slice(&i.to_be_bytes());
        publisher.send(Message::binary(p.clone())).await.unwrap();
        // The fast subscriber gets every message, in order, right away.
        let m = step("fast delivery", fast.recv()).await.unwrap();
        assert!(m == Message::binary(p), "message {i}");
    }
    let dropped = server.stats.dropped.load(Ordering::Relaxed);
    let max = server.stats.max_queued.load(Ordering::Relaxed);
    assert!(dropped > 0, "the slow subscriber's deliveries were not dropped");
    assert!(max <= LIMIT, "queue grew to {max} bytes");
}

#[tokio::test]
async fn server_initiated_close_and_client_close() {
    let server = Server::start(Options::default());
    let (mut ws, _) = step("connect", connect(&server.url("/echo"))).await.unwrap();
    ws.send(Message::text("close-me")).await.unwrap();
    match step("server close", ws.recv()).await.unwrap() {
        Message::Close(Some(f)) => assert_eq!((f.code, f.reason.as_str()), (CloseCode(4000), "as asked")),
        other => panic!("{other:?}"),
    }
    // The server closed TCP after the handshake (RFC 6455 §7.1.1).
    assert!(step("closed", ws.recv()).await.is_err());
    // The server saw our echo of its close frame.
    assert_eq!(server.next_close().1, "closed 4000");

    let (mut ws, _) = step("connect", connect(&server.url("/echo"))).await.unwrap();
    ws.close(CloseCode::GOING_AWAY, "bye").await.unwrap();
    assert!(matches!(step("close reply", ws.recv()).await.unwrap(), Message::Close(Some(_))));
    assert_eq!(server.next_close().1, "closed 1001");
}

async fn count(server: &Server) -> usize {
    let (mut ws, _) = step("connect", connect(&server.url("/echo"))).await.unwrap();
    ws.send(Message::text("count")).await.unwrap();
    let n = match step("count", ws.recv()).await.unwrap() {
        Message::Text(t) => t.as_str().parse().unwrap(),
        other => panic!("{other:?}"),
    };
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let _ = step("close", ws.recv()).await;
    n
}

#[tokio::test]
async fn peer_vanishing_mid_frame_fails_and_frees_the_slot() {
    let server = Server::start(Options::default());
    let (mut tcp, head) = raw_handshake(server.addr, "/echo", "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"));
    // A masked binary frame of 1000 bytes, cut after 10 payload bytes.
    let mut frame = vec![0x82, 0x80 | 126, (1000u16 >> 8) as u8, (1000u16 & 0xff) as u8, 1, 2, 3, 4];
    frame.extend_from_slice(&[0u8; 10]);
    tcp.write_all(&frame).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(tcp);
    let (_, what) = server.next_close();
    assert_eq!(what, format!("failed {:?}", ProtocolError::ConnectionReset));
    // Also with a reset (SO_LINGER 0) in the middle of a large frame.
    let (tcp, _) = raw_handshake(server.addr, "/echo", "Sec-WebSocket-Version: 13\r\n").await;
    let mut tcp = tcp;
    let mut frame = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4];
    frame.extend_from_slice(&big(300_000));
    tcp.write_all(&frame).await.unwrap();
    #[allow(deprecated)] // a reset is the point here
    tcp.set_linger(Some(Duration::ZERO)).unwrap();
    drop(tcp);
    let (_, what) = server.next_close();
    assert!(what.starts_with("io ") || what.starts_with("failed"), "{what}");
    // Only the counting connection is left.
    let mut n = 0;
    for _ in 0..50 {
        n = count(&server).await;
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(n, 1);
}

#[tokio::test]
async fn idle_timeout_closes_with_1001() {
    let config = Config { idle_timeout: Some(Duration::from_millis(300)), ..Config::default() };
    let server = Server::start(Options { config, ..Options::default() });
    let (mut ws, _) = step("connect", connect(&server.url("/echo"))).await.unwrap();
    let started = std::time::Instant::now();
    match step("idle close", ws.recv()).await.unwrap() {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::GOING_AWAY),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(server.next_close().1, "closed 1001");
    // A peer that does not answer the close frame: the close timeout.
    let config = Config {
        idle_timeout: Some(Duration::from_millis(200)),
        close_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = Server::start(Options { config, ..Options::default() });
    let (_tcp, head) = raw_handshake(server.addr, "/echo", "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"));
    let (_, what) = server.next_close();
    assert_eq!(what, format!("failed {:?}", ProtocolError::IdleTimeout));
}
