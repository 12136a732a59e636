//! permessage-deflate over real sockets (127.0.0.1): negotiation in the
//! tokio driver's accept and connect, the budget, client-side validation of
//! responses, raw wire checks and compressed broadcasts.
#![cfg(all(feature = "deflate", feature = "tokio"))]

use simples_ws::deflate::{DeflateBudget, DeflateConfig};
use simples_ws::handshake::client::ClientConfig;
use simples_ws::handshake::HandshakeErrorKind;
use simples_ws::tokio::{accept, connect_with, connect_with_deflate, Error, AcceptOptions, WebSocket};
use simples_ws::{Config, Message, PreparedFrame};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("test timed out")
}

/// An echo server with `options`; each accepted connection reports its
/// negotiated extension memory after every echo on `report`.
async fn echo_server(options: AcceptOptions) -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let options = options.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok((mut ws, _)) = accept(tcp, &options).await else { return };
                loop {
                    match ws.recv().await {
                        Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                            if ws.send(m).await.is_err() {
                                return;
                            }
                            let _ = tx.send(ws.protocol().extension_memory());
                        }
                        Ok(Message::Close(_)) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn deflate_server() -> AcceptOptions {
    AcceptOptions { deflate: Some(DeflateConfig::default()), ..AcceptOptions::default() }
}

fn json(i: usize) -> String {
    format!("{{\"id\":{i},\"user\":\"someone\",\"items\":[{}]}}", "{\"sku\":\"ABC-123\",\"qty\":2},".repeat(i % 40 + 1))
}

async fn echo_all(ws: &mut WebSocket<TcpStream>) {
    let mut messages = vec![Message::text(""), Message::text("short"), Message::binary(vec![7u8; 100_000])];
    messages.extend((0..50).map(|i| Message::text(json(i))));
    for m in messages {
        ws.send(m.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), m);
    }
}

#[tokio::test]
async fn server_and_client_negotiate_and_echo() {
    bounded(async {
        let (addr, mut mem) = echo_server(deflate_server()).await;
        let url = format!("ws://{addr}/");
        let (mut ws, response) =
            connect_with_deflate(&url, &ClientConfig::default(), Config::default(), &DeflateConfig::default()).await.unwrap();
        assert_eq!(response.extensions, vec!["permessage-deflate".to_string()]);
        echo_all(&mut ws).await;
        // Context takeover: both sides keep their contexts.
        assert!(ws.protocol().extension_memory() > 300_000, "{}", ws.protocol().extension_memory());
        let mut last = 0;
        while let Ok(m) = mem.try_recv() {
            last = m;
        }
        assert!(last > 300_000, "server holds {last}");
        ws.close(simples_ws::CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(ws.recv().await.unwrap(), Message::Close(_)));
    })
    .await
}

#[tokio::test]
async fn no_context_takeover_holds_nothing_between_messages() {
    bounded(async {
        let server = DeflateConfig { server_no_context_takeover: true, client_no_context_takeover: true, ..DeflateConfig::default() };
        let (addr, mut mem) = echo_server(AcceptOptions { deflate: Some(server), ..AcceptOptions::default() }).await;
        let (mut ws, response) =
            connect_with_deflate(&format!("ws://{addr}/"), &ClientConfig::default(), Config::default(), &DeflateConfig::default())
                .await
                .unwrap();
        assert_eq!(response.extensions, vec!["permessage-deflate; server_no_context_takeover; client_no_context_takeover".to_string()]);
        echo_all(&mut ws).await;
        assert_eq!(ws.protocol().extension_memory(), 0);
        while let Ok(m) = mem.try_recv() {
            assert_eq!(m, 0);
        }
    })
    .await
}

