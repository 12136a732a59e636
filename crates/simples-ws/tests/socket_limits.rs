//! Size limits and early failure over real sockets: the server must fail
//! the connection from a frame header (or from the first bad bytes) without
//! waiting for the rest of the payload.

mod common;

use common::*;
use simples_ws::tokio::{Error, AcceptOptions};
use simples_ws::{Config, Message, ProtocolError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn limited(config: Config) -> AcceptOptions {
    AcceptOptions { config, ..AcceptOptions::default() }
}

/// After the close frame and the server's EOF, the client leaves and the
/// server reports `expected`.
async fn expect_server_error(server: &mut TestServer, tcp: TcpStream, check: impl Fn(&Error) -> bool) {
    drop(tcp);
    match server.ended().await {
        Err(e) if check(&e) => {}
        other => panic!("unexpected server result {other:?}"),
    }
}

/// Expects a close frame with `code` and the server's EOF, then
/// [`expect_server_error`].
async fn expect_failed(server: &mut TestServer, mut tcp: TcpStream, code: u16, check: impl Fn(&Error) -> bool) {
    expect_close(&mut tcp, code).await;
    expect_closed(&mut tcp).await;
    expect_server_error(server, tcp, check).await;
}

#[tokio::test]
async fn message_over_limit_fails_from_the_header_alone() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(limited(Config { max_message_size: 1000, ..Config::default() })).await;
        // Only the header of a 2000-byte binary frame; no payload follows.
        tcp.write_all(&frame_header(true, 0, OP_BINARY, Some(next_key()), 2000)).await.unwrap();
        let f = expect_close(&mut tcp, 1009).await;
        assert!(f.close_reason().contains("1000"), "{:?}", f.close_reason());
        expect_closed(&mut tcp).await;
        expect_server_error(&mut server, tcp, |e| {
            matches!(e, Error::Protocol(ProtocolError::MessageTooBig { size: 2000, max: 1000 }))
        })
        .await;

        // At the limit is fine.
        let mut tcp = raw_connect(server.addr).await;
        tcp.write_all(&client_frame(true, OP_BINARY, &pattern(1000, 1))).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload), (OP_BINARY, pattern(1000, 1)));
    })
    .await
}

#[tokio::test]
async fn frame_over_max_frame_size_fails_from_the_header_alone() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(limited(Config { max_frame_size: 1000, ..Config::default() })).await;
        // A 64-bit length header.
        tcp.write_all(&frame_header(true, 0, OP_TEXT, Some(next_key()), 1 << 40)).await.unwrap();
        expect_failed(&mut server, tcp, 1009, |e| matches!(e, Error::Protocol(ProtocolError::FrameTooBig { .. }))).await;
    })
    .await
}

#[tokio::test]
async fn fragmented_message_over_limit_gets_1009() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(limited(Config { max_message_size: 1000, ..Config::default() })).await;
        tcp.write_all(&client_frame(false, OP_BINARY, &pattern(600, 2))).await.unwrap();
        // A control frame in between is fine.
        tcp.write_all(&client_frame(true, OP_PING, b"x")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!(f.opcode, OP_PONG);
        // The second fragment's header pushes the message past the limit.
        tcp.write_all(&frame_header(false, 0, OP_CONT, Some(next_key()), 600)).await.unwrap();
        expect_failed(&mut server, tcp, 1009, |e| {
            matches!(e, Error::Protocol(ProtocolError::MessageTooBig { size: 1200, max: 1000 }))
        })
        .await;

        // Many small fragments add up too.
        let mut tcp = raw_connect(server.addr).await;
        let mut bytes = client_frame(false, OP_TEXT, &[b'a'; 100]);
        for _ in 0..9 {
            bytes.extend(client_frame(false, OP_CONT, &[b'a'; 100]));
        }
        bytes.extend(client_frame(true, OP_CONT, b"a"));
        tcp.write_all(&bytes).await.unwrap();
        expect_failed(&mut server, tcp, 1009, |e| matches!(e, Error::Protocol(ProtocolError::MessageTooBig { .. }))).await;
    })
    .await
}

#[tokio::test]
async fn invalid_utf8_mid_frame_fails_before_the_rest_arrives() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        let key = next_key();
        let mut payload = b"valid ".to_vec();
        payload.push(0xFF); // never valid in UTF-8
        payload.extend_from_slice(&[b'z'; 93]);
        assert_eq!(payload.len(), 100);
        let mut masked = payload.clone();
        apply_mask(&mut masked, key, 0);
        // Header and the first 10 payload bytes (including the bad byte).
        let mut first = frame_header(true, 0, OP_TEXT, Some(key), 100);
        first.extend_from_slice(&masked[..10]);
        tcp.write_all(&first).await.unwrap();
        // The 1007 arrives while 90 payload bytes are still unsent.
        let f = expect_close(&mut tcp, 1007).await;
        assert!(f.close_reason().contains("UTF-8"), "{:?}", f.close_reason());
        // Only now the rest; the server may already have closed.
        let _ = tcp.write_all(&masked[10..]).await;
        expect_closed(&mut tcp).await;
        expect_server_error(&mut server, tcp, |e| matches!(e, Error::Protocol(ProtocolError::InvalidUtf8))).await;
    })
    .await
}

