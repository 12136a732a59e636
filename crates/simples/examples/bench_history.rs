//! Measures what channel history costs and how fast a recovery is (the
//! figures of BENCHMARKS.md, "Channel history and recovery"). Two
//! processes, to pin them on different cores:
//!
//! ```text
//! taskset -c 0 bench_history server --port 9400 [--history] [--redis URL]
//! taskset -c 1 bench_history load --port 9400 [--clients 1000] [--messages 200] [--rounds 5] [--recover 100]
//! ```
//!
//! The server (one thread) has an object-mode host `/b` whose clients join
//! channel `room` with `@join`; the event `burst {n}` makes it broadcast
//! `n` events on `room` (yielding every 32 so the connections drain).
//! `--history` keeps the channel's history (1,000 messages, 2 minutes;
//! in Redis with `--redis`, built with the redis feature).
//!
//! The load (one thread) connects `--clients` clients that join `room`,
//! then, `--rounds` times, asks for a burst of `--messages` and times it
//! until every client has received every message: deliveries per second.
//! Then, `--rounds` times, one client leaves at a known position, a burst
//! of `--recover` messages is published, and the client reconnects and
//! joins again from its position: the time from the `@join` to its answer
//! (after the replayed messages), checking that exactly the missed
//! messages came. Prints one line per measure, then the medians.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use simples::ws::{HistoryOptions, WsOptions};
use simples::Server;
use simples_ws::tokio::{connect, WebSocket};
use simples_ws::Message;
use tokio::net::TcpStream;
use tokio::sync::Notify;

type Client = WebSocket<TcpStream>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str, default: &str| -> String {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
    };
    let number = |name: &str, default: usize| -> usize { value(name, &default.to_string()).parse().expect("a number") };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let port = number("--port", 9400) as u16;
    match args.first().map(String::as_str) {
        Some("server") => runtime.block_on(server(port, flag("--history"), args.iter().position(|a| a == "--redis").map(|_| value("--redis", "")))),
        Some("load") => runtime.block_on(load(
            port,
            number("--clients", 1000),
            number("--messages", 200),
            number("--rounds", 5),
            number("--recover", 100),
        )),
        _ => {
            eprintln!("usage: bench_history server --port P [--history] [--redis URL] | load --port P [--clients N] [--messages N] [--rounds N] [--recover N]");
            std::process::exit(2);
        }
    }
}

async fn server(port: u16, history: bool, redis: Option<String>) {
    let mut server = Server::new(format!("127.0.0.1:{port}"));
    let relay = match redis {
        None => None,
        Some(url) => Some(relay(&url).await),
    };
    let options = WsOptions { max_queued_messages: 1_000_000, max_queued_bytes: 1 << 30, relay, ..WsOptions::object() };
    let host = server.ws("/b", options, |_| async {});
    if history {
        host.history(|_| Some(HistoryOptions { size: 1000, ttl: Duration::from_secs(120) }));
    }
    host.on_join(|_, _| async { Ok(()) });
    host.on("burst", |conn, data| async move {
        let n = data["n"].as_u64().unwrap_or(0);
        let room = conn.host().channel("room");
        for i in 0..n {
            let _ = room.broadcast_event("m", &i);
            if i % 32 == 31 {
                tokio::task::yield_now().await;
            }
        }
    });
    let running = server.start().await.expect("the server starts");
    println!("bench_history server on {} (history {})", running.local_addr(), if history { "on" } else { "off" });
    running.wait().await;
}

#[cfg(feature = "redis")]
async fn relay(url: &str) -> simples::ws::Relay {
    use simples::{RedisBackplane, RedisBackplaneOptions};
    simples::ws::Relay::new(RedisBackplane::connect(RedisBackplaneOptions::new(url)).await.expect("Redis"))
}

#[cfg(not(feature = "redis"))]
async fn relay(_url: &str) -> simples::ws::Relay {
    eprintln!("--redis needs the redis feature");
    std::process::exit(2);
}

