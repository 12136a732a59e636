//! The framework's answers to two abuses, each with its default limit,
//! over real sockets: a slowloris client dripping a request head is cut
//! off by `ServerOptions::header_read_timeout` (30 s, on tokio's paused
//! clock), and a ping flood is closed with 1008 by
//! `WsOptions::max_control_frames_per_second` (1,000 a second). A
//! well-behaved client is served throughout.

mod common;

use std::time::Duration;

use common::ws::{connect, send, text};
use common::ws_extra::ping_flood;
use simples::ws::WsOptions;
use simples::ServerOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn echo_server() -> simples::Running {
    let mut server = common::server();
    server.get("/", |conn: simples::Conn| async move { conn.send("ok") });
    let host = server.ws("/ws", WsOptions::default(), |_conn| async move {});
    host.on_message(|conn, message| async move {
        let _ = conn.send(message);
    });
    common::start(server).await
}

#[tokio::test(start_paused = true)]
async fn slowloris_head_is_cut_off_at_the_default_header_read_timeout() {
    assert_eq!(ServerOptions::default().header_read_timeout, Duration::from_secs(30));
    let running = echo_server().await;
    let addr = running.local_addr();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    // One byte of a never-ending head every 2 s: each byte is progress, but
    // the head as a whole must arrive within the timeout.
    let head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: {}", "a".repeat(1000));
    let mut cut_after = None;
    for b in head.bytes() {
        if slow.write_all(&[b]).await.is_err() {
            cut_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => {
                // hyper may answer 408 before closing.
                let reply = String::from_utf8_lossy(&buf[..n]);
                assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let cut_after = cut_after.expect("the slow head was cut off");
    assert!(cut_after >= Duration::from_secs(30) && cut_after <= Duration::from_secs(33), "cut after {cut_after:?}");
    // Meanwhile and afterwards, a normal request is served.
    assert_eq!(common::get(addr, "/").await.text(), "ok");
}

#[tokio::test]
async fn ping_flood_is_closed_with_1008_by_default() {
    assert_eq!(WsOptions::default().max_control_frames_per_second, Some(1000));
    let running = echo_server().await;
    let addr = running.local_addr();
    let mut good = connect(addr, "/ws").await;
    assert_eq!(ping_flood(addr, "/ws", 2000).await, 1008);
    send(&mut good, "still served").await;
    assert_eq!(text(&mut good).await, "still served");
}
