//! The opening handshake of WebSocket hosts over real sockets: origin
//! checks, the `authorize` hook, refusals of invalid requests (426, 400),
//! subprotocol choice, what a `WsConn` knows of its request, the refusal
//! counter, permessage-deflate.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::ws::{connect, json, next, send, text, try_connect};
use common::ws_extra::{refused, upgrade_req, upgrade_req_with, SAMPLE_KEY};
use serde_json::json;
use simples::ws::{DeflateConfig, Message, Origins, WsOptions};
use simples::Conn;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::handshake::parse_ws_url;
use simples_ws::tokio::{client_handshake_with_deflate, connect_with, connect_with_deflate, WebSocket};
use simples_ws::Config;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

fn with_origin(origin: &str) -> ClientConfig {
    ClientConfig { origin: Some(origin.to_string()), ..ClientConfig::default() }
}

/// A server whose host at `/ws` has `options` and greets every connection
/// with "hi".
fn greeting_server(options: WsOptions) -> (simples::Server, simples::WsHost) {
    let mut server = common::server();
    let host = server.ws("/ws", options, |conn| async move {
        let _ = conn.send_text("hi");
    });
    (server, host)
}

/// Connects with `config` and expects the greeting.
async fn accepted(addr: std::net::SocketAddr, config: ClientConfig) {
    let what = format!("{config:?}");
    let mut client = try_connect(addr, "/ws", config).await.unwrap_or_else(|e| panic!("{what} refused: {e}"));
    assert_eq!(text(&mut client).await, "hi", "{what}");
}

#[tokio::test]
async fn other_sites_are_refused_by_default() {
    let (server, host) = greeting_server(WsOptions::default());
    let running = common::start(server).await;
    let addr = running.local_addr();

    // A page of another site (or of another port of this one): 403.
    assert_eq!(refused(addr, "/ws", with_origin("http://evil.example")).await, 403);
    assert_eq!(refused(addr, "/ws", with_origin("http://127.0.0.1:1")).await, 403);
    let reply = common::send(addr, upgrade_req("/ws").header("origin", "https://evil.example")).await;
    assert_eq!(reply.status, 403);
    // "null" (a file:// page) is another site too.
    assert_eq!(refused(addr, "/ws", with_origin("null")).await, 403);

    // A page of this host (the Host header the client sends is ADDR).
    accepted(addr, with_origin(&format!("http://{addr}"))).await;
    // Non-browser clients send no Origin.
    accepted(addr, ClientConfig::default()).await;

    assert_eq!(host.stats().rejected, 4);
    running.stop().await;
}

#[tokio::test]
async fn listed_origins_are_accepted() {
    let options = WsOptions {
        origins: Origins::List(vec!["https://app.example".into(), "null".into()]),
        ..WsOptions::default()
    };
    let (server, _host) = greeting_server(options);
    let running = common::start(server).await;
    let addr = running.local_addr();

    accepted(addr, with_origin("https://app.example")).await;
    accepted(addr, with_origin("HTTPS://App.Example")).await;
    accepted(addr, with_origin("null")).await;
    // The host's own origin is always allowed.
    accepted(addr, with_origin(&format!("http://{addr}"))).await;
    accepted(addr, ClientConfig::default()).await;

    assert_eq!(refused(addr, "/ws", with_origin("https://evil.example")).await, 403);
    // The scheme is part of the origin.
    assert_eq!(refused(addr, "/ws", with_origin("http://app.example")).await, 403);
    running.stop().await;
}

#[tokio::test]
async fn any_origin_is_accepted_with_origins_any() {
    let (server, _host) = greeting_server(WsOptions { origins: Origins::Any, ..WsOptions::default() });
    let running = common::start(server).await;
    let addr = running.local_addr();
    accepted(addr, with_origin("https://anything.example")).await;
    accepted(addr, with_origin("null")).await;
    accepted(addr, ClientConfig::default()).await;
    running.stop().await;
}

#[derive(Clone, Debug)]
struct User(String);

