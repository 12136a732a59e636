//! axum benchmark peer, with its `ws` feature (see `bench/servers/README.md`).
//!
//! axum's `WebSocket` wraps tokio-tungstenite and is a `Stream` and a
//! `Sink`: echo replies are `SinkExt::feed`-ed (queued in tungstenite's
//! write buffer) and flushed only when no more input is ready, as in the
//! tokio-tungstenite peer (`send` would flush every message).
//!
//! Broadcast: a registry of per-subscriber unbounded mpsc senders with a
//! byte budget (`MAX_QUEUED`, as simples' `split(max_queued)`): the
//! publisher never waits, a subscriber over budget misses the message
//! (counted). `axum::serve` spawns `Send` tasks, so the registry sits behind
//! a (never contended: one thread) mutex.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use axum::serve::ListenerExt;
use axum::Router;
use bench_server_common::{self as common, MAX_MESSAGE, MAX_QUEUED};
use futures_util::{FutureExt, SinkExt, StreamExt};
use slab::Slab;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Subscriber {
    tx: mpsc::UnboundedSender<Message>,
    /// Bytes handed to this subscriber and not yet written.
    queued: Arc<AtomicUsize>,
}

type Registry = Arc<Mutex<Slab<Subscriber>>>;

fn main() {
    common::run("axum", serve());
}

async fn serve() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(common::listen_addr()).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let registry: Registry = Arc::new(Mutex::new(Slab::new()));
    let app =
        Router::new().route("/sub", any(subscriber)).route("/pub", any(publisher)).fallback(echo).with_state(registry);
    axum::serve(listener, app).await
}

fn limits(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE)
}

fn data_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    limits(ws).on_upgrade(|mut ws: WebSocket| async move {
        loop {
            // Take the next message if one is ready; otherwise write the
            // queued replies, then wait.
            let next = match ws.next().now_or_never() {
                Some(next) => next,
                None => {
                    if ws.flush().await.is_err() {
                        return;
                    }
                    ws.next().await
                }
            };
            match next {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if ws.feed(m).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {} // pings are answered, closes echoed, by tungstenite
                Some(Err(_)) | None => return,
            }
        }
    })
}

async fn subscriber(ws: WebSocketUpgrade, State(registry): State<Registry>) -> Response {
    limits(ws).on_upgrade(move |mut ws: WebSocket| async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let key = registry.lock().unwrap().insert(Subscriber { tx, queued: queued.clone() });
        let _: Result<(), axum::Error> = async {
            loop {
                tokio::select! {
                    m = rx.recv() => {
                        let Some(m) = m else { return Ok(()) };
                        let mut bytes = data_len(&m);
                        ws.feed(m).await?;
                        while let Ok(m) = rx.try_recv() {
                            bytes += data_len(&m);
                            ws.feed(m).await?;
                        }
                        ws.flush().await?;
                        queued.fetch_sub(bytes, Ordering::Relaxed);
                    }
                    m = ws.next() => match m {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e),
                        None => return Ok(()),
                    },
                }
            }
        }
        .await;
        registry.lock().unwrap().remove(key);
    })
}

async fn publisher(ws: WebSocketUpgrade, State(registry): State<Registry>) -> Response {
    limits(ws).on_upgrade(move |mut ws: WebSocket| async move {
        while let Some(Ok(m)) = ws.next().await {
            if !matches!(m, Message::Text(_) | Message::Binary(_)) {
                continue;
            }
            let len = data_len(&m);
            for (_, sub) in registry.lock().unwrap().iter() {
                if sub.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
                    common::count_drop();
                    continue;
                }
                // Text and Binary hold `Bytes`: the clone shares them.
                if sub.tx.send(m.clone()).is_ok() {
                    sub.queued.fetch_add(len, Ordering::Relaxed);
                }
            }
        }
    })
}
