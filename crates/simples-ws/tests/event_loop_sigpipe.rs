//! The event loop never raises SIGPIPE: a program embedding it that did not
//! ignore the signal (a C or Node host; Rust's `main` ignores it) is not
//! killed when a peer resets a connection the loop is writing to. Writes go
//! through `sendmsg`/`send` with `MSG_NOSIGNAL`.
//!
//! The test runs itself again as a child process (`SIMPLES_SIGPIPE_CHILD`)
//! that sets SIGPIPE back to its default action, then makes peers reset
//! connections under a backlog of several frames (a vectored write).
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_sigpipe`.

mod common;

use common::{client_frame, close_payload, read_http_head, upgrade_request, LoopServer, OP_CLOSE, OP_TEXT};
use simples_ws::event_loop::{ConnId, Ctx, EventHandler, Options};
use simples_ws::Message;
use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

const CHILD: &str = "SIMPLES_SIGPIPE_CHILD";

/// Answers `flood` with 64 binary messages of 64 KiB.
struct Flood;

impl EventHandler for Flood {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if matches!(&msg, Message::Text(t) if t.as_str() == "flood") {
            for i in 0..64u8 {
                ctx.send(id, Message::Binary(vec![i; 64 << 10].into()));
            }
        }
    }
}

#[test]
fn a_peer_reset_raises_no_sigpipe_in_a_host_that_does_not_ignore_it() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["child_resets_connections_with_sigpipe_at_default", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.signal(), Some(libc::SIGPIPE), "the child was killed by SIGPIPE:\n{log}");
    assert!(out.status.success(), "child failed ({:?}):\n{log}", out.status);
    assert!(log.contains("resets done: 20"), "{log}");
}

/// The child's part; does nothing in a normal test run.
#[tokio::test]
async fn child_resets_connections_with_sigpipe_at_default() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // SAFETY: restores the default action of a signal; no handler is
    // installed, and no other thread of this process changes signal
    // dispositions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let server = LoopServer::start(Options::default(), Flood);
    for _ in 0..20 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(server.addr).await.unwrap();
        tcp.write_all(upgrade_request("/", &[]).as_bytes()).await.unwrap();
        read_http_head(&mut tcp).await.unwrap();
        // A request for a backlog, then the closing handshake and our FIN:
        // the server reads to the end (its socket is in CLOSE_WAIT) with
        // megabytes still to write to a client that reads nothing.
        tcp.write_all(&client_frame(true, OP_TEXT, b"flood")).await.unwrap();
        tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1000, b""))).await.unwrap();
        tcp.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Closing with unread data sends a reset: the server's next write
        // fails with EPIPE, which raises SIGPIPE without MSG_NOSIGNAL.
        common::reset_on_drop(&tcp);
        drop(tcp);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("resets done: 20");
}