async fn open(port: u16) -> Client {
    let (ws, _) = connect(&format!("ws://127.0.0.1:{port}/b")).await.expect("connects");
    ws
}

async fn send(ws: &mut Client, value: Value) {
    ws.send(Message::text(value.to_string())).await.expect("sends");
}

async fn next_json(ws: &mut Client) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.recv()).await.expect("a message within 30 s").expect("open") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Close(_) => panic!("closed by the server"),
            _ => {}
        }
    }
}

/// Sends `@join` (from `since`) and reads up to its ack: the messages
/// before it and the ack.
async fn join(ws: &mut Client, since: Option<&Value>, id: u64) -> (Vec<Value>, Value) {
    send(ws, json!({ "event": "@join", "data": { "channel": "room", "since": since }, "id": id })).await;
    let mut before = Vec::new();
    loop {
        let v = next_json(ws).await;
        if v["ack"] == id {
            return (before, v);
        }
        before.push(v);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn load(port: u16, clients: usize, messages: usize, rounds: usize, recover: usize) {
    // The subscribers: each counts the channel's messages it receives.
    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    for _ in 0..clients {
        let mut ws = open(port).await;
        join(&mut ws, None, 1).await;
        let (received, done) = (received.clone(), done.clone());
        tokio::spawn(async move {
            while let Ok(m) = ws.recv().await {
                if let Message::Text(t) = m {
                    if t.as_str().starts_with(r#"{"event":"m""#) {
                        received.fetch_add(1, Ordering::Relaxed);
                        done.notify_one();
                    }
                }
            }
        });
    }
    let mut control = open(port).await;
    let mut rates = Vec::new();
    for round in 1..=rounds {
        received.store(0, Ordering::SeqCst);
        let want = clients * messages;
        let start = Instant::now();
        send(&mut control, json!({ "event": "burst", "data": { "n": messages } })).await;
        while received.load(Ordering::SeqCst) < want {
            let _ = tokio::time::timeout(Duration::from_millis(50), done.notified()).await;
            assert!(start.elapsed() < Duration::from_secs(60), "deliveries stalled at {}", received.load(Ordering::SeqCst));
        }
        let rate = want as f64 / start.elapsed().as_secs_f64();
        println!("broadcast round {round}: {want} deliveries in {:.1} ms = {rate:.0}/s", start.elapsed().as_secs_f64() * 1e3);
        rates.push(rate);
    }
    // Recovery: leave at a known position, miss `recover`, come back.
    let mut times = Vec::new();
    for round in 1..=rounds {
        let mut ws = open(port).await;
        let (_, ack) = join(&mut ws, None, 1).await;
        if ack["data"]["epoch"].is_null() {
            println!("recovery: the server keeps no history (start it with --history)");
            break;
        }
        let since = json!({ "epoch": ack["data"]["epoch"], "offset": ack["data"]["offset"] });
        drop(ws);
        received.store(0, Ordering::SeqCst);
        send(&mut control, json!({ "event": "burst", "data": { "n": recover } })).await;
        while received.load(Ordering::SeqCst) < clients * recover {
            let _ = tokio::time::timeout(Duration::from_millis(50), done.notified()).await;
        }
        let mut ws = open(port).await;
        let start = Instant::now();
        let (replayed, ack) = join(&mut ws, Some(&since), 2).await;
        let took = start.elapsed();
        assert_eq!(ack["data"]["recovered"], true);
        assert_eq!(replayed.len(), recover, "replayed {} of {recover}", replayed.len());
        println!("recovery round {round}: {recover} missed messages replayed in {:.2} ms", took.as_secs_f64() * 1e3);
        times.push(took.as_secs_f64() * 1e3);
    }
    println!("median broadcast: {:.0} deliveries/s ({clients} subscribers, bursts of {messages})", median(rates));
    if !times.is_empty() {
        println!("median recovery of {recover}: {:.2} ms", median(times));
    }
}
