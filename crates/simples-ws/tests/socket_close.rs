//! The closing handshake over real sockets (RFC 6455 §5.5.1, §7): who
//! closes TCP first, invalid close frames, masking violations, nothing
//! delivered after a close, and the close timeout.
//!
//! The tests on one current-thread runtime run on tokio's paused clock
//! (`start_paused`): time moves only when every task waits, so the timings
//! asserted are exact; the two with a server on a thread of its own run in
//! real time.

mod common;

use common::*;
use simples_ws::close::ClosePayloadError;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::tokio::{accept, connect, connect_with, Error, Receiver, Sender, AcceptOptions, WebSocket};
use simples_ws::{CloseCode, Config, Message, ProtocolError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn short_close() -> Config {
    Config { close_timeout: Duration::from_millis(300), ..Config::default() }
}

/// Checks that the connection ended with the client's close 1000 "bye".
async fn expect_server_saw_normal_bye(server: &mut TestServer) {
    match server.ended().await {
        Ok(Message::Close(Some(f))) => assert_eq!((f.code, f.reason.as_str()), (CloseCode::NORMAL, "bye")),
        other => panic!("server saw {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn client_close_is_echoed_and_server_closes_tcp_first() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        // The default close timeout (5 s) is far longer than this test may
        // take: returning quickly means the client saw the server's EOF.
        let (mut ws, _) = connect(&server.url("/")).await.unwrap();
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(step("echo", ws.recv()).await.unwrap(), Message::text("before"));
        let t0 = Instant::now();
        ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        // Nothing may be sent after our close frame.
        assert!(matches!(
            ws.send(Message::text("late")).await,
            Err(Error::Protocol(ProtocolError::SendAfterClose))
        ));
        match step("close echo", ws.recv()).await.unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::NORMAL),
            other => panic!("expected the close echo, got {other:?}"),
        }
        assert_eq!(t0.elapsed(), Duration::ZERO, "the client waited for a timer");
        assert!(matches!(ws.recv().await, Err(Error::Closed)));
        assert!(matches!(ws.send(Message::text("x")).await, Err(Error::Closed)));
        expect_server_saw_normal_bye(&mut server).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn raw_client_sees_close_echo_then_eof_from_server() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1000, b"bye"))).await.unwrap();
        let f = expect_close(&mut tcp, 1000).await;
        assert!(f.fin && !f.masked);
        // The server closes TCP first; the client has not closed anything.
        expect_closed(&mut tcp).await;
        expect_server_saw_normal_bye(&mut server).await;

        // An empty close is answered with an empty close.
        let mut tcp = raw_connect(server.addr).await;
        tcp.write_all(&client_frame(true, OP_CLOSE, b"")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.len()), (OP_CLOSE, 0));
        expect_closed(&mut tcp).await;
        assert!(matches!(server.ended().await, Ok(Message::Close(None))));
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn server_initiated_close() {
    bounded(async {
        let (addr, mut rx) = spawn_reporting_server(|tcp| async move {
            let (mut ws, _) = accept(tcp, &AcceptOptions::default()).await.unwrap();
            ws.close(CloseCode(4000), "server bye").await.unwrap();
            ws.recv().await
        })
        .await;
        let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        match step("server close", ws.recv()).await.unwrap() {
            Message::Close(Some(f)) => assert_eq!((f.code, f.reason.as_str()), (CloseCode(4000), "server bye")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(ws.recv().await, Err(Error::Closed)));
        match step("server result", rx.recv()).await.unwrap() {
            Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode(4000)),
            other => panic!("{other:?}"),
        }
    })
    .await
}

/// Sends `frame` on a fresh raw connection and expects a close with `code`
/// followed by the server's end of stream; returns the server's error.
///
/// After failing a connection the server lingers (keeps reading) until the
/// peer's end of stream or the close timeout, so that its close frame is not
/// destroyed by a reset; `recv` reports the error once the client is gone.
async fn violation(server: &mut TestServer, frame: &[u8], code: u16) -> Error {
    let mut tcp = raw_connect(server.addr).await;
    tcp.write_all(frame).await.unwrap();
    expect_close(&mut tcp, code).await;
    expect_closed(&mut tcp).await;
    drop(tcp);
    match server.ended().await {
        Err(e) => {
            assert_eq!(e.close_code(), Some(CloseCode(code)), "{e:?}");
            e
        }
        Ok(m) => panic!("server returned {m:?} instead of an error"),
    }
}

