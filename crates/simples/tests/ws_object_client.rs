//! The Rust object-mode client against a real object-mode host:
//! requests and acks both ways, events, error acks, the server's error
//! events, and reconnection after the server restarts with what was
//! queued meanwhile delivered.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use simples::ws::{ClientEvent, ObjectClient, ObjectClientOptions, WsError, WsOptions};
use tokio::sync::mpsc;

fn fast() -> ObjectClientOptions {
    ObjectClientOptions {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ack_timeout: Duration::from_secs(5),
        ..ObjectClientOptions::default()
    }
}

#[tokio::test]
async fn requests_events_and_acks_both_ways() {
    let mut server = common::server();
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let host = server.ws("/o", WsOptions::object(), |_| async {});
    host.on("echo", |_, data| async move { data });
    host.on("fail", |_, _| async move { Err::<Value, _>("refused here") });
    host.on("note", move |_, data| {
        let _ = notes_tx.send(data);
        async {}
    });
    // The server asks the client something and reports the answer.
    host.on("ask-me", |conn, _| async move { conn.request("sum", &json!([2, 3])).await.map_err(|e| e.to_string()) });
    let running = common::start(server).await;
    let url = format!("ws://{}/o", running.local_addr());

    let client = ObjectClient::connect(&url, fast()).await.unwrap();
    client.on("sum", |data| async move { data.as_array().map_or(0, |a| a.iter().filter_map(Value::as_i64).sum::<i64>()) });
    let said = Arc::new(Mutex::new(Vec::new()));
    let log = said.clone();
    client.on("said", move |data| {
        log.lock().unwrap().push(data);
        async {}
    });

    assert_eq!(client.request("echo", &json!({"a": [1, 2]})).await.unwrap(), json!({"a": [1, 2]}));
    assert_eq!(client.request("fail", &()).await, Err(WsError::Remote("refused here".into())));
    match client.request("nobody", &()).await {
        Err(WsError::Remote(m)) => assert!(m.contains("nobody"), "{m}"),
        other => panic!("expected an error ack, got {other:?}"),
    }
    client.emit("note", "hello").unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), notes.recv()).await.unwrap().unwrap(), json!("hello"));
    // The server's request is answered by the client's handler.
    assert_eq!(client.request("ask-me", &()).await.unwrap(), json!(5));
    assert_eq!(host.broadcast_event("said", &json!({"text": "hi"})).unwrap(), 1);
    for _ in 0..100 {
        if !said.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*said.lock().unwrap(), [json!({"text": "hi"})]);

    client.close().await;
    assert!(!client.is_connected());
    assert_eq!(client.emit("note", "late"), Err(WsError::Closed));
    running.stop().await;
}

#[tokio::test]
async fn connecting_to_nothing_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    match ObjectClient::connect(&format!("ws://127.0.0.1:{port}/o"), fast()).await {
        Err(WsError::Connect(m)) => assert!(!m.is_empty()),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn reconnects_after_a_restart_and_sends_what_was_queued() {
    let mut server = common::server();
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let host = server.ws("/o", WsOptions::object(), |_| async {});
    host.on("note", move |_, data| {
        let _ = notes_tx.send(data);
        async {}
    });
    let running = common::start(server).await;
    let url = format!("ws://{}/o", running.local_addr());
    let client = ObjectClient::connect(&url, fast()).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    client.on_lifecycle(move |e| log.lock().unwrap().push(e.clone()));

    running.stop().await; // Close 1001 to every client.
    for _ in 0..200 {
        if !client.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!client.is_connected());
    // While disconnected: a request times out, events are queued in order.
    let timed_out = client.request_timeout("note", "lost?", Duration::from_millis(100)).await;
    assert_eq!(timed_out, Err(WsError::Timeout));
    for i in 0..3 {
        client.emit("note", &format!("queued {i}")).unwrap();
    }
    running.restart().await.expect("the server restarts on the same port");
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.expect("queued notes arrive").unwrap());
    }
    // In order, and without the timed-out request (never sent).
    assert_eq!(got, [json!("queued 0"), json!("queued 1"), json!("queued 2")]);
    assert!(client.is_connected());
    let log = events.lock().unwrap().clone();
    assert!(log.contains(&ClientEvent::Close { code: Some(1001) }), "{log:?}");
    assert!(log.iter().any(|e| matches!(e, ClientEvent::Reconnecting { attempt: 1, .. })), "{log:?}");
    assert_eq!(log.last(), Some(&ClientEvent::Open), "{log:?}");
    client.close().await;
    running.stop().await;
}
