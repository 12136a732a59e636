//! WebSocket hosts in plain and object mode over real sockets: echo,
//! events with acknowledgements, refusals that keep the connection open,
//! server requests with acknowledgement timeouts.

mod common;

use std::time::Duration;

use common::ws::{connect, json, next, send, send_json, text};
use serde_json::json;
use simples::ws::{Message, WsError, WsOptions};

#[tokio::test]
async fn plain_mode_echoes_text_and_binary() {
    let mut server = common::server();
    let echo = server.ws("/echo", WsOptions::default(), |_| async {});
    echo.on_message(|conn, message| async move {
        let _ = conn.send(message);
    });
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/echo").await;
    send(&mut client, "héllo").await;
    assert_eq!(text(&mut client).await, "héllo");
    client.send(Message::binary(vec![0u8, 255, 7])).await.unwrap();
    match next(&mut client).await {
        Message::Binary(b) => assert_eq!(&b[..], &[0, 255, 7]),
        other => panic!("expected binary, got {other:?}"),
    }
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn object_mode_dispatches_events_and_acknowledges() {
    let mut server = common::server();
    let host = server.ws("/obj", WsOptions::object(), |conn| async move {
        let _ = conn.send_event("welcome", &json!({"id": conn.id()}));
    });
    host.on("add", |_conn, data| async move {
        let a = data["a"].as_i64().ok_or("a must be a number")?;
        let b = data["b"].as_i64().ok_or("b must be a number")?;
        Ok::<_, &str>(a + b)
    });
    host.on("note", |conn, data| async move {
        let _ = conn.send_event("noted", &data);
    });
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/obj").await;
    assert_eq!(json(&mut client).await["event"], "welcome");

    send_json(&mut client, json!({"event": "add", "data": {"a": 2, "b": 40}, "id": 1})).await;
    assert_eq!(json(&mut client).await, json!({"ack": 1, "data": 42}));
    send_json(&mut client, json!({"event": "add", "data": {"a": "x"}, "id": 2})).await;
    assert_eq!(json(&mut client).await, json!({"ack": 2, "error": "a must be a number"}));
    send_json(&mut client, json!({"event": "nope", "id": 3})).await;
    assert_eq!(json(&mut client).await, json!({"ack": 3, "error": "no handler for event \"nope\""}));
    // Without an id: no answer, the handler just runs.
    send_json(&mut client, json!({"event": "note", "data": [1, 2]})).await;
    assert_eq!(json(&mut client).await, json!({"event": "noted", "data": [1, 2]}));
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn invalid_json_gets_an_error_event_and_the_connection_stays_open() {
    let mut server = common::server();
    let host = server.ws("/obj", WsOptions::object(), |_| async {});
    host.on("ping", |_c, _d| async { json!("pong") });
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/obj").await;

    let deep = format!(r#"{{"event":"ping","data":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    for (input, code) in [
        ("{not json", "invalid_json"),
        ("[1,2,3]", "not_an_object"),
        (r#"{"data": 1}"#, "invalid_json"),
        (deep.as_str(), "too_deep"),
    ] {
        send(&mut client, input).await;
        let reply = json(&mut client).await;
        assert_eq!(reply["event"], "error", "for {input:.40}");
        assert_eq!(reply["data"]["code"], code, "for {input:.40}");
    }
    client.send(Message::binary(vec![1u8, 2])).await.unwrap();
    assert_eq!(json(&mut client).await["data"]["code"], "binary");

    // Still served.
    send_json(&mut client, json!({"event": "ping", "id": 9})).await;
    assert_eq!(json(&mut client).await, json!({"ack": 9, "data": "pong"}));
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_an_error_and_the_connection_goes_on() {
    let mut server = common::server();
    let host = server.ws("/obj", WsOptions::object(), |_| async {});
    host.on("boom", |_c, _d| async {
        if true {
            panic!("handler bug");
        }
    });
    host.on("ok", |_c, _d| async {});
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/obj").await;
    send_json(&mut client, json!({"event": "boom", "id": 1})).await;
    assert_eq!(json(&mut client).await, json!({"ack": 1, "error": "the handler failed"}));
    send_json(&mut client, json!({"event": "ok", "id": 2})).await;
    assert_eq!(json(&mut client).await, json!({"ack": 2, "data": null}));
    drop(client);
    running.stop().await;
}

/// Regression (2026-12-05, review): a message handler that panicked
/// before returning its future (its synchronous part), or a hook that
/// panicked on the loop's thread, unwound through the event loop: every
/// connection on it ended, and the loop, gone, was still handed new
/// connections (their 101 answered, then nothing; a stop then waited its
/// whole timeout for them).
#[tokio::test]
async fn a_handler_or_hook_panicking_on_the_loop_leaves_it_serving() {
    let mut server = common::server();
    let options = WsOptions { event_loop_threads: 1, ..WsOptions::default() };
    let echo = server.ws("/echo", options, |conn| async move {
        conn.bind("room");
    });
    echo.on_message(|conn, message| {
        if message.payload() == b"boom" {
            panic!("handler bug before its future");
        }
        let _ = conn.send(message);
        async {}
    });
    // Runs on the loop's thread when a connection ends (it leaves "room").
    echo.on_channel(|_| panic!("hook bug"));
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut a = connect(addr, "/echo").await;
    let mut b = connect(addr, "/echo").await;
    send(&mut a, "boom").await;
    send(&mut a, "after").await;
    assert_eq!(text(&mut a).await, "after");
    send(&mut b, "hi").await;
    assert_eq!(text(&mut b).await, "hi");
    // b leaves: `on_channel` panics on the loop's thread.
    drop(b);
    while echo.len() > 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut c = connect(addr, "/echo").await;
    send(&mut c, "new").await;
    assert_eq!(text(&mut c).await, "new");
    send(&mut a, "still").await;
    assert_eq!(text(&mut a).await, "still");
    drop((a, c));
    let stopping = std::time::Instant::now();
    running.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "the stop waited for connections nobody serves");
}

#[tokio::test]
async fn server_requests_get_the_clients_ack_or_time_out() {
    let mut server = common::server();
    let options = WsOptions { ack_timeout: Duration::from_millis(300), ..WsOptions::object() };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    server.ws("/obj", options, move |conn| {
        let tx = tx.clone();
        async move {
            let answered = conn.request("question", &json!({"q": 1})).await;
            let ignored = conn.request("question", &json!({"q": 2})).await;
            let failed = conn.request_timeout("question", &json!({"q": 3}), Duration::from_secs(5)).await;
            tx.send((answered, ignored, failed)).unwrap();
        }
    });
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/obj").await;

    let first = json(&mut client).await;
    assert_eq!(first["event"], "question");
    let id = first["id"].as_u64().expect("a request carries an id");
    send_json(&mut client, json!({"ack": id, "data": "forty-two"})).await;
    let second = json(&mut client).await;
    // Not answered: the server times out, then asks the third question.
    let third = json(&mut client).await;
    assert_eq!(third["data"]["q"], 3);
    // A late answer to the second is ignored; the third gets an error ack.
    send_json(&mut client, json!({"ack": second["id"], "data": "late"})).await;
    send_json(&mut client, json!({"ack": third["id"], "error": "no idea"})).await;

    let (answered, ignored, failed) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(answered, Ok(json!("forty-two")));
    assert_eq!(ignored, Err(WsError::Timeout));
    assert_eq!(failed, Err(WsError::Remote("no idea".into())));
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn handlers_run_one_at_a_time_in_arrival_order_while_input_waits() {
    let mut server = common::server();
    let options = WsOptions { max_pending_messages: 4, ..WsOptions::default() };
    let host = server.ws("/seq", options, |_| async {});
    host.on_message(|conn, message| async move {
        // A slow first handler: the rest wait (reading stops after 4).
        if message.payload() == b"0" {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = conn.send(message);
    });
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/seq").await;
    for i in 0..200 {
        client.feed(Message::text(i.to_string())).await.unwrap();
    }
    client.flush().await.unwrap();
    for i in 0..200 {
        assert_eq!(text(&mut client).await, i.to_string());
    }
    drop(client);
    running.stop().await;
}