#[tokio::test(start_paused = true)]
async fn failed_connection_lingers_until_peer_eof_or_close_timeout() {
    bounded(async {
        // A peer that stays connected: the error is reported once
        // close_timeout has passed.
        let options = AcceptOptions { config: short_close(), ..AcceptOptions::default() };
        let (mut server, mut tcp) = echo_server_and_raw_client(options).await;
        let t0 = Instant::now();
        tcp.write_all(&server_frame(true, OP_TEXT, b"unmasked")).await.unwrap();
        expect_close(&mut tcp, 1002).await;
        expect_closed(&mut tcp).await;
        let r = server.ended().await;
        let elapsed = t0.elapsed();
        assert!(matches!(r, Err(Error::Protocol(ProtocolError::UnmaskedFrame))), "{r:?}");
        assert_eq!(elapsed, Duration::from_millis(300), "the close timeout");

        // A peer that closes: reported at once.
        let mut tcp = raw_connect(server.addr).await;
        tcp.write_all(&server_frame(true, OP_TEXT, b"unmasked")).await.unwrap();
        expect_close(&mut tcp, 1002).await;
        expect_closed(&mut tcp).await;
        let t0 = Instant::now();
        drop(tcp);
        let r = server.ended().await;
        assert!(matches!(r, Err(Error::Protocol(ProtocolError::UnmaskedFrame))), "{r:?}");
        assert_eq!(t0.elapsed(), Duration::ZERO);
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn invalid_close_codes_get_1002() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
            let e = violation(&mut server, &client_frame(true, OP_CLOSE, &close_payload(code, b"x")), 1002).await;
            assert!(
                matches!(e, Error::Protocol(ProtocolError::InvalidClose(ClosePayloadError::InvalidCode(c))) if c == code),
                "code {code}: {e:?}"
            );
        }
        // A one-byte close body.
        let e = violation(&mut server, &client_frame(true, OP_CLOSE, &[0x03]), 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::InvalidClose(ClosePayloadError::Truncated))), "{e:?}");
        // Valid codes are echoed.
        for code in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            let mut tcp = raw_connect(server.addr).await;
            tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(code, b"ok"))).await.unwrap();
            expect_close(&mut tcp, code).await;
            expect_closed(&mut tcp).await;
            assert!(matches!(server.ended().await, Ok(Message::Close(Some(f))) if f.code == CloseCode(code)));
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn close_reason_not_utf8_gets_1007() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        let e = violation(&mut server, &client_frame(true, OP_CLOSE, &close_payload(1000, b"ok\xff\xfe")), 1007).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::InvalidClose(ClosePayloadError::InvalidUtf8))), "{e:?}");
        // A truncated multi-byte character at the end of the reason.
        let e = violation(&mut server, &client_frame(true, OP_CLOSE, &close_payload(1000, b"\xE2\x82")), 1007).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::InvalidClose(ClosePayloadError::InvalidUtf8))), "{e:?}");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn unmasked_and_malformed_control_frames_get_1002() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        let e = violation(&mut server, &server_frame(true, OP_TEXT, b"not masked"), 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::UnmaskedFrame)), "{e:?}");
        // An unmasked frame after a good one.
        let mut frames = client_frame(true, OP_TEXT, b"fine");
        frames.extend(server_frame(true, OP_BINARY, b"bad"));
        let mut tcp = raw_connect(server.addr).await;
        tcp.write_all(&frames).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_TEXT, &b"fine"[..]));
        expect_close(&mut tcp, 1002).await;
        expect_closed(&mut tcp).await;
        drop(tcp);
        assert!(matches!(server.ended().await, Err(Error::Protocol(ProtocolError::UnmaskedFrame))));

        let e = violation(&mut server, &client_frame(false, OP_PING, b"x"), 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::FragmentedControlFrame)), "{e:?}");
        let e = violation(&mut server, &client_frame(true, OP_CLOSE, &[0x03; 126]), 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::ControlFrameTooLong)), "{e:?}");
        let e = violation(&mut server, &client_frame(true, 0x3, b""), 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::UnknownOpcode(3))), "{e:?}");
        let e = violation(&mut server, &client_frame(true, OP_CONT, b"x"), 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::UnexpectedContinuation)), "{e:?}");
        let rsv = frame_header(true, 0b100, OP_TEXT, Some([1, 2, 3, 4]), 0);
        let e = violation(&mut server, &rsv, 1002).await;
        assert!(matches!(e, Error::Protocol(ProtocolError::ReservedBits(_))), "{e:?}");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn nothing_is_delivered_after_a_close_frame() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        let mut bytes = client_frame(true, OP_TEXT, b"before");
        bytes.extend(client_frame(true, OP_CLOSE, &close_payload(1000, b"")));
        bytes.extend(client_frame(true, OP_TEXT, b"after close"));
        bytes.extend(client_frame(true, OP_PING, b"after close"));
        tcp.write_all(&bytes).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_TEXT, &b"before"[..]));
        // Only the close echo follows: no echo of "after close", no pong.
        expect_close(&mut tcp, 1000).await;
        expect_closed(&mut tcp).await;
        let (got, end) = server.messages_until_end().await;
        assert_eq!(got, [Message::text("before")]);
        assert!(matches!(end, Ok(Message::Close(Some(_)))));
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn frames_after_our_close_are_still_received_until_the_echo() {
    // RFC 6455 §7.1.2/§1.4: after sending a close frame an endpoint keeps
    // receiving until the peer's close.
    bounded(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let addr = spawn_server(move |tcp| {
            let tx = tx.clone();
            async move {
                let (mut ws, _) = accept(tcp, &AcceptOptions::default()).await.unwrap();
                ws.close(CloseCode::GOING_AWAY, "shutting down").await.unwrap();
                loop {
                    let r = ws.recv().await;
                    let done = !matches!(r, Ok(Message::Text(_)));
                    tx.send(r).unwrap();
                    if done {
                        return;
                    }
                }
            }
        })
        .await;
        let mut tcp = raw_connect(addr).await;
        let f = expect_close(&mut tcp, 1001).await;
        assert_eq!(f.close_reason(), "shutting down");
        tcp.write_all(&client_frame(true, OP_TEXT, b"in flight")).await.unwrap();
        tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1001, b""))).await.unwrap();
        expect_closed(&mut tcp).await;
        assert_eq!(step("data", rx.recv()).await.unwrap().unwrap(), Message::text("in flight"));
        assert!(matches!(step("close", rx.recv()).await.unwrap(), Ok(Message::Close(Some(f))) if f.code == CloseCode::GOING_AWAY));
    })
    .await
}

