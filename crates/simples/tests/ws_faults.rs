//! Transport faults against a framework WebSocket host, over real sockets:
//! a half-open client (it stops answering without closing) is found by the
//! keepalive within the idle timeout (as tokio tasks, on tokio's paused
//! clock; on the event loops, which read the system's clock, with a
//! one-second timeout); a TCP reset
//! in the middle of a frame, and clients that vanish during the closing
//! handshake (either side's), are cleaned up: the registry count comes
//! back, `on_close` runs once per connection, and another client keeps
//! being served.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ws::{connect, send, text, wait_for};
use common::ws_extra::raw_ws;
use simples::ws::{CloseCode, Message, WsOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Echo host at `/ws`: `bye` makes the server close (1000); every close
/// is recorded (connection id, the client's close code or `None`).
async fn server() -> (simples::Running, simples::WsHost, Arc<Mutex<Vec<(u64, Option<u16>)>>>) {
    server_with(WsOptions::default()).await
}

async fn server_with(options: WsOptions) -> (simples::Running, simples::WsHost, Arc<Mutex<Vec<(u64, Option<u16>)>>>) {
    let mut server = common::server();
    let host = server.ws("/ws", options, |_conn| async move {});
    host.on_message(|conn, message| async move {
        if matches!(&message, Message::Text(t) if t.as_str() == "bye") {
            conn.close(CloseCode::NORMAL, "bye");
        } else {
            let _ = conn.send(message);
        }
    });
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = closes.clone();
    host.on_close(move |conn, frame| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push((conn.id(), frame.map(|f| f.code.0)));
        }
    });
    (common::start(server).await, host, closes)
}

