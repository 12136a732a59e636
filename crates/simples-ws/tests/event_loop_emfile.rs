//! The mio event loop out of file descriptors: `accept` fails with EMFILE;
//! the loop logs it once, keeps serving its open connections, and accepts
//! the waiting client once descriptors are free again.
//!
//! Its own test binary: it uses up the process's file descriptors, which
//! would break any test running beside it.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_emfile`.

mod common;

use common::shared::{use_up_descriptors, Capture};
use common::{client_frame, server_frame, upgrade_request, OP_TEXT};
use simples_ws::event_loop::{ConnId, Ctx, EventLoop, EventHandler, Options};
use simples_ws::Message;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Echo;

impl EventHandler for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if msg.is_data() {
            ctx.send(id, msg);
        }
    }
}

/// Runs loop iterations until `done` (at most 10 s).
fn run_until(lp: &mut EventLoop<Echo>, what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < give_up, "timed out: {what}");
        lp.run_once(&mut Echo, Some(Duration::from_millis(20))).unwrap();
    }
}

/// Opens a connection and sends its upgrade request (the loop answers it
/// once it runs).
fn request(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nonblocking(true).unwrap();
    tcp.write_all(upgrade_request("/", &[]).as_bytes()).unwrap();
    tcp
}

/// Reads what `tcp` has (non-blocking) into `buf`; true once `buf` holds `n` bytes.
fn has(tcp: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return buf.len() >= n,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Completes the handshake of `tcp` and checks an echo, driving the loop.
fn handshake_and_echo(lp: &mut EventLoop<Echo>, tcp: &mut TcpStream, text: &str) {
    let mut got = Vec::new();
    run_until(lp, "the 101", || has(tcp, &mut got, 4) && got.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(got.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&got));
    echo(lp, tcp, text);
}

fn echo(lp: &mut EventLoop<Echo>, tcp: &mut TcpStream, text: &str) {
    tcp.write_all(&client_frame(true, OP_TEXT, text.as_bytes())).unwrap();
    let want = server_frame(true, OP_TEXT, text.as_bytes());
    let mut got = Vec::new();
    run_until(lp, "the echo", || has(tcp, &mut got, want.len()));
    assert_eq!(got, want);
}

#[test]
fn accept_out_of_descriptors_logs_once_serves_the_open_and_recovers() {
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut lp: EventLoop<Echo> = EventLoop::bind("127.0.0.1:0".parse().unwrap(), Options::default()).unwrap();
    let addr = lp.local_addr().unwrap();
    let mut open = request(addr);
    handshake_and_echo(&mut lp, &mut open, "before");

    // Use up every descriptor, then free one for the next client's socket:
    // the kernel completes its TCP handshake, the loop cannot accept it.
    let hog = use_up_descriptors(1);
    let mut waiting = request(addr);

    // Many retries (every 10 ms), one warning; the open connection is served.
    let failing = Instant::now();
    run_until(&mut lp, "accept failing for 200 ms", || failing.elapsed() >= Duration::from_millis(200));
    assert_eq!(logs.count("accept failed"), 1, "{}", logs.text());
    echo(&mut lp, &mut open, "while out of descriptors");
    let mut nothing = Vec::new();
    assert!(!has(&mut waiting, &mut nothing, 1), "the waiting client was answered without a descriptor");

    // Descriptors free again: the waiting client is accepted and served.
    drop(hog);
    handshake_and_echo(&mut lp, &mut waiting, "after");
    assert_eq!(logs.count("accepting connections again"), 1);
    assert_eq!(logs.count("accept failed"), 1);
    echo(&mut lp, &mut open, "still open");
}