#[tokio::test]
async fn declined_or_not_offered_means_uncompressed() {
    bounded(async {
        // The server has deflate, the client does not offer it.
        let (addr, _) = echo_server(deflate_server()).await;
        let (mut ws, response) = connect_with(&format!("ws://{addr}/"), &ClientConfig::default(), Config::default()).await.unwrap();
        assert!(response.extensions.is_empty());
        echo_all(&mut ws).await;
        // The client offers, the server has no deflate.
        let (addr, _) = echo_server(AcceptOptions::default()).await;
        let (mut ws, response) =
            connect_with_deflate(&format!("ws://{addr}/"), &ClientConfig::default(), Config::default(), &DeflateConfig::default())
                .await
                .unwrap();
        assert!(response.extensions.is_empty());
        echo_all(&mut ws).await;
        assert_eq!(ws.protocol().extension_memory(), 0);
    })
    .await
}

#[tokio::test]
async fn raw_offer_in_client_config_is_honoured() {
    bounded(async {
        let (addr, _) = echo_server(deflate_server()).await;
        let client = ClientConfig {
            extensions: Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits".into()),
            ..ClientConfig::default()
        };
        let (mut ws, response) = connect_with(&format!("ws://{addr}/"), &client, Config::default()).await.unwrap();
        assert_eq!(response.extensions, vec!["permessage-deflate; server_max_window_bits=10".to_string()]);
        echo_all(&mut ws).await;
    })
    .await
}

#[tokio::test]
async fn budget_declines_over_the_cap() {
    bounded(async {
        let budget = DeflateBudget::new(1);
        let options = AcceptOptions {
            deflate: Some(DeflateConfig { budget: Some(budget.clone()), ..DeflateConfig::default() }),
            ..AcceptOptions::default()
        };
        let (addr, _) = echo_server(options).await;
        let url = format!("ws://{addr}/");
        let d = DeflateConfig::default();
        let (mut first, r1) = connect_with_deflate(&url, &ClientConfig::default(), Config::default(), &d).await.unwrap();
        assert_eq!(r1.extensions.len(), 1);
        assert_eq!(budget.connections(), 1);
        let (mut second, r2) = connect_with_deflate(&url, &ClientConfig::default(), Config::default(), &d).await.unwrap();
        assert!(r2.extensions.is_empty(), "over the cap: declined, not failed");
        echo_all(&mut second).await;
        echo_all(&mut first).await;
        first.close(simples_ws::CloseCode::NORMAL, "").await.unwrap();
        assert!(matches!(first.recv().await.unwrap(), Message::Close(_)));
        drop(first);
        // The server task drops its connection (and permit) shortly after.
        for _ in 0..100 {
            if budget.connections() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(budget.connections(), 0);
        let (mut third, r3) = connect_with_deflate(&url, &ClientConfig::default(), Config::default(), &d).await.unwrap();
        assert_eq!(r3.extensions.len(), 1);
        echo_all(&mut third).await;
    })
    .await
}

/// A fake server answering the handshake with `extensions`.
async fn fake_server(extensions: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: ")))
            .unwrap()
            .trim()
            .to_string();
        let accept = simples_ws::handshake::accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n"
        );
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.read(&mut chunk).await;
    });
    addr
}

#[tokio::test]
async fn client_fails_on_invalid_responses() {
    bounded(async {
        let d = DeflateConfig { server_max_window_bits: 10, ..DeflateConfig::default() };
        for bad in [
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate, permessage-deflate",
            "x-not-offered",
        ] {
            let addr = fake_server(bad).await;
            let err = connect_with_deflate(&format!("ws://{addr}/"), &ClientConfig::default(), Config::default(), &d)
                .await
                .expect_err(bad);
            match err {
                Error::Handshake(e) => assert_eq!(*e.kind(), HandshakeErrorKind::BadResponse, "{bad}: {e}"),
                other => panic!("{bad}: {other}"),
            }
        }
        // Extensions in a response to a client that offered none.
        let addr = fake_server("permessage-deflate").await;
        assert!(connect_with(&format!("ws://{addr}/"), &ClientConfig::default(), Config::default()).await.is_err());
    })
    .await
}