#[tokio::test]
async fn invalid_utf8_in_a_later_fragment_gets_1007() {
    bounded(async {
        let (mut server, mut tcp) = echo_server_and_raw_client(AcceptOptions::default()).await;
        // "\xE2\x82" starts a 3-byte character; "(" cannot continue it.
        tcp.write_all(&client_frame(false, OP_TEXT, b"ok \xE2\x82")).await.unwrap();
        tcp.write_all(&client_frame(true, OP_CONT, b"(")).await.unwrap();
        expect_failed(&mut server, tcp, 1007, |e| matches!(e, Error::Protocol(ProtocolError::InvalidUtf8))).await;

        // A message that ends inside a character.
        let mut tcp = raw_connect(server.addr).await;
        tcp.write_all(&client_frame(true, OP_TEXT, b"ends badly \xE2\x82")).await.unwrap();
        expect_failed(&mut server, tcp, 1007, |e| matches!(e, Error::Protocol(ProtocolError::InvalidUtf8))).await;
    })
    .await
}

#[tokio::test]
async fn per_connection_config_from_accept_with_applies() {
    bounded(async {
        // The application lowers the limit for one path only.
        let mut server = echo_server_with(AcceptOptions::default(), |req| {
            let config = (req.path() == "/small").then(|| Config { max_message_size: 10, ..Config::default() });
            Ok(simples_ws::tokio::Accept { config, ..Default::default() })
        })
        .await;
        let (mut tcp, _) = raw_connect_with(server.addr, "/big", &[]).await;
        tcp.write_all(&client_frame(true, OP_TEXT, &[b'x'; 100])).await.unwrap();
        assert_eq!(expect_frame(&mut tcp).await.payload.len(), 100);
        let (mut tcp2, _) = raw_connect_with(server.addr, "/small", &[]).await;
        tcp2.write_all(&client_frame(true, OP_TEXT, &[b'x'; 100])).await.unwrap();
        expect_close(&mut tcp2, 1009).await;
        drop(tcp2);
        loop {
            if let Event::Ended(r) = server.next_event().await {
                assert!(matches!(r, Err(Error::Protocol(ProtocolError::MessageTooBig { .. }))), "{r:?}");
                break;
            }
        }
        // The other connection is unaffected.
        tcp.write_all(&client_frame(true, OP_TEXT, b"still here")).await.unwrap();
        assert_eq!(expect_frame(&mut tcp).await.payload, b"still here");
    })
    .await
}

#[tokio::test]
async fn our_client_enforces_its_own_limit() {
    bounded(async {
        let server = echo_server(AcceptOptions::default()).await;
        let config = Config { max_message_size: 1000, close_timeout: std::time::Duration::from_millis(500), ..Config::default() };
        let (mut ws, _) = simples_ws::tokio::connect_with(
            &server.url("/"),
            &simples_ws::handshake::client::ClientConfig::default(),
            config,
        )
        .await
        .unwrap();
        // The server echoes 2000 bytes back; our client refuses them.
        ws.send(Message::binary(pattern(2000, 9))).await.unwrap();
        let r = step("client error", ws.recv()).await;
        assert!(matches!(r, Err(Error::Protocol(ProtocolError::MessageTooBig { .. }))), "{r:?}");
    })
    .await
}

#[tokio::test]
async fn ping_flood_is_failed_with_1008() {
    bounded(async {
        let config = Config { max_control_frames_per_second: Some(50), ..Config::default() };
        let (mut server, mut tcp) = echo_server_and_raw_client(limited(config)).await;
        let flood: Vec<u8> = (0..200).flat_map(|_| client_frame(true, OP_PING, b"flood")).collect();
        tcp.write_all(&flood).await.unwrap();
        // The first 50 are answered, then the close frame.
        let mut pongs = 0;
        let close = loop {
            let f = expect_frame(&mut tcp).await;
            if f.opcode != OP_PONG {
                break f;
            }
            pongs += 1;
        };
        assert_eq!((close.opcode, close.close_code()), (OP_CLOSE, Some(1008)), "{:?}", close.close_reason());
        assert_eq!(pongs, 50);
        expect_closed(&mut tcp).await;
        expect_server_error(&mut server, tcp, |e| {
            matches!(e, Error::Protocol(ProtocolError::ControlFrameFlood { max: 50 }))
        })
        .await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn pings_under_the_limit_keep_the_connection_open() {
    bounded(async {
        let config = Config { max_control_frames_per_second: Some(50), ..Config::default() };
        let (_server, mut tcp) = echo_server_and_raw_client(limited(config)).await;
        // 40 pings a second for five seconds of the paused clock.
        for _ in 0..5 {
            let burst: Vec<u8> = (0..40).flat_map(|_| client_frame(true, OP_PING, b"ok")).collect();
            tcp.write_all(&burst).await.unwrap();
            for _ in 0..40 {
                assert_eq!(expect_frame(&mut tcp).await.opcode, OP_PONG);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        tcp.write_all(&client_frame(true, OP_TEXT, b"still here")).await.unwrap();
        let f = expect_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload), (OP_TEXT, b"still here".to_vec()));
    })
    .await
}
