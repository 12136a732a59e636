//! Peers that vanish or stall: half frames followed by EOF or a reset,
//! clients that never finish the handshake, and a burst of connections
//! dropped mid-handshake. The server must report promptly and keep serving.
//!
//! The tests on one current-thread runtime run on tokio's paused clock
//! (`start_paused`): time moves only when every task waits, so the timings
//! asserted are exact.

mod common;

use common::*;
use simples_ws::handshake::HandshakeErrorKind;
use simples_ws::tokio::{connect, Error, AcceptOptions};
use simples_ws::{CloseCode, Message, ProtocolError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn is_vanished(e: &Error) -> bool {
    match e {
        Error::Protocol(ProtocolError::ConnectionReset) => true,
        Error::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

async fn good_client_works(server: &mut TestServer) {
    let (mut ws, _) = step("connect", connect(&server.url("/"))).await.expect("a good client connects");
    ws.send(Message::binary(pattern(5000, 4))).await.unwrap();
    assert_eq!(step("echo", ws.recv()).await.unwrap(), Message::binary(pattern(5000, 4)));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
    assert!(server.ended().await.is_ok());
}

/// Header and half the payload of a 100-byte frame.
fn half_frame() -> Vec<u8> {
    let full = client_frame(true, OP_BINARY, &pattern(100, 1));
    full[..full.len() - 50].to_vec()
}

/// Sends [`half_frame`], then drops the connection (with a reset instead of
/// a FIN if `reset`): the server's `recv` must report a vanished peer
/// within a second, and the server must keep serving. Runs under
/// [`bounded`].
async fn half_frame_then_vanish(reset: bool) {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        tcp.write_all(&half_frame()).await.unwrap();
        tokio::time::sleep(MS(20)).await;
        if reset {
            // SO_LINGER 0: closing sends a reset instead of a FIN.
            reset_on_drop(&tcp);
        }
        let t0 = Instant::now();
        drop(tcp);
        let r = server.ended().await;
        assert_eq!(t0.elapsed(), Duration::ZERO, "reported after {:?}", t0.elapsed());
        match r {
            Err(e) => assert!(is_vanished(&e), "{e:?}"),
            Ok(m) => panic!("{m:?}"),
        }
        good_client_works(&mut server).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn half_frame_then_eof_ends_recv_promptly() {
    half_frame_then_vanish(false).await
}

#[tokio::test(start_paused = true)]
async fn half_frame_then_reset_ends_recv_promptly() {
    half_frame_then_vanish(true).await
}

#[tokio::test(start_paused = true)]
async fn idle_peer_eof_without_close_is_connection_reset() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        tcp.write_all(&client_frame(true, OP_TEXT, b"one")).await.unwrap();
        assert_eq!(expect_frame(&mut tcp).await.payload, b"one");
        tcp.shutdown().await.unwrap();
        // The server closes its side too, without a close frame (1006).
        expect_closed(&mut tcp).await;
        let r = server.ended().await;
        assert!(matches!(r, Err(Error::Protocol(ProtocolError::ConnectionReset))), "{r:?}");
        good_client_works(&mut server).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn server_vanishing_mid_frame_ends_client_recv_promptly() {
    bounded(async {
        let addr = raw_ws_server(|mut tcp| async move {
            let frame = server_frame(true, OP_TEXT, &[b'x'; 300]);
            tcp.write_all(&frame[..100]).await.unwrap();
            tokio::time::sleep(MS(50)).await;
            // dropped
        })
        .await;
        let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        let t0 = Instant::now();
        let r = step("client recv", ws.recv()).await;
        match r {
            Err(e) => assert!(is_vanished(&e), "{e:?}"),
            Ok(m) => panic!("{m:?}"),
        }
        assert_eq!(t0.elapsed(), MS(50), "the server vanishes 50 ms after the handshake");
        assert!(matches!(ws.recv().await, Err(Error::Closed)));
    })
    .await
}

fn quick_handshake() -> AcceptOptions {
    AcceptOptions { handshake_timeout: MS(200), ..AcceptOptions::default() }
}

async fn expect_handshake_timeout(server: &mut TestServer, tcp: &mut TcpStream, t0: Instant) {
    let resp = step("400 after the handshake timeout", read_http_response(tcp)).await.unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(resp.status_line, "HTTP/1.1 400 Bad Request", "{resp:?}");
    assert!(resp.body_text().contains("timed out"), "{resp:?}");
    // 200 ms exactly, read later by a client still trickling its head.
    assert!(elapsed >= MS(200) && elapsed <= MS(400), "answered after {elapsed:?}");
    expect_closed(tcp).await;
    match server.handshake_failed().await {
        Error::Handshake(e) => assert_eq!(e.kind(), &HandshakeErrorKind::BadRequest),
        other => panic!("{other:?}"),
    }
}

/// The time just before connecting, and a plain TCP connection to `addr`.
async fn timed_connect(addr: std::net::SocketAddr) -> (Instant, TcpStream) {
    let t0 = Instant::now();
    (t0, TcpStream::connect(addr).await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn silent_client_gets_400_after_handshake_timeout() {
    bounded(async {
        let mut server = echo_server(quick_handshake()).await;
        let (t0, mut tcp) = timed_connect(server.addr).await;
        expect_handshake_timeout(&mut server, &mut tcp, t0).await;
        good_client_works(&mut server).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn partial_or_trickled_head_gets_400_after_handshake_timeout() {
    bounded(async {
        let mut server = echo_server(quick_handshake()).await;
        // Half a request, then silence.
        let (t0, mut tcp) = timed_connect(server.addr).await;
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        expect_handshake_timeout(&mut server, &mut tcp, t0).await;

        // A trickled request: progress does not extend the deadline.
        let (t0, mut tcp) = timed_connect(server.addr).await;
        tcp.set_nodelay(true).unwrap();
        let req = upgrade_request("/", &[]);
        let trickle = async {
            for chunk in req.as_bytes().chunks(4) {
                if tcp.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(MS(10)).await;
                if t0.elapsed() > MS(400) {
                    break;
                }
            }
        };
        trickle.await;
        expect_handshake_timeout(&mut server, &mut tcp, t0).await;
        good_client_works(&mut server).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_connections_dropped_mid_handshake() {
    bounded(async {
        const N: usize = 200;
        let mut server = echo_server(AcceptOptions::default()).await;
        let addr = server.addr;
        let req = upgrade_request("/", &[]);
        let mut tasks = Vec::new();
        for i in 0..N {
            let req = req.clone();
            tasks.push(tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                match i % 4 {
                    0 => {}                                                         // nothing at all
                    1 => tcp.write_all(&req.as_bytes()[..req.len() / 2]).await.unwrap(), // half a head
                    2 => tcp.write_all(&req.as_bytes()[..req.len() - 2]).await.unwrap(), // all but the last CRLF
                    _ => {
                        tcp.write_all(&req.as_bytes()[..10]).await.unwrap();
                        reset_on_drop(&tcp); // reset
                    }
                }
            }));
        }
        for t in tasks {
            step("dropping client", t).await.unwrap();
        }
        let mut failed = 0;
        while failed < N {
            match server.next_event().await {
                Event::HandshakeFailed(e) => {
                    assert!(matches!(&e, Error::Io(_)), "{e:?}");
                    failed += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        good_client_works(&mut server).await;
    })
    .await
}
