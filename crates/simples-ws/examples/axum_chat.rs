//! A chat inside an axum app: `/` serves a small page, `/ws` is a
//! WebSocket (simples-ws, through `simples_ws::axum::WebSocketUpgrade`)
//! where every text message is broadcast to everyone connected.
//!
//! ```sh
//! cargo run -p simples-ws --features axum --example axum_chat -- 127.0.0.1:3000
//! ```
//!
//! then open <http://127.0.0.1:3000/> in two browser tabs.

use axum::response::{Html, Response};
use axum::routing::get;
use axum::Router;
use simples_ws::axum::{UpgradedSocket, WebSocketUpgrade};
use simples_ws::deflate::DeflateConfig;
use simples_ws::Message;
use tokio::sync::broadcast;

/// The largest chat message accepted, in bytes.
pub const MAX_MESSAGE: usize = 4096;

/// The page: connects to `/ws` with the `chat` subprotocol.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>simples-ws chat (axum)</title>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
  const log = document.getElementById('log');
  const show = (text) => { const li = document.createElement('li'); li.textContent = text; log.append(li); };
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, ['chat']);
  socket.onmessage = (e) => show(e.data);
  socket.onclose = () => show('(disconnected)');
  document.getElementById('form').onsubmit = (e) => {
    e.preventDefault();
    const input = document.getElementById('text');
    if (input.value) socket.send(input.value);
    input.value = '';
  };
</script>
"#;

/// The app: the page at `/`, the chat at `/ws`.
pub fn app() -> Router {
    // Messages to everyone; a client that falls 64 messages behind skips.
    let (room, _) = broadcast::channel::<String>(64);
    Router::new().route("/", get(|| async { Html(PAGE) })).route(
        "/ws",
        get(move |ws: WebSocketUpgrade| async move {
            let room = room.clone();
            let upgrade: Response = ws
                .protocols(["chat"])
                .max_message_size(MAX_MESSAGE)
                .deflate(DeflateConfig::default())
                .on_upgrade(move |socket| chat(socket, room));
            upgrade
        }),
    )
}

/// One connection: what it says goes to the room, what the room says comes
/// back to it.
async fn chat(mut socket: UpgradedSocket, room: broadcast::Sender<String>) {
    let mut heard = room.subscribe();
    // Subscribed: from now on this client hears everything.
    if socket.send(Message::text(format!("welcome ({} online)", room.receiver_count()))).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            // `recv` is cancel-safe: a message half read stays buffered.
            msg = socket.recv() => match msg {
                Ok(Message::Text(text)) => {
                    let _ = room.send(text.as_str().to_owned());
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            },
            said = heard.recv() => match said {
                Ok(text) => {
                    if socket.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

#[allow(dead_code)] // the integration test includes this file for `app`
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("chat on http://{}/", listener.local_addr()?);
    axum::serve(listener, app()).await
}
