//! Broadcasts, channels, templates and slow consumers over real sockets.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ws::{closed_with, connect, json, next, send_json, stalled_client, text, wait_for, Client};
use serde_json::json;
use simples::ws::{ChannelEvent, CloseCode, Message, SlowAction, SlowPolicy, WsConn, WsHost, WsOptions};
use simples::MiniJinja;

#[tokio::test]
async fn broadcast_reaches_everyone_or_whom_the_filter_keeps() {
    let mut server = common::server();
    let host = server.ws("/b", WsOptions::default(), |_| async {});
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut red = connect(addr, "/b?team=red").await;
    let mut blue = connect(addr, "/b?team=blue").await;
    let mut red2 = connect(addr, "/b?team=red").await;
    wait_for(&host, 3).await;

    assert_eq!(host.broadcast(Message::text("all")), 3);
    for c in [&mut red, &mut blue, &mut red2] {
        assert_eq!(text(c).await, "all");
    }
    let n = host.broadcast_filter(Message::text("reds"), |c: &WsConn| c.query("team") == Some("red"));
    assert_eq!(n, 2);
    assert_eq!(host.broadcast_event("ev", &json!({"x": 1})).unwrap(), 3);
    assert_eq!(text(&mut red).await, "reds");
    assert_eq!(text(&mut red2).await, "reds");
    // Blue's next message is the event: the filtered one never came.
    assert_eq!(json(&mut blue).await, json!({"event": "ev", "data": {"x": 1}}));
    assert_eq!(json(&mut red).await["event"], "ev");
    drop((red, blue, red2));
    running.stop().await;
}

#[tokio::test]
async fn channels_bind_unbind_close_and_lose_closed_members() {
    let mut server = common::server();
    let events = Arc::new(Mutex::new(Vec::new()));
    let host = server.ws("/c", WsOptions::object(), |_| async {});
    host.on("join", |conn, data| async move { conn.bind(data.as_str().unwrap_or("")) });
    host.on("leave", |conn, data| async move { conn.unbind(data.as_str().unwrap_or("")) });
    let log = events.clone();
    host.on_channel(move |e| {
        let line = match e {
            ChannelEvent::Bind { channel, conn } => format!("bind {channel} {}", conn.id()),
            ChannelEvent::Unbind { channel, conn } => format!("unbind {channel} {}", conn.id()),
            ChannelEvent::Close { channel, members } => format!("close {channel} {members}"),
        };
        log.lock().unwrap().push(line);
    });
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut a = connect(addr, "/c").await;
    let mut b = connect(addr, "/c").await;
    let mut c = connect(addr, "/c").await;
    for (who, room, id) in [(0, "x", 1), (1, "x", 2), (2, "y", 3), (0, "y", 4)] {
        let client = [&mut a, &mut b, &mut c].into_iter().nth(who).unwrap();
        send_json(client, json!({"event": "join", "data": room, "id": id})).await;
        assert_eq!(json(client).await, json!({"ack": id, "data": true}));
    }
    let x = host.channel("x");
    let y = host.channel("y");
    assert_eq!((x.len(), y.len()), (2, 2));
    let mut names = host.channel_names();
    names.sort();
    assert_eq!(names, ["x", "y"]);

    assert_eq!(x.broadcast(Message::text("to x")), 2);
    assert_eq!(text(&mut a).await, "to x");
    assert_eq!(text(&mut b).await, "to x");
    let a_id = x.members().iter().map(|m| m.id()).min().unwrap();
    assert_eq!(y.broadcast_filter(Message::text("y but not a"), |m| m.id() != a_id), 1);
    assert_eq!(text(&mut c).await, "y but not a");

    // Unbind, then a member closes: it leaves every channel it was in.
    send_json(&mut a, json!({"event": "leave", "data": "x", "id": 5})).await;
    assert_eq!(json(&mut a).await, json!({"ack": 5, "data": true}));
    send_json(&mut a, json!({"event": "leave", "data": "x", "id": 6})).await;
    assert_eq!(json(&mut a).await, json!({"ack": 6, "data": false}));
    a.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert_eq!(closed_with(&mut a).await, 1000);
    wait_for(&host, 2).await;
    assert_eq!(x.len(), 1);
    assert_eq!(y.len(), 1);
    assert!(host.connection(a_id).is_none());

    // Closing a channel drops all bindings.
    assert_eq!(y.close(), 1);
    assert!(y.is_empty());
    assert_eq!(y.broadcast(Message::text("nobody")), 0);
    assert!(host.connections().iter().all(|m| !m.channels().contains(&"y".to_string())));

    let log = events.lock().unwrap().clone();
    let a_id = a_id.to_string();
    assert!(log.contains(&format!("unbind x {a_id}")), "{log:?}");
    assert!(log.contains(&format!("unbind y {a_id}")), "closing left y: {log:?}");
    assert!(log.contains(&"close y 1".to_string()), "{log:?}");
    drop((b, c));
    running.stop().await;
}