/// `r`, what a receive returned, is the close timeout's error, after the
/// 300 ms of `short_close()`.
fn assert_close_timed_out(r: &Result<Message, Error>, elapsed: Duration) {
    assert!(matches!(r, Err(Error::Protocol(ProtocolError::CloseTimeout))), "{r:?}");
    assert_eq!(elapsed, Duration::from_millis(300), "the close timeout");
}

/// A raw client of `addr` reads the server's close (1000) and never
/// answers nor closes: the server gives up after its close timeout
/// (reported on `rx`) and closes the connection.
async fn never_answer_our_close(addr: SocketAddr, rx: &mut mpsc::UnboundedReceiver<(Result<Message, Error>, Duration)>) {
    let mut tcp = raw_connect(addr).await;
    expect_close(&mut tcp, 1000).await;
    let (r, elapsed) = step("server gives up", rx.recv()).await.unwrap();
    assert_close_timed_out(&r, elapsed);
    expect_closed(&mut tcp).await;
}

/// A server that closes first and then reports how `recv` ended and when.
async fn closing_server(config: Config) -> (SocketAddr, mpsc::UnboundedReceiver<(Result<Message, Error>, Duration)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let options = std::sync::Arc::new(AcceptOptions { config, ..AcceptOptions::default() });
    let addr = spawn_server(move |tcp| {
        let tx = tx.clone();
        let options = options.clone();
        async move {
            let (mut ws, _) = accept(tcp, &options).await.unwrap();
            let t0 = Instant::now();
            ws.close(CloseCode::NORMAL, "please answer").await.unwrap();
            let r = ws.recv().await;
            tx.send((r, t0.elapsed())).unwrap();
        }
    })
    .await;
    (addr, rx)
}

