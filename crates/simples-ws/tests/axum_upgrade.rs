//! The axum extractor over real sockets: the `axum_chat` example's app on
//! 127.0.0.1, with simples-ws's client and tungstenite: the page, the
//! broadcast chat, permessage-deflate when offered, the subprotocol, and the
//! refusals of the one handshake rule.

mod common;

#[allow(dead_code)]
#[path = "../examples/axum_chat.rs"]
mod axum_chat;

use common::*;
use simples_ws::deflate::DeflateConfig;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::tokio::{connect_with, connect_with_deflate, WebSocket};
use simples_ws::{Config, Message};
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum_chat::app()).await.unwrap() });
    addr
}

async fn next_text(ws: &mut WebSocket<TcpStream>) -> String {
    match step("a message", ws.recv()).await.unwrap() {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends `request` and reads the response (head and body); the connection
/// may stay open (keep-alive).
async fn ask(addr: SocketAddr, request: &str) -> HttpResponse {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    step("HTTP response", read_http_response(&mut tcp)).await.unwrap()
}

#[tokio::test]
async fn page_chat_deflate_and_protocol() {
    bounded(async {
        let addr = start().await;
        let page = ask(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(page.status(), 200);
        assert!(page.body_text().contains("new WebSocket("), "{}", page.body_text());

        // simples-ws's client, offering deflate and two subprotocols.
        let client = ClientConfig { protocols: vec!["other".into(), "chat".into()], ..Default::default() };
        let url = format!("ws://{addr}/ws");
        let (mut a, response) = connect_with_deflate(&url, &client, Config::default(), &DeflateConfig::default()).await.unwrap();
        assert_eq!(response.header("Sec-WebSocket-Protocol"), Some("chat"));
        let agreed = response.header("Sec-WebSocket-Extensions").unwrap_or_default();
        assert!(agreed.starts_with("permessage-deflate"), "{agreed:?}");
        assert!(next_text(&mut a).await.starts_with("welcome"));

        // tungstenite, offering nothing: no subprotocol, no extension. Its
        // script: hear the welcome and A's message, answer, hear itself.
        let (tx, mut from_b) = tokio::sync::mpsc::unbounded_channel::<String>();
        let b = std::thread::spawn(move || {
            let (mut b, response) = tungstenite::connect(url).unwrap();
            assert!(response.headers().get("sec-websocket-protocol").is_none());
            assert!(response.headers().get("sec-websocket-extensions").is_none());
            let mut texts = 0;
            loop {
                match b.read() {
                    Ok(tungstenite::Message::Text(t)) => {
                        tx.send(t.as_str().to_owned()).unwrap();
                        texts += 1;
                        if texts == 2 {
                            b.send(tungstenite::Message::text("hi from b")).unwrap();
                        }
                    }
                    Ok(tungstenite::Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        assert!(step("b's welcome", from_b.recv()).await.unwrap().starts_with("welcome (2 online)"));

        // A's message reaches everyone, A included; A's copy is compressed
        // by the server (its contexts now hold memory on both sides).
        let long = "hello from a ".repeat(100);
        a.send(Message::text(long.clone())).await.unwrap();
        assert_eq!(next_text(&mut a).await, long);
        assert!(a.protocol().extension_memory() > 0, "deflate is installed on the client");
        assert_eq!(step("b hears a", from_b.recv()).await.unwrap(), long);
        // B's answer reaches A and B.
        assert_eq!(next_text(&mut a).await, "hi from b");
        assert_eq!(step("b hears itself", from_b.recv()).await.unwrap(), "hi from b");

        // Without an offer in common: accepted, no subprotocol.
        let client = ClientConfig { protocols: vec!["mqtt".into()], ..Default::default() };
        let (mut c, response) = connect_with(&format!("ws://{addr}/ws"), &client, Config::default()).await.unwrap();
        assert_eq!(response.header("Sec-WebSocket-Protocol"), None);
        assert!(next_text(&mut c).await.starts_with("welcome (3 online)"));

        // Over max_message_size: the connection is failed with 1009.
        c.send(Message::text("x".repeat(axum_chat::MAX_MESSAGE + 1))).await.unwrap();
        loop {
            match step("close", c.recv()).await {
                Ok(Message::Close(Some(frame))) => {
                    assert_eq!(frame.code.0, 1009);
                    break;
                }
                Ok(Message::Text(_)) => continue,
                other => panic!("expected a close 1009, got {other:?}"),
            }
        }

        drop(a);
        // The server closes B's connection when the test's runtime ends;
        // B's thread is not joined (its blocking read would wait for that).
        drop(b);
    })
    .await
}

#[tokio::test]
async fn refusals_come_from_the_rule() {
    bounded(async {
        let addr = start().await;
        let base = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        let key = format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n");

        let no_key = ask(addr, &format!("{base}Sec-WebSocket-Version: 13\r\n\r\n")).await;
        assert_eq!(no_key.status(), 400, "{no_key:?}");
        assert!(no_key.body_text().contains("Sec-WebSocket-Key"), "{no_key:?}");

        let bad_key = ask(addr, &format!("{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n")).await;
        assert_eq!(bad_key.status(), 400, "{bad_key:?}");

        let version = ask(addr, &format!("{base}Sec-WebSocket-Version: 8\r\n{key}\r\n")).await;
        assert_eq!(version.status(), 426, "{version:?}");
        assert_eq!(version.header("Sec-WebSocket-Version"), Some("13"));
        assert!(version.body_text().contains("Sec-WebSocket-Version"), "{version:?}");

        // A plain GET of the WebSocket route is told to upgrade.
        let plain = ask(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(plain.status(), 426, "{plain:?}");
        assert_eq!(plain.header("Upgrade"), Some("websocket"));
        assert_eq!(plain.header("Sec-WebSocket-Version"), Some("13"));

        let http10 = ask(addr, &format!("GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}\r\n")).await;
        assert_eq!(http10.status(), 400, "{http10:?}");

        // A valid request is still upgraded, with the sample key's accept.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("{base}Sec-WebSocket-Version: 13\r\n{key}\r\n").as_bytes()).await.unwrap();
        let ok = step("101", read_http_head(&mut tcp)).await.unwrap();
        assert_eq!(ok.status(), 101, "{ok:?}");
        assert_eq!(ok.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    })
    .await
}
