//! Every event logged inside a WebSocket connection's task (the
//! framework's and the handlers') carries the connection's span: id, peer
//! address, host and path; a refused handshake is logged at debug with its
//! reason.

mod common;

use std::time::Duration;

use common::shared::Capture;
use common::ws::{connect, text};
use common::ws_extra::upgrade_req;
use simples::ws::{CloseCode, Message, WsOptions};

#[tokio::test]
async fn connection_events_carry_the_connection_span() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = common::server();
    let host = server.ws("/rooms/:room", WsOptions::default(), |_| async {});
    host.on_message(|conn, message| {
        tracing::info!(len = message.payload().len(), "handler got a message");
        let _ = conn.send(message);
        async {}
    });
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut ws = connect(addr, "/rooms/rust").await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(text(&mut ws).await, "hi");
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    while ws.recv().await.is_ok() {}
    let refused = common::send(addr, upgrade_req("/rooms/rust").header("origin", "http://evil.example")).await;
    assert_eq!(refused.status, 403);
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.stop().await;

    let log = capture.text();
    let line = log.lines().find(|l| l.contains("handler got a message")).unwrap_or_else(|| panic!("no handler line in:\n{log}"));
    for field in ["ws{", "id=1", "path=/rooms/rust", "host=127.0.0.1", "peer=127.0.0.1:"] {
        assert!(line.contains(field), "{field:?} in the handler's line: {line}");
    }
    let refusal = log.lines().find(|l| l.contains("WebSocket handshake refused")).unwrap_or_else(|| panic!("no refusal in:\n{log}"));
    assert!(refusal.contains("DEBUG") && refusal.contains("status=403") && refusal.contains("evil.example"), "{refusal}");
}
