//! The listeners' backlog (`ServerOptions::backlog`): a burst of clients
//! larger than tokio's default backlog (128) while the server accepts
//! nothing (its only thread busy) is completed by the kernel, not dropped
//! (a dropped SYN costs its client a one-second retry, then three).
//!
//! Found with `simples-ws`'s `burst_of_connections_dropped_mid_handshake`
//! test (200 connects, one in five runs slow or failed): the framework's
//! listeners had the same 128.

mod common;

use std::time::Duration;

use simples::{Server, ServerOptions};
use tokio::net::TcpStream;

/// Runs `server` on a current-thread runtime of its own thread and blocks
/// that thread once started (nothing is accepted meanwhile) until the
/// returned sender says `go`; it then serves until the sender is dropped.
/// Returns the address.
fn start_then_block(server: Server) -> (std::net::SocketAddr, std::sync::mpsc::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let running = server.start().await.expect("server starts");
            addr_tx.send(running.local_addr()).unwrap();
            let _ = go_rx.recv(); // blocks the runtime's only thread
            let _ = tokio::task::spawn_blocking(move || go_rx.recv()).await;
            running.stop().await;
        });
    });
    (addr_rx.recv().unwrap(), go_tx)
}

/// The kernel's cap on a listener's backlog (`net.core.somaxconn`; 4096
/// on current kernels, 128 on old ones), which Linux completes plus one.
fn held(backlog: usize) -> usize {
    let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse().ok());
    backlog.min(cap.unwrap_or(usize::MAX)) + 1
}

/// `n` connects at once, each given `limit`: how many completed. Real
/// time, not tokio's paused clock: what is measured is the kernel's (a
/// dropped SYN is sent again after one second; `limit` is under it).
async fn burst(addr: std::net::SocketAddr, n: usize, limit: Duration) -> (usize, Vec<TcpStream>) {
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(tokio::time::timeout(limit, TcpStream::connect(addr)))).collect();
    let mut open = Vec::new();
    for t in tasks {
        if let Ok(Ok(stream)) = t.await.unwrap() {
            open.push(stream);
        }
    }
    (open.len(), open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_128_is_held_while_the_server_is_busy() {
    let mut server = common::server();
    server.get("/", |conn| async move { conn.send("ok") });
    let (addr, go) = start_then_block(server);
    // The kernel answers the handshake of every connection the backlog
    // holds at once; the others' SYNs are dropped (retried after 1 s).
    let (connected, open) = burst(addr, 600, Duration::from_millis(700)).await;
    assert_eq!(connected, 600.min(held(1024)), "connections completed while the server was busy");
    go.send(()).unwrap();
    // Once the server runs again it serves them: a request on each of a few.
    for mut stream in open.into_iter().step_by(100) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut reply)).await.unwrap().unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"), "{reply}");
    }
    drop(go);
}

/// The option is the backlog: at 128 the same burst is cut down to what
/// 128 holds (Linux completes backlog + 1), which shows what the default
/// of 1024 prevents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_option_is_what_holds_the_burst() {
    let server = Server::with_options("127.0.0.1:0", ServerOptions { backlog: 128, ..ServerOptions::default() });
    let (addr, go) = start_then_block(server);
    let (connected, open) = burst(addr, 600, Duration::from_millis(700)).await;
    assert!((held(128) - 1..=held(128)).contains(&connected), "{connected} connections completed with a backlog of 128");
    drop(open);
    drop(go);
}
