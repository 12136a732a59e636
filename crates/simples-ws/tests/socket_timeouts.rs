//! Keepalive pings and the idle timeout over real sockets, for the unsplit
//! `WebSocket` and for a split `Receiver`.
//!
//! Every test runs on tokio's paused clock (`start_paused`, a current-thread
//! runtime that holds the client, the server and their sockets): the
//! drivers read tokio's clock, time moves only when every task waits, and
//! it then jumps to the next timer. So the timings asserted are exact and
//! the suite takes no real time. (Loopback writes are delivered before the
//! write returns, so a waiting task is never one whose bytes are still in
//! flight.)

mod common;

use common::*;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::tokio::{accept, connect_with, Error, AcceptOptions, WebSocket};
use simples_ws::{CloseCode, Config, Message, ProtocolError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn with_config(config: Config) -> AcceptOptions {
    AcceptOptions { config, ..AcceptOptions::default() }
}

/// A 300 ms idle timeout and a 300 ms close timeout.
fn idle_300ms() -> Config {
    Config { idle_timeout: Some(MS(300)), close_timeout: MS(300), ..Config::default() }
}

/// Checks that the server's connection ended with `IdleTimeout`.
async fn expect_idle_timeout_end(server: &mut TestServer) {
    let r = server.ended().await;
    assert!(matches!(r, Err(Error::Protocol(ProtocolError::IdleTimeout))), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn silent_client_receives_keepalive_pings() {
    bounded(async {
        let config = Config { ping_interval: Some(MS(100)), ..Config::default() };
        let (mut server, mut tcp) = echo_server_and_raw_client(with_config(config)).await;
        let t0 = Instant::now();
        let f = expect_frame(&mut tcp).await;
        let first = t0.elapsed();
        assert_eq!(f.opcode, OP_PING, "{f:?}");
        assert!(!f.masked && f.fin);
        assert_eq!(first, MS(100), "first ping after {first:?}");
        // Unanswered: pings keep coming, one per interval.
        let f = expect_frame(&mut tcp).await;
        assert_eq!(f.opcode, OP_PING);
        let second = t0.elapsed();
        assert_eq!(second - first, MS(100), "pings at {first:?} and {second:?}");
        // Answer one; the server sees the pong.
        tcp.write_all(&client_frame(true, OP_PONG, &f.payload)).await.unwrap();
        loop {
            if let Event::Received(m) = server.next_event().await {
                assert!(matches!(m, Message::Pong(_)), "{m:?}");
                break;
            }
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_a_silent_client_with_1001() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(with_config(idle_300ms())).await;
        let t0 = Instant::now();
        let f = expect_close(&mut tcp, 1001).await;
        let closed_at = t0.elapsed();
        assert!(f.close_reason().contains("idle"), "{:?}", f.close_reason());
        assert_eq!(closed_at, MS(300), "1001 after {closed_at:?}");
        // Not answering the close: TCP is closed after close_timeout.
        expect_closed(&mut tcp).await;
        let eof_at = t0.elapsed();
        assert_eq!(eof_at, MS(600), "TCP closed after {eof_at:?}");
        expect_idle_timeout_end(&mut server).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_with_answered_close_is_a_clean_close() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(with_config(Config { idle_timeout: Some(MS(200)), ..Config::default() })).await;
        expect_close(&mut tcp, 1001).await;
        tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1001, b""))).await.unwrap();
        expect_closed(&mut tcp).await;
        let r = server.ended().await;
        assert!(matches!(r, Ok(Message::Close(Some(ref f))) if f.code == CloseCode::GOING_AWAY), "{r:?}");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn idle_timer_restarts_on_received_data() {
    bounded(async {
        let (_server, mut tcp) = echo_server_and_raw_client(with_config(idle_300ms())).await;
        let t0 = Instant::now();
        // Data every 150 ms for 900 ms keeps the connection open.
        for i in 0..6 {
            tokio::time::sleep(MS(150)).await;
            tcp.write_all(&client_frame(true, OP_TEXT, format!("{i}").as_bytes())).await.unwrap();
            let f = expect_frame(&mut tcp).await;
            assert_eq!(f.opcode, OP_TEXT, "connection closed after {:?}: {f:?}", t0.elapsed());
        }
        let last = Instant::now();
        expect_close(&mut tcp, 1001).await;
        let after = last.elapsed();
        assert_eq!(after, MS(300), "idle close {after:?} after the last message");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn raw_client_answering_pings_stays_open() {
    bounded(async {
        let config = Config { ping_interval: Some(MS(100)), idle_timeout: Some(MS(300)), ..Config::default() };
        let (_server, mut tcp) = echo_server_and_raw_client(with_config(config)).await;
        let t0 = Instant::now();
        let mut pings = 0;
        while t0.elapsed() < MS(1000) {
            let f = expect_frame(&mut tcp).await;
            assert_eq!(f.opcode, OP_PING, "after {:?}: {f:?} (close reason {:?})", t0.elapsed(), f.close_reason());
            pings += 1;
            tcp.write_all(&client_frame(true, OP_PONG, &f.payload)).await.unwrap();
        }
        assert!(pings >= 5, "{pings} pings in a second");
        tcp.write_all(&client_frame(true, OP_TEXT, b"alive")).await.unwrap();
        loop {
            let f = expect_frame(&mut tcp).await;
            if f.opcode == OP_TEXT {
                assert_eq!(f.payload, b"alive");
                break;
            }
            assert_eq!(f.opcode, OP_PING);
        }
    })
    .await
}

/// Receives on our client for a second, where only pings may arrive;
/// returns how many did.
async fn pings_for_a_second(ws: &mut WebSocket<TcpStream>) -> usize {
    let deadline = tokio::time::Instant::now() + MS(1000);
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(deadline, ws.recv()).await {
            Err(_) => return pings,
            Ok(Ok(Message::Ping(_))) => pings += 1,
            Ok(other) => panic!("connection did not stay open: {other:?}"),
        }
    }
}

/// Checks that the connection still echoes a message (pings may come first).
async fn still_echoes(ws: &mut WebSocket<TcpStream>) {
    ws.send(Message::text("still open")).await.unwrap();
    loop {
        match step("echo", ws.recv()).await.unwrap() {
            Message::Ping(_) => {}
            m => {
                assert_eq!(m, Message::text("still open"));
                break;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn our_client_driving_recv_keeps_connection_past_three_idle_timeouts() {
    bounded(async {
        let config = Config { ping_interval: Some(MS(100)), idle_timeout: Some(MS(300)), ..Config::default() };
        let server = echo_server(with_config(config)).await;
        let (mut ws, _) = connect_with(&server.url("/"), &ClientConfig::default(), Config::default()).await.unwrap();
        let pings = pings_for_a_second(&mut ws).await;
        assert!(pings >= 5, "{pings} pings");
        still_echoes(&mut ws).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn our_client_sends_keepalive_pings_and_idles_out() {
    bounded(async {
        // Our client as the keepalive side, against a silent raw server.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let addr = raw_ws_server(move |mut tcp| async move {
            while let Ok(f) = read_frame(&mut tcp).await {
                tx.send(f).unwrap();
            }
        })
        .await;
        let config =
            Config { ping_interval: Some(MS(100)), idle_timeout: Some(MS(350)), close_timeout: MS(200), ..Config::default() };
        let (mut ws, _) = connect_with(&format!("ws://{addr}/"), &ClientConfig::default(), config).await.unwrap();
        let t0 = Instant::now();
        let r = step("client idle timeout", ws.recv()).await;
        assert!(matches!(r, Err(Error::Protocol(ProtocolError::IdleTimeout))), "{r:?}");
        assert_eq!(t0.elapsed(), MS(550), "idle 350 ms + close 200 ms");
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        let pings = frames.iter().filter(|f| f.opcode == OP_PING).count();
        assert!(pings >= 2, "{frames:?}");
        assert!(frames.iter().all(|f| f.masked));
        assert_eq!(frames.last().and_then(RawFrame::close_code), Some(1001), "{frames:?}");
    })
    .await
}

// ---------------------------------------------------------------------------
// The same timers behind a split connection
// ---------------------------------------------------------------------------

/// A server that splits each connection and receives on the `Receiver`
/// (echoing through the `Sender`), reporting how `recv` ended.
async fn split_echo_server(config: Config) -> (SocketAddr, mpsc::UnboundedReceiver<Result<Message, Error>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let options = Arc::new(with_config(config));
    let addr = spawn_server(move |tcp| {
        let tx = tx.clone();
        let options = options.clone();
        async move {
            let (ws, _) = accept(tcp, &options).await.unwrap();
            let (sender, mut receiver) = ws.split(1 << 16);
            loop {
                match receiver.recv().await {
                    Ok(m) if m.is_data() => sender.send(m).await.unwrap(),
                    Ok(Message::Close(f)) => {
                        let _ = tx.send(Ok(Message::Close(f)));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        }
    })
    .await;
    (addr, rx)
}

/// Reads one frame within 1.5 s, panicking with `what` on a timeout.
async fn frame_within_1500ms(tcp: &mut TcpStream, what: &str) -> RawFrame {
    match tokio::time::timeout(MS(1500), read_frame(tcp)).await {
        Ok(f) => f.unwrap(),
        Err(_) => panic!("{what}"),
    }
}

/// Against a [`split_echo_server`] with a 300 ms idle timeout, a raw client
/// sends `first` (may be empty), then waits: the 1001 close must come within
/// 1.5 s (`what` otherwise), then the end of stream, and `recv` must end
/// with `IdleTimeout`.
async fn split_idle_timeout(first: &[u8], what: &str) {
    let (addr, mut rx) = split_echo_server(idle_300ms()).await;
    let mut tcp = raw_connect(addr).await;
    tcp.write_all(first).await.unwrap();
    let f = frame_within_1500ms(&mut tcp, what).await;
    assert_eq!(f.close_code(), Some(1001), "{f:?}");
    expect_closed(&mut tcp).await;
    let r = step("server result", rx.recv()).await.unwrap();
    assert!(matches!(r, Err(Error::Protocol(ProtocolError::IdleTimeout))), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn split_receiver_sends_keepalive_pings() {
    bounded(async {
        let (addr, _rx) = split_echo_server(Config { ping_interval: Some(MS(100)), ..Config::default() }).await;
        let mut tcp = raw_connect(addr).await;
        let t0 = Instant::now();
        let what = "no keepalive ping from a split connection within 1.5 s (ping_interval 100 ms)";
        let f = frame_within_1500ms(&mut tcp, what).await;
        assert_eq!(f.opcode, OP_PING);
        assert_eq!(t0.elapsed(), MS(100));
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn split_receiver_idle_timeout() {
    bounded(async {
        split_idle_timeout(b"", "a split connection did not idle out within 1.5 s (idle_timeout 300 ms)").await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn split_receiver_answering_client_stays_open() {
    bounded(async {
        let config = Config { ping_interval: Some(MS(100)), idle_timeout: Some(MS(300)), ..Config::default() };
        let (addr, _rx) = split_echo_server(config).await;
        let (mut ws, _) = connect_with(&format!("ws://{addr}/"), &ClientConfig::default(), Config::default()).await.unwrap();
        pings_for_a_second(&mut ws).await;
        still_echoes(&mut ws).await;
    })
    .await
}

// A peer that stalls in the middle of a frame: the receive buffer holds a
// partial frame while the driver waits.

/// Header and the first 10 payload bytes of a 100-byte binary frame.
fn stalled_frame() -> Vec<u8> {
    let full = client_frame(true, OP_BINARY, &pattern(100, 5));
    full[..full.len() - 90].to_vec()
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_fires_for_a_peer_stalled_mid_frame() {
    // Control for the split regression below: the unsplit driver.
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(with_config(idle_300ms())).await;
        tcp.write_all(&stalled_frame()).await.unwrap();
        let t0 = Instant::now();
        expect_close(&mut tcp, 1001).await;
        assert_eq!(t0.elapsed(), MS(300));
        expect_closed(&mut tcp).await;
        expect_idle_timeout_end(&mut server).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn keepalive_ping_for_a_peer_stalled_mid_frame() {
    // Control for the split regression below: the unsplit driver.
    bounded(async {
        let config = Config { ping_interval: Some(MS(100)), ..Config::default() };
        let (_server, mut tcp) = echo_server_and_raw_client(with_config(config)).await;
        tcp.write_all(&stalled_frame()).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!(f.opcode, OP_PING, "{f:?}");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn regression_split_receiver_idle_timeout_for_a_peer_stalled_mid_frame() {
    bounded(async {
        let what = "a split connection stalled mid-frame did not idle out within 1.5 s (idle_timeout 300 ms)";
        split_idle_timeout(&stalled_frame(), what).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn regression_split_receiver_keepalive_ping_for_a_peer_stalled_mid_frame() {
    bounded(async {
        let (addr, _rx) = split_echo_server(Config { ping_interval: Some(MS(100)), ..Config::default() }).await;
        let mut tcp = raw_connect(addr).await;
        tcp.write_all(&stalled_frame()).await.unwrap();
        let what = "no keepalive ping within 1.5 s from a split connection stalled mid-frame (ping_interval 100 ms)";
        let f = frame_within_1500ms(&mut tcp, what).await;
        assert_eq!(f.opcode, OP_PING, "{f:?}");
    })
    .await
}
