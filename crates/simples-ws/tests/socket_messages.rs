//! Data and control messages over real sockets: echo at the frame-length
//! boundaries (our client and server, and tungstenite on either side), pings,
//! ordering, concurrent senders and cancel-safety of `recv`.

mod common;

use common::*;
use simples_ws::tokio::{accept, connect, Error, Receiver, Sender, AcceptOptions, WebSocket};
use simples_ws::{CloseCode, Message};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Payload sizes at every length-encoding boundary (RFC 6455 §5.2).
const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 1 << 20];

fn data_messages() -> Vec<Message> {
    let mut v = Vec::new();
    for &n in &SIZES {
        v.push(Message::text(text_of_len(n)));
        v.push(Message::binary(pattern(n, n as u8)));
    }
    v
}

#[tokio::test]
async fn our_client_our_server_echo_all_sizes() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        let (mut ws, _) = connect(&server.url("/")).await.unwrap();
        for m in data_messages() {
            ws.send(m.clone()).await.unwrap();
            let back = step("echo", ws.recv()).await.unwrap();
            assert!(back == m, "echo of a {}-byte message differs", m.payload().len());
        }
        ws.close(CloseCode::NORMAL, "done").await.unwrap();
        assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
        let (got, end) = server.messages_until_end().await;
        assert_eq!(got, data_messages());
        assert!(end.is_ok(), "{end:?}");
    })
    .await
}

#[tokio::test]
async fn tungstenite_client_our_server_echo_all_sizes() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        let addr = server.addr;
        let client = tokio::task::spawn_blocking(move || {
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(STEP)).unwrap();
            let (mut ws, resp) = tungstenite::client(format!("ws://{addr}/t"), tcp).map_err(|e| e.to_string()).unwrap();
            assert_eq!(resp.status(), 101);
            for &n in &SIZES {
                let text = text_of_len(n);
                ws.send(tungstenite::Message::text(text.clone())).unwrap();
                let back = ws.read().unwrap();
                assert!(back.is_text(), "size {n}");
                assert!(back.into_text().unwrap().as_str() == text, "text echo of {n} bytes differs");
                let bin = pattern(n, 7);
                ws.send(tungstenite::Message::binary(bin.clone())).unwrap();
                let back = ws.read().unwrap();
                assert!(back.is_binary(), "size {n}");
                assert!(back.into_data()[..] == bin[..], "binary echo of {n} bytes differs");
            }
            // A ping is answered with the same payload.
            ws.send(tungstenite::Message::Ping(b"are you there"[..].into())).unwrap();
            match ws.read().unwrap() {
                tungstenite::Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
                other => panic!("expected a pong, got {other:?}"),
            }
            ws.close(Some(tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            }))
            .unwrap();
            loop {
                match ws.read() {
                    Ok(tungstenite::Message::Close(Some(f))) => {
                        assert_eq!(u16::from(f.code), 1000);
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(tungstenite::Error::ConnectionClosed) => break,
                    Err(e) => panic!("closing failed: {e}"),
                }
            }
        });
        step("tungstenite client", client).await.unwrap();
        let (got, end) = server.messages_until_end().await;
        assert_eq!(got.len(), SIZES.len() * 2 + 1);
        assert_eq!(got.last(), Some(&Message::Ping(b"are you there"[..].into())));
        match end {
            Ok(Message::Close(Some(f))) => assert_eq!((f.code, f.reason.as_str()), (CloseCode::NORMAL, "bye")),
            other => panic!("{other:?}"),
        }
    })
    .await
}

/// A blocking tungstenite echo server for one connection.
fn tungstenite_echo_server() -> (SocketAddr, std::thread::JoinHandle<Vec<tungstenite::Message>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(STEP)).unwrap();
        let mut ws = tungstenite::accept(tcp).map_err(|e| e.to_string()).unwrap();
        let mut seen = Vec::new();
        loop {
            match ws.read() {
                Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => {
                    ws.send(m.clone()).unwrap();
                    seen.push(m);
                }
                Ok(m) => seen.push(m),
                Err(tungstenite::Error::ConnectionClosed) => return seen,
                Err(e) => panic!("tungstenite server: {e}"),
            }
        }
        // Dropping `ws` closes TCP (the server closes first).
    });
    (addr, handle)
}