#[tokio::test(start_paused = true)]
async fn peer_that_never_answers_our_close_times_out() {
    bounded(async {
        let (addr, mut rx) = closing_server(short_close()).await;
        never_answer_our_close(addr, &mut rx).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn peer_that_drops_after_our_close_ends_recv_promptly() {
    bounded(async {
        let (addr, mut rx) = closing_server(Config { close_timeout: Duration::from_secs(5), ..Config::default() }).await;
        let mut tcp = raw_connect(addr).await;
        expect_close(&mut tcp, 1000).await;
        drop(tcp);
        let (r, elapsed) = step("server result", rx.recv()).await.unwrap();
        assert!(r.is_err(), "{r:?}");
        assert_eq!(elapsed, Duration::ZERO, "recv waited {elapsed:?} for a peer that was gone");
    })
    .await
}

/// Our client with [`short_close`] against a [`raw_ws_server`] running
/// `script`: closes, then returns what `recv` returned (within [`STEP`],
/// else panics with `what`) and how long after the close.
async fn client_close_against<F, Fut>(script: F, what: &str) -> (Result<Message, Error>, Duration)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let addr = raw_ws_server(script).await;
    let (mut ws, _) = connect_with(&format!("ws://{addr}/"), &ClientConfig::default(), short_close()).await.unwrap();
    let t0 = Instant::now();
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let r = step(what, ws.recv()).await;
    (r, t0.elapsed())
}

#[tokio::test(start_paused = true)]
async fn client_close_timeout_when_server_never_answers() {
    bounded(async {
        let server = |mut tcp: TcpStream| async move {
            let f = read_frame(&mut tcp).await.unwrap();
            assert!(f.masked, "client frames are masked");
            assert_eq!(f.close_code(), Some(1000));
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let (r, elapsed) = client_close_against(server, "close timeout").await;
        assert_close_timed_out(&r, elapsed);
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn client_stops_waiting_for_server_tcp_close_after_close_timeout() {
    bounded(async {
        // The server answers the close but never closes TCP.
        let server = |mut tcp: TcpStream| async move {
            let f = read_frame(&mut tcp).await.unwrap();
            assert_eq!(f.close_code(), Some(1000));
            tcp.write_all(&server_frame(true, OP_CLOSE, &close_payload(1000, b""))).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let (r, elapsed) = client_close_against(server, "close").await;
        assert!(matches!(r, Ok(Message::Close(Some(_)))), "{r:?}");
        assert_eq!(elapsed, Duration::from_millis(300), "the close timeout");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn masked_frame_from_server_fails_client_with_1002() {
    bounded(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let addr = raw_ws_server(move |mut tcp| async move {
            tcp.write_all(&encode_frame(true, OP_TEXT, Some([1, 2, 3, 4]), b"masked")).await.unwrap();
            let f = read_frame(&mut tcp).await.unwrap();
            tx.send(f).unwrap();
            // The client lingers until our end of stream.
        })
        .await;
        let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        let r = step("client error", ws.recv()).await;
        assert!(matches!(r, Err(Error::Protocol(ProtocolError::MaskedFrame))), "{r:?}");
        let f = step("client close frame", rx.recv()).await.unwrap();
        assert!(f.masked);
        assert_eq!(f.close_code(), Some(1002));
    })
    .await
}

/// A [`spawn_reporting_server`] that accepts with [`short_close`], splits
/// the connection and reports what `serve` returns for the two halves.
async fn split_short_close_server<T, F, Fut>(serve: F) -> (SocketAddr, mpsc::UnboundedReceiver<T>)
where
    T: Send + 'static,
    F: Fn(Sender, Receiver<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let serve = std::sync::Arc::new(serve);
    spawn_reporting_server(move |tcp| {
        let serve = serve.clone();
        async move {
            let options = AcceptOptions { config: short_close(), ..AcceptOptions::default() };
            let (ws, _) = accept(tcp, &options).await.unwrap();
            let (sender, receiver) = ws.split(1 << 16);
            serve(sender, receiver).await
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn split_peer_that_never_answers_our_close_times_out() {
    bounded(async {
        let (addr, mut rx) = split_short_close_server(|sender, mut receiver| async move {
            // Close first, then receive.
            let t0 = Instant::now();
            sender.close(CloseCode::NORMAL, "").await.unwrap();
            let r = receiver.recv().await;
            (r, t0.elapsed())
        })
        .await;
        never_answer_our_close(addr, &mut rx).await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn regression_split_close_timeout_when_receiver_already_waiting() {
    // The usual shape of a split connection: a task is already blocked in
    // `Receiver::recv` when another task calls `Sender::close`. The close
    // timeout must still end `recv` if the peer never answers.
    bounded(async {
        let (addr, mut rx) = split_short_close_server(|sender, mut receiver| async move {
            let reader = tokio::spawn(async move { receiver.recv().await });
            tokio::time::sleep(Duration::from_millis(100)).await;
            let t0 = Instant::now();
            sender.close(CloseCode::NORMAL, "").await.unwrap();
            let r = match tokio::time::timeout(Duration::from_secs(2), reader).await {
                Ok(r) => Some(r.unwrap()),
                Err(_) => None,
            };
            (r, t0.elapsed())
        })
        .await;
        let mut tcp = raw_connect(addr).await;
        expect_close(&mut tcp, 1000).await;
        let (r, elapsed) = step("server result", rx.recv()).await.unwrap();
        let r = r.unwrap_or_else(|| panic!("Receiver::recv still pending {elapsed:?} after Sender::close (close_timeout 300 ms)"));
        assert_close_timed_out(&r, elapsed);
    })
    .await
}

/// A server for one connection on a thread of its own, with a runtime of
/// its own: accepts the handshake, runs `serve` on the connection, then
/// drops the runtime before the thread returns what `serve` returned.
fn thread_server<T, F, Fut>(serve: F) -> (SocketAddr, std::thread::JoinHandle<T>)
where
    T: Send + 'static,
    F: FnOnce(WebSocket<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let (ws, _) = accept(tcp, &AcceptOptions::default()).await.unwrap();
            serve(ws).await
        });
        drop(rt);
        out
    });
    (addr, server)
}

// A server on a thread of its own: real time.
#[tokio::test]
async fn unsplit_recv_returns_close_after_the_reply_is_written() {
    // The control for the split regression below: same scenario, unsplit.
    bounded(async {
        let (addr, server) = thread_server(|mut ws| async move {
            let m = ws.recv().await.unwrap();
            assert!(matches!(m, Message::Close(Some(_))), "{m:?}");
        });
        let mut tcp = raw_connect(addr).await;
        tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1000, b"bye"))).await.unwrap();
        expect_close(&mut tcp, 1000).await;
        expect_closed(&mut tcp).await;
        step("server thread", tokio::task::spawn_blocking(move || server.join().unwrap())).await.unwrap();
    })
    .await
}

// A server on a thread of its own: real time.
#[tokio::test]
async fn regression_split_receiver_returns_close_before_the_reply_is_written() {
    // `Receiver::recv` defers to `WebSocket::recv` for the closing behaviour:
    // it "first finishes closing the transport ... and then returns
    // Message::Close". A server that returns right after that (here: its
    // runtime ends) must still have answered the client's close frame.
    bounded(async {
        let (addr, server) = thread_server(|ws| async move {
            let (sender, mut receiver) = ws.split(1 << 16);
            let m = receiver.recv().await.unwrap();
            assert!(matches!(m, Message::Close(Some(_))), "{m:?}");
            sender.is_closed()
        });
        let mut tcp = raw_connect(addr).await;
        tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1000, b"bye"))).await.unwrap();
        let reply = step("close reply", read_frame(&mut tcp)).await;
        let is_closed = step("server thread", tokio::task::spawn_blocking(move || server.join().unwrap())).await.unwrap();
        match reply {
            Ok(f) => assert_eq!(f.close_code(), Some(1000), "{f:?}"),
            Err(e) => panic!("the server's close reply was never written ({e}); Sender::is_closed() was {is_closed}"),
        }
        assert!(is_closed, "Sender::is_closed() is false after Receiver::recv returned Message::Close");
    })
    .await
}
