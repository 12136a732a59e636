//! The listener out of file descriptors: `accept` fails with EMFILE; the
//! server logs it once, keeps serving its open connections, and answers the
//! waiting client once descriptors are free again.
//!
//! Its own test binary: it uses up the process's file descriptors, which
//! would break any test running beside it.

mod common;

use std::time::Duration;

use common::ws::{connect, send, text};
use common::shared::Capture;
use simples::ws::WsOptions;
use simples::Conn;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// A current-thread runtime, so the thread-local subscriber sees the
// server's tasks.
#[tokio::test(flavor = "current_thread")]
async fn accept_out_of_descriptors_logs_once_serves_the_open_and_recovers() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = common::server();
    server.get("/hello", |conn: Conn| async move { conn.send("hello") });
    let echo = server.ws("/echo", WsOptions::default(), |_| async {});
    echo.on_message(|conn, message| async move {
        let _ = conn.send(message);
    });
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut open = connect(addr, "/echo").await;
    send(&mut open, "before").await;
    assert_eq!(text(&mut open).await, "before");

    // Use up every descriptor, then free one for the next client's socket:
    // the kernel completes its TCP handshake, the server cannot accept it.
    let hog = common::shared::use_up_descriptors(1);
    let mut waiting = tokio::net::TcpStream::connect(addr).await.expect("connect");
    waiting.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();

    // Several retries (every 50 ms): no answer, one warning, and the open
    // connection is served.
    let mut byte = [0u8; 1];
    let unanswered = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut byte)).await;
    assert!(unanswered.is_err(), "the waiting client was answered without a descriptor");
    send(&mut open, "while out of descriptors").await;
    assert_eq!(text(&mut open).await, "while out of descriptors");
    assert_eq!(capture.count("accept failed"), 1, "{}", capture.text());

    // Descriptors free again: the waiting client is answered.
    drop(hog);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), waiting.read_to_end(&mut answer)).await.expect("answered").unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("hello"), "{answer}");
    assert_eq!(capture.count("accepting connections again"), 1, "{}", capture.text());
    assert_eq!(capture.count("accept failed"), 1);
    send(&mut open, "still open").await;
    assert_eq!(text(&mut open).await, "still open");
    drop(open);
    running.stop().await;
}