/// Reads one frame: (first byte, payload).
async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).await.unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).await.unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).await.unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.unwrap();
    (h[0], payload)
}

#[tokio::test]
async fn raw_client_sees_rfc7692_on_the_wire() {
    bounded(async {
        let (addr, _) = echo_server(deflate_server()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // Two header fields, the first offer invalid (repeated parameter).
        let request = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; server_max_window_bits=9\r\n\
            Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_max_window_bits=11, permessage-deflate\r\n\r\n";
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            tcp.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(
            head.contains("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_max_window_bits=11\r\n"),
            "{head}"
        );
        // RFC 7692 §7.2.3.1: "Hello" compressed, masked with a zero key.
        tcp.write_all(&[0xc1, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).await.unwrap();
        // Echoed below min_size: uncompressed.
        assert_eq!(read_frame(&mut tcp).await, (0x81, b"Hello".to_vec()));
        // A longer text, fragmented by the client (RSV1 on the first frame).
        let text = "Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello!";
        let mut c = simples_ws::deflate::compress_message(text.as_bytes(), 6, 15).unwrap();
        let second = c.split_off(c.len() / 2);
        tcp.write_all(&[&[0x41, 0x80 | c.len() as u8, 0, 0, 0, 0][..], &c].concat()).await.unwrap();
        tcp.write_all(&[0x89, 0x80, 0, 0, 0, 0]).await.unwrap(); // a ping in between
        tcp.write_all(&[&[0x80, 0x80 | second.len() as u8, 0, 0, 0, 0][..], &second].concat()).await.unwrap();
        assert_eq!(read_frame(&mut tcp).await, (0x8a, Vec::new()), "pong, never compressed");
        let (b0, payload) = read_frame(&mut tcp).await;
        assert_eq!(b0, 0xc1, "FIN + RSV1 + text");
        let mut ext = simples_ws::deflate::DeflateExtension::new(
            simples_ws::Role::Client,
            simples_ws::deflate::DeflateParams { server_max_window_bits: 11, ..Default::default() },
            &DeflateConfig::default(),
        );
        let plain = simples_ws::Extension::decode(&mut ext, 0x40, payload.into(), true, 1 << 20).unwrap();
        assert_eq!(plain, text.as_bytes());
    })
    .await
}

#[tokio::test]
async fn compressed_broadcast_reaches_mixed_clients() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let message = Message::text(json(30));
        let prepared = PreparedFrame::compressed(&message, 6).unwrap();
        let server = tokio::spawn(async move {
            let options = deflate_server();
            let mut conns = Vec::new();
            for _ in 0..3 {
                let (tcp, _) = listener.accept().await.unwrap();
                conns.push(accept(tcp, &options).await.unwrap().0);
            }
            for ws in &mut conns {
                ws.send(Message::text(json(29))).await.unwrap();
                ws.send_prepared(&prepared).await.unwrap();
                ws.send(Message::text(json(28))).await.unwrap();
            }
            for ws in &mut conns {
                let _ = ws.recv().await;
            }
        });
        let url = format!("ws://{addr}/");
        let narrow = DeflateConfig { server_max_window_bits: 9, ..DeflateConfig::default() };
        let mut clients = vec![
            connect_with_deflate(&url, &ClientConfig::default(), Config::default(), &DeflateConfig::default()).await.unwrap().0,
            connect_with(&url, &ClientConfig::default(), Config::default()).await.unwrap().0,
            connect_with_deflate(&url, &ClientConfig::default(), Config::default(), &narrow).await.unwrap().0,
        ];
        for ws in &mut clients {
            assert_eq!(ws.recv().await.unwrap(), Message::text(json(29)));
            assert_eq!(ws.recv().await.unwrap(), message);
            assert_eq!(ws.recv().await.unwrap(), Message::text(json(28)));
            ws.close(simples_ws::CloseCode::NORMAL, "").await.unwrap();
        }
        server.await.unwrap();
    })
    .await
}
