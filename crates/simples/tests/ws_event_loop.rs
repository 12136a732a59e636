//! The framework's WebSocket connections on the event loops
//! (`WsOptions::event_loop`, the default) and as tokio tasks (`false`):
//! where handlers run, a handler that waits (the messages behind it wait
//! too, in order, and reading pauses), `on_open`/`on_close`, broadcasts
//! from other threads, the loop threads per host and their end with the
//! server. Real sockets on 127.0.0.1; no real sleeps (handlers wait on
//! channels the test releases).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ws::{closed_with, connect, send, text, wait_for};
use simples::ws::{CloseCode, Message, WsOptions};
use tokio::sync::Semaphore;

/// The name of the thread running the caller.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Threads of this process whose name starts with `prefix` (Linux: the
/// `comm` of each task; names are cut at 15 bytes).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

#[tokio::test]
async fn handlers_run_on_the_loop_threads_and_as_tasks_when_asked() {
    let _alone = THREADS.lock().await;
    for event_loop in [true, false] {
        let mut server = common::server();
        let options = WsOptions { event_loop, event_loop_threads: 2, ..WsOptions::default() };
        let host = server.ws("/where", options, |_| async {});
        host.on_message(|conn, _| {
            let _ = conn.send_text(thread_name());
            async {}
        });
        let running = common::start(server).await;
        let mut names = HashSet::new();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let mut ws = connect(running.local_addr(), "/where").await;
            send(&mut ws, "?").await;
            names.insert(text(&mut ws).await);
            clients.push(ws);
        }
        if event_loop {
            // Given in turn to the host's two loops.
            let expected: HashSet<String> = ["simples-ws-loop-0", "simples-ws-loop-1"].map(String::from).into();
            assert_eq!(names, expected);
        } else {
            assert!(names.iter().all(|n| !n.starts_with("simples-ws-loop")), "{names:?}");
        }
        drop(clients);
        running.stop().await;
    }
}

#[tokio::test]
async fn a_waiting_handler_holds_the_next_messages_in_order_while_others_are_served() {
    let _alone = THREADS.lock().await;
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut server = common::server();
    let options = WsOptions { max_pending_messages: 4, ..WsOptions::default() };
    let host = server.ws("/slow", options, |_| async {});
    let (g, s) = (gate.clone(), seen.clone());
    host.on_message(move |conn, message| {
        let (gate, seen) = (g.clone(), s.clone());
        async move {
            let text = String::from_utf8_lossy(message.payload()).into_owned();
            seen.lock().unwrap().push(text.clone());
            // Waits on the loop thread's waker: the loop goes on with the
            // other connections meanwhile.
            gate.acquire().await.unwrap().forget();
            let _ = conn.send_text(format!("done {text}"));
        }
    });
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut ws = connect(addr, "/slow").await;
    for i in 0..50 {
        send(&mut ws, &i.to_string()).await;
    }
    // Another connection of the same loop is served while this one waits.
    let mut other = connect(addr, "/slow").await;
    send(&mut other, "x").await;
    common::redis::eventually(Duration::from_secs(5), "both handlers started", || seen.lock().unwrap().len() == 2).await;
    // Only the first message of each connection started its handler.
    assert_eq!(seen.lock().unwrap().len(), 2);
    gate.add_permits(51);
    let mut done = Vec::new();
    for _ in 0..50 {
        done.push(text(&mut ws).await);
    }
    assert_eq!(text(&mut other).await, "done x");
    let expected: Vec<String> = (0..50).map(|i| format!("done {i}")).collect();
    assert_eq!(done, expected, "every message handled once, in order");
    drop((ws, other));
    running.stop().await;
}

#[tokio::test]
async fn open_close_and_broadcasts_from_other_threads() {
    let _alone = THREADS.lock().await;
    let closed = Arc::new(Mutex::new(Vec::new()));
    let mut server = common::server();
    let host = server.ws("/room", WsOptions::default(), |conn| async move {
        let _ = conn.send_text("welcome");
    });
    let c = closed.clone();
    host.on_close(move |conn, frame| {
        let closed = c.clone();
        async move {
            closed.lock().unwrap().push((conn.id(), frame.map(|f| f.code.0)));
        }
    });
    let running = common::start(server).await;
    let addr = running.local_addr();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut ws = connect(addr, "/room").await;
        assert_eq!(text(&mut ws).await, "welcome");
        clients.push(ws);
    }
    wait_for(&host, 8).await;
    // From a plain thread, and from a tokio task.
    let h = host.clone();
    std::thread::spawn(move || {
        for i in 0..100 {
            h.broadcast(Message::text(format!("t{i}")));
        }
    })
    .join()
    .unwrap();
    let h = host.clone();
    tokio::spawn(async move { h.broadcast(Message::text("task")) }).await.unwrap();
    for ws in &mut clients {
        for i in 0..100 {
            assert_eq!(text(ws).await, format!("t{i}"));
        }
        assert_eq!(text(ws).await, "task");
    }
    let mut first = clients.remove(0);
    first.close(CloseCode::NORMAL, "bye").await.unwrap();
    while first.recv().await.is_ok() {}
    common::redis::eventually(Duration::from_secs(5), "on_close ran", || closed.lock().unwrap().len() == 1).await;
    assert_eq!(closed.lock().unwrap()[0].1, Some(1000));
    wait_for(&host, 7).await;
    // The clients answer the server's close frame while it stops.
    let closing: Vec<_> = clients.into_iter().map(|mut ws| tokio::spawn(async move { closed_with(&mut ws).await })).collect();
    running.stop().await;
    for code in closing {
        assert_eq!(code.await.unwrap(), 1001);
    }
    common::redis::eventually(Duration::from_secs(5), "every on_close ran", || closed.lock().unwrap().len() == 8).await;
}

