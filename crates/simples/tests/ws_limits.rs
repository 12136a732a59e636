//! Connection limits of a WebSocket host (`WsOptions::max_connections`,
//! `max_connections_per_ip`): a handshake over a limit is refused with 503
//! and the reason, the connections already open keep working, and a slot
//! is free again once a connection ends.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ws::{closed_with, connect, send, text, Client};
use simples::ws::WsOptions;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::handshake::parse_ws_url;
use simples_ws::tokio::client_handshake;
use simples_ws::{CloseCode, Config};
use tokio::net::TcpSocket;

/// An echo host at `/ws` with at most `total` connections, `per_ip` from
/// one address.
async fn limited_server(total: usize, per_ip: usize) -> (simples::Running, simples::WsHost) {
    let mut server = common::server();
    let options = WsOptions { max_connections: Some(total), max_connections_per_ip: Some(per_ip), ..WsOptions::default() };
    let host = server.ws("/ws", options, |_conn| async move {});
    host.on_message(|conn, message| async move {
        let _ = conn.send(message);
    });
    (common::start(server).await, host)
}

/// A WebSocket client whose socket is bound to `from` (any 127.0.0.0/8
/// address is the loopback interface on Linux): another client address.
async fn connect_from(from: &str, addr: SocketAddr) -> Result<Client, simples_ws::tokio::Error> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{from}:0").parse().unwrap()).expect("bind the client address");
    let tcp = socket.connect(addr).await.expect("connect");
    let url = parse_ws_url(&format!("ws://{addr}/ws")).unwrap();
    client_handshake(tcp, &url, &ClientConfig::default(), Config::default()).await.map(|(ws, _)| ws)
}

/// A connection from 127.0.0.1 as soon as the host admits one (a slot is
/// released when the connection's task ends): tries for about 2 s.
async fn connect_once_admitted(addr: SocketAddr) -> Option<Client> {
    for _ in 0..100 {
        if let Ok(ws) = connect_from("127.0.0.1", addr).await {
            return Some(ws);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The status of a refused handshake error.
fn status_of(e: simples_ws::tokio::Error) -> String {
    e.to_string()
}

async fn echo(ws: &mut Client, what: &str) {
    send(ws, what).await;
    assert_eq!(text(ws).await, what);
}

#[tokio::test]
async fn per_ip_and_total_limits_refuse_with_503_and_free_their_slot_when_a_connection_ends() {
    let (running, host) = limited_server(3, 2).await;
    let addr = running.local_addr();

    let mut a1 = connect(addr, "/ws").await;
    let mut a2 = connect(addr, "/ws").await;
    // A third from 127.0.0.1: 503, with the reason.
    let reply = common::send(addr, common::ws_extra::upgrade_req("/ws")).await;
    assert_eq!(reply.status, 503);
    assert!(reply.text().contains("too many WebSocket connections from 127.0.0.1"), "{}", reply.text());
    // Another address still gets in, up to the total.
    let mut b1 = connect_from("127.0.0.2", addr).await.expect("a second address is admitted");
    let refused = connect_from("127.0.0.3", addr).await.map(|_| ()).map_err(status_of);
    assert!(matches!(&refused, Err(e) if e.contains("503")), "{refused:?}");
    // The connections already open keep working.
    echo(&mut a1, "one").await;
    echo(&mut a2, "two").await;
    echo(&mut b1, "three").await;
    assert_eq!(host.stats().rejected, 2);

    // One ends: its slot is free again (released when its task ends).
    a1.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(closed_with(&mut a1).await, 1000);
    let mut a3 = connect_once_admitted(addr).await.expect("a slot freed by the closed connection");
    echo(&mut a3, "four").await;
    drop((a2, b1, a3));
    running.stop().await;
}

#[tokio::test]
async fn a_refused_handshake_leaves_no_count_behind() {
    // Refusals at the limit, many times over, never leak a slot: after the
    // one connection ends, a new one is admitted.
    let (running, _host) = limited_server(1, 1).await;
    let addr = running.local_addr();
    let mut first = connect(addr, "/ws").await;
    for _ in 0..20 {
        let reply = common::send(addr, common::ws_extra::upgrade_req("/ws")).await;
        assert_eq!(reply.status, 503);
    }
    echo(&mut first, "still here").await;
    drop(first);
    let mut next = connect_once_admitted(addr).await;
    echo(next.as_mut().expect("admitted once the first ended"), "next").await;
    running.stop().await;
}