#[tokio::test]
async fn our_client_tungstenite_server_echo_all_sizes() {
    bounded(async {
        let (addr, server) = tungstenite_echo_server();
        let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        for m in data_messages() {
            ws.send(m.clone()).await.unwrap();
            let back = step("echo", ws.recv()).await.unwrap();
            assert!(back == m, "echo of a {}-byte message differs", m.payload().len());
        }
        ws.send(Message::Ping(b"p"[..].into())).await.unwrap();
        assert_eq!(step("pong", ws.recv()).await.unwrap(), Message::Pong(b"p"[..].into()));
        ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        match step("close echo", ws.recv()).await.unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::NORMAL),
            other => panic!("{other:?}"),
        }
        assert!(matches!(ws.recv().await, Err(simples_ws::tokio::Error::Closed)));
        let seen = step("server thread", tokio::task::spawn_blocking(move || server.join().unwrap())).await.unwrap();
        assert_eq!(seen.len(), SIZES.len() * 2 + 2, "data, ping and close");
        match seen.last() {
            Some(tungstenite::Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1000);
                assert_eq!(f.reason.as_str(), "bye");
            }
            other => panic!("{other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn raw_ping_gets_pong_with_same_payload() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        for payload in [&b""[..], b"hello ping", &[0xAB; 125][..]] {
            tcp.write_all(&client_frame(true, OP_PING, payload)).await.unwrap();
            let f = expect_frame(&mut tcp).await;
            assert_eq!(f.opcode, OP_PONG);
            assert!(f.fin && !f.masked && f.rsv == 0);
            assert_eq!(f.payload, payload);
        }
        // A ping between two fragments of a message is answered at once.
        tcp.write_all(&client_frame(false, OP_TEXT, b"split ")).await.unwrap();
        tcp.write_all(&client_frame(true, OP_PING, b"mid")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_PONG, &b"mid"[..]));
        tcp.write_all(&client_frame(true, OP_CONT, b"message")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_TEXT, &b"split message"[..]));
        // Unsolicited pongs are delivered and not answered.
        tcp.write_all(&client_frame(true, OP_PONG, b"unsolicited")).await.unwrap();
        tcp.write_all(&client_frame(true, OP_TEXT, b"after")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (OP_TEXT, &b"after"[..]));

        let mut got = Vec::new();
        while got.len() < 7 {
            if let Event::Received(m) = server.next_event().await {
                got.push(m);
            }
        }
        assert_eq!(got[0], Message::Ping(b""[..].into()));
        assert_eq!(got[1], Message::Ping(b"hello ping"[..].into()));
        assert_eq!(got[3], Message::Ping(b"mid"[..].into()));
        assert_eq!(got[4], Message::text("split message"));
        assert_eq!(got[5], Message::Pong(b"unsolicited"[..].into()));
    })
    .await
}

#[tokio::test]
async fn our_client_ping_gets_pong() {
    bounded(async {
        let server = echo_server(AcceptOptions::default()).await;
        let (mut ws, _) = connect(&server.url("/")).await.unwrap();
        ws.send(Message::Ping(b"12345"[..].into())).await.unwrap();
        assert_eq!(step("pong", ws.recv()).await.unwrap(), Message::Pong(b"12345"[..].into()));
    })
    .await
}