/// A masked (zero key) client frame header for `len` payload bytes.
fn header(opcode: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// SO_LINGER 0: dropping the socket sends a reset.
#[allow(deprecated)]
fn reset_on_drop(tcp: &TcpStream) {
    tcp.set_linger(Some(Duration::ZERO)).unwrap();
}

/// Waits until `closes` has `n` entries (5 s at most).
async fn closes_reach(closes: &Mutex<Vec<(u64, Option<u16>)>>, n: usize) {
    for _ in 0..500 {
        if closes.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(closes.lock().unwrap().len(), n, "{:?}", closes.lock().unwrap());
}

async fn echo(ws: &mut common::ws::Client, what: &str) {
    send(ws, what).await;
    assert_eq!(text(ws).await, what);
}

#[tokio::test(start_paused = true)]
async fn half_open_client_is_found_by_the_keepalive_within_the_idle_timeout() {
    let idle = WsOptions::default().idle_timeout.unwrap();
    assert_eq!(idle, Duration::from_secs(30));
    // Tasks: their timers run on tokio's (paused) clock.
    let (running, host, closes) = server_with(WsOptions { event_loop: false, ..WsOptions::default() }).await;
    let addr = running.local_addr();
    // The half-open client: it never reads nor writes again.
    let silent = raw_ws(addr, "/ws").await;
    wait_for(&host, 1).await;
    // Just past the idle timeout: the server pinged at half of it, got
    // nothing, and sent 1001 (read now: the client only peeks).
    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    half_open_answer(&silent).await;
    // Unanswered, the connection is dropped after the close timeout.
    tokio::time::sleep(WsOptions::default().close_timeout).await;
    assert_eq!(host.len(), 0, "the half-open connection was removed");
    closes_reach(&closes, 1).await;
    assert_eq!(closes.lock().unwrap()[0].1, None, "no close frame from a half-open client");
}

/// The event loops' timers read the system's clock: the same with a
/// one-second idle timeout and a 300 ms close timeout, in real time.
#[tokio::test]
async fn half_open_client_on_the_event_loop_is_found_by_the_keepalive() {
    let idle = Duration::from_secs(1);
    let close_timeout = Duration::from_millis(300);
    let options = WsOptions { idle_timeout: Some(idle), close_timeout, ..WsOptions::default() };
    let (running, host, closes) = server_with(options).await;
    let silent = raw_ws(running.local_addr(), "/ws").await;
    wait_for(&host, 1).await;
    let started = std::time::Instant::now();
    // The ping at half the timeout, the close at the timeout.
    let mut wire = [0u8; 64];
    let mut n = 0;
    while n < 6 && started.elapsed() < idle * 3 {
        n = tokio::time::timeout(Duration::from_millis(50), silent.peek(&mut wire)).await.map_or(n, |r| r.unwrap());
    }
    assert!(started.elapsed() >= idle - Duration::from_millis(100), "closed early: {:?}", started.elapsed());
    half_open_answer(&silent).await;
    closes_reach(&closes, 1).await;
    assert!(started.elapsed() < idle + close_timeout + Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(host.len(), 0, "the half-open connection was removed");
    assert_eq!(closes.lock().unwrap()[0].1, None, "no close frame from a half-open client");
}

/// What a half-open client finds in its receive buffer: the keepalive
/// ping, then a close frame with 1001.
async fn half_open_answer(silent: &TcpStream) {
    let mut wire = [0u8; 64];
    let n = silent.peek(&mut wire).await.unwrap();
    assert!(n >= 6, "{:?}", &wire[..n]);
    assert_eq!(&wire[..2], &[0x89, 0x00], "a keepalive ping first: {:?}", &wire[..n]);
    assert_eq!(wire[2], 0x88, "then a close frame: {:?}", &wire[..n]);
    assert_eq!(u16::from_be_bytes([wire[4], wire[5]]), 1001);
}

#[tokio::test]
async fn reset_in_the_middle_of_a_frame_is_cleaned_up() {
    let (running, host, closes) = server().await;
    let addr = running.local_addr();
    let mut good = connect(addr, "/ws").await;
    for i in 0..10 {
        let mut tcp = raw_ws(addr, "/ws").await;
        wait_for(&host, 2).await;
        // Half of a 1000-byte frame, then a reset.
        let mut half = header(0x2, 1000);
        half.extend_from_slice(&[7u8; 500]);
        tcp.write_all(&half).await.unwrap();
        reset_on_drop(&tcp);
        drop(tcp);
        wait_for(&host, 1).await;
        closes_reach(&closes, i + 1).await;
        echo(&mut good, &format!("still served {i}")).await;
    }
    let closes = closes.lock().unwrap();
    let mut ids: Vec<u64> = closes.iter().map(|c| c.0).collect();
    ids.dedup();
    assert_eq!(ids.len(), 10, "on_close once per connection: {closes:?}");
    assert!(closes.iter().all(|c| c.1.is_none()), "{closes:?}");
}

#[tokio::test]
async fn client_vanishing_during_the_closing_handshake_is_cleaned_up() {
    let (running, host, closes) = server().await;
    let addr = running.local_addr();
    let mut good = connect(addr, "/ws").await;

    // The client starts the closing handshake and resets before the reply.
    let mut tcp = raw_ws(addr, "/ws").await;
    wait_for(&host, 2).await;
    let mut close = header(0x8, 2);
    close.extend_from_slice(&1000u16.to_be_bytes());
    tcp.write_all(&close).await.unwrap();
    reset_on_drop(&tcp);
    drop(tcp);
    wait_for(&host, 1).await;
    closes_reach(&closes, 1).await;
    echo(&mut good, "after the client's close").await;

    // The server starts it (`bye`) and the client resets instead of
    // answering.
    let mut tcp = raw_ws(addr, "/ws").await;
    wait_for(&host, 2).await;
    let mut bye = header(0x1, 3);
    bye.extend_from_slice(b"bye");
    tcp.write_all(&bye).await.unwrap();
    let mut frame = [0u8; 2];
    tcp.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame[0], 0x88, "the server's close frame");
    reset_on_drop(&tcp);
    drop(tcp);
    wait_for(&host, 1).await;
    closes_reach(&closes, 2).await;
    echo(&mut good, "after the server's close").await;
    let closes = closes.lock().unwrap();
    assert_ne!(closes[0].0, closes[1].0, "{closes:?}");
}