/// The tests that count threads run one at a time (the others in this
/// binary start loops too).
static THREADS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
/// Regression (CI's soak, 2026-12-05): the loops started with the first
/// connection, so the server's descriptors and threads after its first
/// clients were more than before them, which reads as a leak.
async fn the_loop_threads_start_and_end_with_the_server() {
    let _alone = THREADS.lock().await;
    let before = threads_named("simples-ws-loop");
    let mut server = common::server();
    let options = WsOptions { event_loop_threads: 3, ..WsOptions::default() };
    let host = server.ws("/echo", options, |_| async {});
    host.on_message(|conn, m| {
        let _ = conn.send(m);
        async {}
    });
    let running = common::start(server).await;
    // Started with the server, before any connection.
    assert_eq!(threads_named("simples-ws-loop"), before + 3);
    let mut ws = connect(running.local_addr(), "/echo").await;
    send(&mut ws, "a").await;
    assert_eq!(text(&mut ws).await, "a");
    assert_eq!(threads_named("simples-ws-loop"), before + 3);
    let closing = tokio::spawn(async move { closed_with(&mut ws).await });
    running.stop().await;
    assert_eq!(closing.await.unwrap(), 1001);
    assert_eq!(threads_named("simples-ws-loop"), before, "the loops' threads ended with the server");
}

/// Hosts of one server with the same `event_loop_threads` share one set of
/// loops (a broadcast from one host's handler to another host's
/// connections stays on the loop's thread); another count gets its own.
/// The last host to stop stops the set, and a restart starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_with_the_same_thread_count_share_one_set_of_loops() {
    let _alone = THREADS.lock().await;
    let before = threads_named("simples-ws-loop");
    let mut server = common::server();
    let three = WsOptions { event_loop_threads: 3, ..WsOptions::default() };
    let subs = server.ws("/sub", three.clone(), |_| async {});
    let publisher = server.ws("/pub", three, |_| async {});
    let on_loop = Arc::new(Mutex::new(HashSet::new()));
    {
        let (subs, on_loop) = (subs.clone(), on_loop.clone());
        publisher.on_message(move |_, m| {
            on_loop.lock().unwrap().insert(thread_name());
            subs.broadcast(m);
            async {}
        });
    }
    let echo = server.ws("/echo", WsOptions { event_loop_threads: 2, ..WsOptions::default() }, |_| async {});
    echo.on_message(|conn, m| {
        let _ = conn.send(m);
        async {}
    });
    let running = common::start(server).await;
    assert_eq!(threads_named("simples-ws-loop"), before + 5, "3 shared by /sub and /pub, 2 for /echo");

    for round in 0..2 {
        let addr = running.local_addr();
        let mut listeners = Vec::new();
        for _ in 0..4 {
            listeners.push(connect(addr, "/sub").await);
        }
        wait_for(&subs, 4).await;
        let mut p = connect(addr, "/pub").await;
        send(&mut p, &format!("news {round}")).await;
        for l in &mut listeners {
            assert_eq!(text(l).await, format!("news {round}"));
        }
        let mut e = connect(addr, "/echo").await;
        send(&mut e, "e").await;
        assert_eq!(text(&mut e).await, "e");
        assert!(on_loop.lock().unwrap().iter().all(|t| t.starts_with("simples-ws-loop")));
        // /pub's host stops with /sub's still closing its connections (all
        // stop at once): the shared loops end with the last.
        listeners.extend([p, e]);
        let closing: Vec<_> = listeners.into_iter().map(|mut l| tokio::spawn(async move { closed_with(&mut l).await })).collect();
        if round == 0 {
            running.restart().await.unwrap();
            assert_eq!(threads_named("simples-ws-loop"), before + 5, "restarted: the same sets again");
        } else {
            running.stop().await;
        }
        for c in closing {
            assert_eq!(c.await.unwrap(), 1001);
        }
    }
    assert_eq!(threads_named("simples-ws-loop"), before, "every set ended with the server");
}