#[tokio::test]
async fn order_is_preserved_over_1000_messages() {
    bounded(async {
        let mut server = echo_server(AcceptOptions::default()).await;
        let (mut ws, _) = connect(&server.url("/")).await.unwrap();
        for i in 0..1000 {
            let m = if i % 3 == 0 { Message::binary(format!("bin-{i}").into_bytes()) } else { Message::text(format!("msg-{i}")) };
            ws.feed(m).await.unwrap();
        }
        ws.flush().await.unwrap();
        for i in 0..1000 {
            let m = step("echo", ws.recv()).await.unwrap();
            let expected =
                if i % 3 == 0 { Message::binary(format!("bin-{i}").into_bytes()) } else { Message::text(format!("msg-{i}")) };
            assert_eq!(m, expected, "message {i}");
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
        let (got, _) = server.messages_until_end().await;
        assert_eq!(got.len(), 1000);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_sender_clones_in_many_tasks() {
    bounded(async {
        const TASKS: usize = 16;
        const PER_TASK: usize = 200;
        let mut server = echo_server(AcceptOptions::default()).await;
        let (ws, _) = connect(&server.url("/")).await.unwrap();
        let (tx, mut rx) = ws.split(8 * 1024);
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    // Some larger messages so the bounded queue fills up.
                    let m = if i % 50 == 0 {
                        Message::binary([vec![t as u8, (i >> 8) as u8, i as u8], pattern(20_000, t as u8)].concat())
                    } else {
                        Message::text(format!("{t}:{i}"))
                    };
                    tx.send(m).await.unwrap();
                    if i % 17 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        let mut next = HashMap::new();
        for _ in 0..TASKS * PER_TASK {
            let (t, i) = match step("echo", rx.recv()).await.unwrap() {
                Message::Text(s) => {
                    let (t, i) = s.split_once(':').unwrap();
                    (t.parse::<usize>().unwrap(), i.parse::<usize>().unwrap())
                }
                Message::Binary(b) => {
                    let t = b[0] as usize;
                    assert_eq!(b[3..], pattern(20_000, t as u8)[..], "binary body corrupted");
                    (t, ((b[1] as usize) << 8) | b[2] as usize)
                }
                other => panic!("unexpected {other:?}"),
            };
            // Each task's messages arrive in the order it sent them.
            let expected = next.entry(t).or_insert(0usize);
            assert_eq!(i, *expected, "task {t}");
            *expected += 1;
        }
        assert!(next.values().all(|&n| n == PER_TASK));
        for t in tasks {
            t.await.unwrap();
        }
        tx.close(CloseCode::NORMAL, "all done").await.unwrap();
        match step("close echo", rx.recv()).await.unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::NORMAL),
            other => panic!("{other:?}"),
        }
        let (got, end) = server.messages_until_end().await;
        assert_eq!(got.len(), TASKS * PER_TASK);
        assert!(end.is_ok(), "{end:?}");
        // Nothing can be sent after the closing handshake. (`is_closed()`
        // may still be false here: see
        // socket_close::regression_split_receiver_returns_close_before_the_reply_is_written.)
        assert!(tx.send(Message::text("late")).await.is_err());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_split_broadcasts_from_many_tasks() {
    bounded(async {
        const TASKS: usize = 8;
        const PER_TASK: usize = 100;
        let addr = spawn_server(|tcp| async move {
            let (ws, _) = accept(tcp, &AcceptOptions::default()).await.unwrap();
            let (tx, mut rx) = ws.split(4096);
            for t in 0..TASKS {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..PER_TASK {
                        tx.send(Message::text(format!("{t}:{i}"))).await.unwrap();
                    }
                });
            }
            drop(tx);
            // Keep receiving so the client's close is answered.
            while rx.recv().await.is_ok() {}
        })
        .await;
        let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        let mut next = [0usize; TASKS];
        for _ in 0..TASKS * PER_TASK {
            let m = step("broadcast", ws.recv()).await.unwrap();
            let Message::Text(s) = m else { panic!("{m:?}") };
            let (t, i) = s.split_once(':').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t]);
            next[t] += 1;
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(step("close", ws.recv()).await.unwrap(), Message::Close(_)));
    })
    .await
}

// ---------------------------------------------------------------------------
// Cancel safety: recv raced against a short sleep while frames trickle in
// ---------------------------------------------------------------------------

/// Frames a raw client trickles in, and the messages they make.
fn trickle_frames() -> (Vec<Vec<u8>>, Vec<Message>) {
    let bin = pattern(200, 3);
    let frames = vec![
        client_frame(true, OP_TEXT, b"hello"),
        client_frame(true, OP_TEXT, "héllo wörld €".as_bytes()),
        // A text message in two fragments, splitting the euro sign, with a
        // ping in between.
        client_frame(false, OP_TEXT, b"ab\xE2\x82"),
        client_frame(true, OP_PING, b"p1"),
        client_frame(true, OP_CONT, b"\xAC cd"),
        client_frame(true, OP_BINARY, &bin),
        client_frame(true, OP_TEXT, b""),
        client_frame(true, OP_BINARY, b"last"),
    ];
    let messages = vec![
        Message::text("hello"),
        Message::text("héllo wörld €"),
        Message::Ping(b"p1"[..].into()),
        Message::text("ab€ cd"),
        Message::binary(bin),
        Message::text(""),
        Message::binary(&b"last"[..]),
    ];
    (frames, messages)
}

/// Trickles [`trickle_frames`] byte by byte, then checks the server's echo.
async fn trickle_client(addr: SocketAddr) {
    let mut tcp = raw_connect(addr).await;
    let (frames, messages) = trickle_frames();
    for f in &frames {
        write_slowly(&mut tcp, f, Duration::from_millis(1)).await.unwrap();
    }
    // The server echoes data messages and answers the ping.
    let mut echoed = Vec::new();
    while echoed.len() < messages.len() {
        let f = expect_frame(&mut tcp).await;
        echoed.push((f.opcode, f.payload));
    }
    let expected: Vec<(u8, Vec<u8>)> = messages
        .iter()
        .map(|m| match m {
            Message::Text(t) => (OP_TEXT, t.as_bytes().to_vec()),
            Message::Binary(b) => (OP_BINARY, b.to_vec()),
            Message::Ping(p) => (OP_PONG, p.to_vec()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(echoed, expected);
    tcp.write_all(&client_frame(true, OP_CLOSE, &close_payload(1000, b""))).await.unwrap();
    expect_close(&mut tcp, 1000).await;
    expect_closed(&mut tcp).await;
}

/// A server connection, unsplit or split, for [`echo_racing_a_sleep`].
trait EchoConn {
    async fn recv(&mut self) -> Result<Message, Error>;
    async fn send(&mut self, m: Message) -> Result<(), Error>;
}

impl EchoConn for WebSocket<TcpStream> {
    async fn recv(&mut self) -> Result<Message, Error> {
        WebSocket::recv(self).await
    }
    async fn send(&mut self, m: Message) -> Result<(), Error> {
        WebSocket::send(self, m).await
    }
}

impl EchoConn for (Sender, Receiver<TcpStream>) {
    async fn recv(&mut self) -> Result<Message, Error> {
        self.1.recv().await
    }
    async fn send(&mut self, m: Message) -> Result<(), Error> {
        self.0.send(m).await
    }
}

/// Receives until a close, racing every `recv` against a 300 µs sleep and
/// echoing data messages; returns the messages and how many times `recv`
/// was cancelled.
async fn echo_racing_a_sleep(conn: &mut impl EchoConn) -> (Vec<Message>, usize) {
    let mut got = Vec::new();
    let mut cancelled = 0usize;
    loop {
        tokio::select! {
            r = conn.recv() => match r {
                Ok(Message::Close(_)) => break,
                Ok(m) => {
                    if m.is_data() {
                        conn.send(m.clone()).await.unwrap();
                    }
                    got.push(m);
                }
                Err(e) => panic!("recv failed: {e:?}"),
            },
            _ = tokio::time::sleep(Duration::from_micros(300)) => cancelled += 1,
        }
    }
    (got, cancelled)
}

/// Runs [`trickle_client`] against a server that runs [`echo_racing_a_sleep`]
/// on each connection (split first if `split`), and checks what it got.
async fn expect_cancel_safe(split: bool) {
    let (addr, mut rx) = spawn_reporting_server(move |tcp| async move {
        let (mut ws, _) = accept(tcp, &AcceptOptions::default()).await.unwrap();
        if split {
            echo_racing_a_sleep(&mut ws.split(1 << 16)).await
        } else {
            echo_racing_a_sleep(&mut ws).await
        }
    })
    .await;
    trickle_client(addr).await;
    let (got, cancelled) = step("server result", rx.recv()).await.unwrap();
    assert_eq!(got, trickle_frames().1);
    assert!(cancelled > 50, "recv was cancelled only {cancelled} times");
}

#[tokio::test]
async fn recv_is_cancel_safe_under_select() {
    bounded(expect_cancel_safe(false)).await
}

#[tokio::test]
async fn split_receiver_is_cancel_safe_under_select() {
    bounded(expect_cancel_safe(true)).await
}

#[tokio::test]
async fn client_recv_is_cancel_safe_with_large_messages() {
    bounded(async {
        // Large messages arrive in many reads; every read may be cancelled.
        let server = echo_server(AcceptOptions::default()).await;
        let (mut ws, _) = connect(&server.url("/")).await.unwrap();
        let messages: Vec<Message> = (0..6).map(|i| Message::binary(pattern(300_000 + i, i as u8))).collect();
        for m in &messages {
            ws.feed(m.clone()).await.unwrap();
        }
        ws.flush().await.unwrap();
        let mut got = Vec::new();
        let mut cancelled = 0usize;
        while got.len() < messages.len() {
            tokio::select! {
                r = ws.recv() => got.push(r.unwrap()),
                _ = tokio::task::yield_now() => cancelled += 1,
            }
        }
        assert!(got == messages, "large messages corrupted under cancellation");
        assert!(cancelled > 0);
    })
    .await
}