#[tokio::test]
async fn templates_render_into_messages() {
    let mut server = common::server();
    let mut templates = MiniJinja::new();
    templates.add_template("hello.txt", "hello {{ name }}!").unwrap();
    server.templates(templates);
    let host = server.ws("/t", WsOptions::default(), |conn| async move {
        conn.render("hello.txt", &json!({"name": "you"})).unwrap();
        assert!(conn.render("missing.txt", &json!({})).is_err());
    });
    let running = common::start(server).await;
    let mut client = connect(running.local_addr(), "/t").await;
    assert_eq!(text(&mut client).await, "hello you!");
    assert_eq!(host.broadcast_render("hello.txt", &json!({"name": "all"})).unwrap(), 1);
    assert_eq!(text(&mut client).await, "hello all!");
    drop(client);
    running.stop().await;
}

/// Broadcasts `count` numbered 1 KiB messages, pacing on the fast clients
/// only (the application's flow control); returns the slow connection's
/// largest queued byte count seen.
async fn flood(host: &WsHost, slow: &WsConn, count: usize) -> usize {
    let mut peak = 0;
    for i in 0..count {
        let mut body = format!("{i:08}");
        body.push_str(&"x".repeat(1024 - body.len()));
        host.broadcast(Message::text(body));
        peak = peak.max(slow.queued().0);
        if i % 16 == 0 {
            // Let fast connections drain; never wait for the slow one.
            for _ in 0..1000 {
                let busy = host.connections().iter().any(|c| c != slow && c.queued().0 > 32 * 1024);
                if !busy {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    peak
}

/// Reads `count` numbered messages in order.
async fn read_all(mut client: Client, count: usize) -> Client {
    for i in 0..count {
        match next(&mut client).await {
            Message::Text(t) => assert_eq!(&t.as_str()[..8], format!("{i:08}"), "message {i} in order"),
            other => panic!("expected text, got {other:?}"),
        }
    }
    client
}

async fn slow_consumer_case(policy: SlowPolicy) -> (WsHost, Vec<SlowAction>, usize, tokio::net::TcpStream) {
    let mut server = common::server();
    let options = WsOptions {
        max_queued_bytes: 128 * 1024,
        max_queued_messages: 10_000,
        slow_policy: policy,
        close_timeout: Duration::from_millis(500),
        ..WsOptions::default()
    };
    let host = server.ws("/s", options.clone(), |_| async {});
    let actions = Arc::new(Mutex::new(Vec::new()));
    let log = actions.clone();
    host.on_slow(move |_, action| log.lock().unwrap().push(action));
    let running = common::start(server).await;
    let addr = running.local_addr();
    let stalled = stalled_client(addr, "/s").await;
    wait_for(&host, 1).await;
    let slow = host.connections().pop().unwrap();
    let fast: Vec<Client> = vec![connect(addr, "/s").await, connect(addr, "/s").await, connect(addr, "/s").await];
    wait_for(&host, 4).await;

    const COUNT: usize = 6000;
    let readers: Vec<_> = fast.into_iter().map(|c| tokio::spawn(read_all(c, COUNT))).collect();
    let peak = flood(&host, &slow, COUNT).await;
    for r in readers {
        let client = tokio::time::timeout(Duration::from_secs(20), r).await.expect("fast clients get everything").unwrap();
        drop(client);
    }
    assert!(peak <= options.max_queued_bytes, "queue bounded: peak {peak}");
    let actions = actions.lock().unwrap().clone();
    drop(running);
    (host, actions, peak, stalled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_drop_newest_others_get_everything_in_order() {
    let (host, actions, _, stalled) = slow_consumer_case(SlowPolicy::DropNewest).await;
    let stats = host.stats();
    assert!(stats.dropped > 0, "the stalled client lost messages: {stats:?}");
    assert_eq!(stats.slow_closed, 0);
    assert!(actions.iter().all(|a| *a == SlowAction::Dropped(1)));
    assert_eq!(actions.len() as u64, stats.dropped);
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_drop_oldest_keeps_the_newest() {
    let (host, actions, _, stalled) = slow_consumer_case(SlowPolicy::DropOldest).await;
    let stats = host.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    assert!(actions.iter().all(|a| matches!(a, SlowAction::Dropped(n) if *n >= 1)));
    // The stalled connection still has the newest messages queued.
    let slow = host.connections().into_iter().find(|c| c.queued().1 > 0).expect("the stalled connection");
    assert!(slow.dropped() > 0);
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_closed_with_1013_and_memory_freed() {
    let (host, actions, _, stalled) = slow_consumer_case(SlowPolicy::Close(CloseCode::TRY_AGAIN_LATER)).await;
    assert_eq!(actions, vec![SlowAction::Closed(CloseCode::TRY_AGAIN_LATER)]);
    assert_eq!(host.stats().slow_closed, 1);
    // The close frame waits behind what the socket holds; the close timeout
    // then drops the connection, and its memory with it (the fast clients
    // are gone too).
    wait_for(&host, 0).await;
    drop(stalled);
}