#[tokio::test]
async fn authorize_refuses_with_its_status_or_passes_data_to_the_connection() {
    let mut server = common::server();
    let host = server.ws("/ws", WsOptions::default(), |conn| async move {
        let user = conn.data::<User>().map(|u| u.0.clone()).unwrap_or_else(|| "nobody".into());
        let _ = conn.send_text(format!("welcome {user}"));
    });
    host.authorize(|mut conn: Conn| async move {
        let token = conn.query("token").map(str::to_string);
        match token.as_deref() {
            Some("secret") => {
                conn.set_data(User("ada".into()));
                Ok(conn)
            }
            Some(_) => Err(simples::Error::new(403, "wrong token")),
            None => Err(simples::Error::new(401, "a token is required")),
        }
    });
    let running = common::start(server).await;
    let addr = running.local_addr();

    assert_eq!(refused(addr, "/ws", ClientConfig::default()).await, 401);
    assert_eq!(refused(addr, "/ws?token=guess", ClientConfig::default()).await, 403);
    let reply = common::send(addr, upgrade_req("/ws")).await;
    assert_eq!(reply.status, 401);
    assert!(reply.header("sec-websocket-accept").is_none());

    let mut client = connect(addr, "/ws?token=secret").await;
    assert_eq!(text(&mut client).await, "welcome ada");

    // The hook runs after the origin check: a foreign page is refused
    // with 403 even with the right token.
    let config = with_origin("http://evil.example");
    assert_eq!(refused(addr, "/ws?token=secret", config).await, 403);

    let stats = host.stats();
    assert_eq!((stats.rejected, stats.accepted, stats.connections), (4, 1, 1));
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn a_plain_get_or_a_wrong_version_gets_426_and_a_bad_key_400() {
    let (server, host) = greeting_server(WsOptions::default());
    let running = common::start(server).await;
    let addr = running.local_addr();

    let plain = common::get(addr, "/ws").await;
    assert_eq!(plain.status, 426);
    assert_eq!(plain.header("sec-websocket-version"), Some("13"));

    let wrong_version = common::send(addr, upgrade_req_with("/ws", Some("8"), Some(SAMPLE_KEY))).await;
    assert_eq!(wrong_version.status, 426);
    assert_eq!(wrong_version.header("sec-websocket-version"), Some("13"));

    let no_version = common::send(addr, upgrade_req_with("/ws", None, Some(SAMPLE_KEY))).await;
    assert_eq!(no_version.status, 426);

    for key in ["c2hvcnQ=", "not base64!", ""] {
        let bad_key = common::send(addr, upgrade_req_with("/ws", Some("13"), Some(key))).await;
        assert_eq!(bad_key.status, 400, "key {key:?}");
    }
    let no_key = common::send(addr, upgrade_req_with("/ws", Some("13"), None)).await;
    assert_eq!(no_key.status, 400);

    // Other methods are not routed to the handshake.
    let post = common::send(addr, upgrade_req("/ws").method("POST")).await;
    assert_eq!(post.status, 405);

    assert_eq!(host.stats().rejected, 7);
    assert_eq!(host.stats().accepted, 0);
    // Still serving.
    accepted(addr, ClientConfig::default()).await;
    running.stop().await;
}

#[tokio::test]
async fn the_subprotocol_is_the_clients_first_that_the_host_speaks() {
    let options = WsOptions { protocols: vec!["a".into(), "b".into()], ..WsOptions::default() };
    let mut server = common::server();
    server.ws("/ws", options, |conn| async move {
        let _ = conn.send_text(format!("{:?}", conn.protocol()));
    });
    let running = common::start(server).await;
    let url = format!("ws://{}/ws", running.local_addr());

    for (offer, chosen) in [
        (vec!["b", "a"], Some("b")),
        (vec!["a", "b"], Some("a")),
        (vec!["c", "b"], Some("b")),
        (vec!["c"], None),
        (vec![], None),
    ] {
        let config = ClientConfig { protocols: offer.iter().map(|p| p.to_string()).collect(), ..ClientConfig::default() };
        let (mut client, response) = connect_with(&url, &config, Config::default()).await.expect("handshake");
        assert_eq!(response.protocol.as_deref(), chosen, "offer {offer:?}");
        assert_eq!(text(&mut client).await, format!("{chosen:?}"), "offer {offer:?}");
    }
    running.stop().await;
}

#[tokio::test]
async fn the_connection_knows_its_request() {
    let mut server = common::server();
    server.ws("/rooms/:room", WsOptions::default(), |conn| async move {
        // The handshake's own headers are not kept; the offer is.
        let consumed: Vec<&str> =
            ["connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"]
                .into_iter()
                .filter(|h| conn.header(h).is_some() || conn.headers().contains_key(*h))
                .collect();
        let info = json!({
            "path": conn.path(),
            "query": conn.query("user"),
            "missing": conn.query("nope"),
            "room": conn.param("room"),
            "header": conn.header("x-test"),
            "consumed": consumed,
            "headers": conn.headers().len(),
            "cookie": conn.cookie("flavor"),
            "ip": conn.ip().to_string(),
            "peer_ip": conn.peer_addr().ip().to_string(),
            "languages": conn.languages(),
            "host": conn.host_name(),
            "secure": conn.is_secure(),
            "protocol": conn.protocol(),
        });
        let _ = conn.send_text(info.to_string());
    });
    let running = common::start(server).await;
    let config = ClientConfig {
        headers: vec![
            ("X-Test".into(), "yes".into()),
            ("Cookie".into(), "other=1; flavor=mint".into()),
            ("Accept-Language".into(), "fr-CH, en;q=0.5, de;q=0.8, *;q=0.1".into()),
        ],
        ..ClientConfig::default()
    };
    let mut client = try_connect(running.local_addr(), "/rooms/lobby?user=ada%20l&x=1", config).await.expect("handshake");
    assert_eq!(
        json(&mut client).await,
        json!({
            "path": "/rooms/lobby",
            "query": "ada l",
            "missing": null,
            "room": "lobby",
            "header": "yes",
            "consumed": [],
            "headers": 4,
            "cookie": "mint",
            "ip": "127.0.0.1",
            "peer_ip": "127.0.0.1",
            "languages": ["fr-CH", "de", "en"],
            "host": "127.0.0.1",
            "secure": false,
            "protocol": null,
        })
    );
    drop(client);
    running.stop().await;
}

/// Route parameters are kept in the request head's own allocation
/// (length-prefixed after the headers): decoded values with any character
/// come back whole, the wildcard tail too, and none reads as a header.
#[tokio::test]
async fn route_parameters_come_back_whole_and_apart_from_the_headers() {
    let mut server = common::server();
    server.ws("/r/:a/*", WsOptions::default(), |conn| async move {
        let info = json!({
            "a": conn.param("a"),
            "tail": conn.param("*"),
            "missing": conn.param("b"),
            "params": conn.params().iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>(),
            "headers": conn.headers().keys().map(|k| k.as_str().to_string()).collect::<Vec<_>>(),
            "host": conn.header("host"),
        });
        let _ = conn.send_text(info.to_string());
    });
    let running = common::start(server).await;
    let mut client = try_connect(running.local_addr(), "/r/x%0Ay%3Az/rest/of%20it", ClientConfig::default())
        .await
        .expect("handshake");
    let got = json(&mut client).await;
    assert_eq!(got["a"], "x\ny:z");
    assert_eq!(got["tail"], "rest/of it");
    assert_eq!(got["missing"], serde_json::Value::Null);
    assert_eq!(got["params"], json!(["a=x\ny:z", "*=rest/of it"]));
    assert_eq!(got["headers"], json!(["host"]), "{got}");
    assert_eq!(got["host"], running.local_addr().to_string());
    drop(client);
    running.stop().await;
}

/// A TCP stream that counts the bytes that cross it.
struct Counting {
    io: TcpStream,
    read: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            this.read.fetch_add(buf.filled().len() - before, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Counting {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            this.written.fetch_add(*n, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The next data message on any client.
async fn next_data<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.recv()).await.expect("a message within 5 s").expect("open");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

#[tokio::test]
async fn deflate_is_negotiated_and_large_messages_round_trip_compressed() {
    let mut server = common::server();
    let options = WsOptions { deflate: Some(DeflateConfig::default()), ..WsOptions::default() };
    let echo = |conn: simples::WsConn, message: Message| async move {
        let _ = conn.send(message);
    };
    server.ws("/deflate", options, |_| async {}).on_message(echo);
    server.ws("/plain", WsOptions::default(), |_| async {}).on_message(echo);
    let running = common::start(server).await;
    let addr = running.local_addr();
    let big = "simples speaks permessage-deflate; ".repeat(6_000); // 210 KB
    let deflate = DeflateConfig::default();

    // Compressed: the wire carries a small fraction of the message, both ways.
    let url = format!("ws://{addr}/deflate");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (read, written) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let io = Counting { io: tcp, read: read.clone(), written: written.clone() };
    let (mut client, response) =
        client_handshake_with_deflate(io, &parse_ws_url(&url).unwrap(), &ClientConfig::default(), Config::default(), Some(&deflate))
            .await
            .expect("handshake");
    assert!(
        response.extensions.iter().any(|e| e.contains("permessage-deflate")),
        "extensions answered: {:?}",
        response.extensions
    );
    let (read0, written0) = (read.load(Ordering::Relaxed), written.load(Ordering::Relaxed));
    client.send(Message::text(big.clone())).await.unwrap();
    match next_data(&mut client).await {
        Message::Text(t) => assert!(t.as_str() == big, "the echo differs ({} bytes)", t.as_str().len()),
        other => panic!("expected text, got {other:?}"),
    }
    let (got, sent) = (read.load(Ordering::Relaxed) - read0, written.load(Ordering::Relaxed) - written0);
    assert!(got < big.len() / 10, "{got} bytes read for a {} byte message", big.len());
    assert!(sent < big.len() / 10, "{sent} bytes written for a {} byte message", big.len());
    // Small messages too (below min_size, sent uncompressed).
    client.send(Message::text("tiny")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("tiny"));
    drop(client);

    // A host without deflate declines the offer; the connection still works.
    let (mut client, response) =
        connect_with_deflate(&format!("ws://{addr}/plain"), &ClientConfig::default(), Config::default(), &deflate)
            .await
            .expect("handshake");
    assert!(response.extensions.is_empty(), "{:?}", response.extensions);
    send(&mut client, &big).await;
    assert_eq!(next(&mut client).await, Message::text(big.clone()));
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn broadcasts_are_compressed_once_for_clients_without_context_takeover() {
    let mut server = common::server();
    let host_deflate = DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() };
    let options = WsOptions { deflate: Some(host_deflate), ..WsOptions::default() };
    let host = server.ws("/news", options, |_| async {});
    let running = common::start(server).await;
    let addr = running.local_addr();
    let url = format!("ws://{addr}/news");
    let big = "the same news for everyone; ".repeat(5_000); // 140 KB

    // A client with deflate (counted bytes) and one without.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let io = Counting { io: tcp, read: read.clone(), written: Arc::new(AtomicUsize::new(0)) };
    let offer = DeflateConfig::default();
    let (mut compressed, response) =
        client_handshake_with_deflate(io, &parse_ws_url(&url).unwrap(), &ClientConfig::default(), Config::default(), Some(&offer))
            .await
            .expect("handshake");
    assert!(response.extensions.iter().any(|e| e.contains("server_no_context_takeover")), "{:?}", response.extensions);
    let mut plain = common::ws::connect(addr, "/news").await;
    for _ in 0..200 {
        if host.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = read.load(Ordering::Relaxed);
    assert_eq!(host.broadcast(Message::text(big.clone())), 2);
    assert_eq!(next_data(&mut compressed).await, Message::text(big.clone()));
    assert_eq!(next(&mut plain).await, Message::text(big.clone()));
    let wire = read.load(Ordering::Relaxed) - before;
    assert!(wire < big.len() / 10, "{wire} bytes on the wire for a {} byte broadcast", big.len());
    drop((compressed, plain));
    running.stop().await;
}
