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
use simples_ws::Message;
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
