//! The demo application: a chat with rooms.
//!
//! ```text
//! cargo run --release --example chat                 # http://127.0.0.1:8080
//! cargo run --release --example chat -- --addr 127.0.0.1:3000
//! ADDR=127.0.0.1:3000 cargo run --release --example chat
//! ```
//!
//! * `GET /` renders `chat/index.html` (minijinja) with the visitor's
//!   nickname, kept in the session (a generated `guest-N` the first time;
//!   memory session store, cookie `simples.sid`).
//! * `/simples.js` is the browser client, `/app.js` the page's script.
//! * `/chat` is a WebSocket host in object mode. Events from the page:
//!   `nick {nick}` (request: stored in the session, shared with HTTP, so a
//!   reload keeps it), `join {room}` (request: leaves the current room's
//!   channel, binds the new one), `say {text}`. Events to the page:
//!   `room {room, members}`, `said {nick, text}`, `system {text}`,
//!   `online {count}` (every connected user, every room).
//!
//! Stop with Ctrl-C or SIGTERM: connections get close 1001 and the server
//! waits for their closing handshakes.

use std::time::Duration;

use serde_json::{json, Value};
use simples::ws::{ChannelEvent, WsConn, WsOptions};
use simples::{HostOptions, MiniJinja, Server, SessionConfig};

const INDEX: &str = include_str!("chat/index.html");
const APP_JS: &str = include_str!("chat/app.js");
const LOBBY: &str = "lobby";

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    let addr = match address() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: {e}\nusage: chat [--addr HOST:PORT]   (or ADDR=HOST:PORT)");
            std::process::exit(2);
        }
    };

    let mut server = Server::new(&addr);
    server.set_options(HostOptions {
        session: Some(SessionConfig::with_ttl(Duration::from_secs(24 * 3600))),
        ..HostOptions::default()
    });
    let mut templates = MiniJinja::new();
    templates.add_template("index.html", INDEX).expect("the page template parses");
    server.templates(templates);
    server.serve_client("/simples.js");
    server.get("/app.js", |conn| async move {
        let mut conn = conn;
        conn.set_type("text/javascript; charset=utf-8");
        conn.send(APP_JS)
    });
    server.get("/", |mut conn| async move {
        let session = conn.session().await?;
        let nick = match session.get::<String>("nick")? {
            Some(nick) => nick,
            None => {
                let nick = guest_name();
                session.set("nick", &nick)?;
                nick
            }
        };
        Ok::<_, simples::Error>(conn.render("index.html", &json!({ "nick": nick })))
    });

    let chat = server.ws("/chat", WsOptions::object(), |conn| async move {
        conn.bind(LOBBY);
        announce_online(&conn);
    });
    chat.on("nick", |conn, data| async move {
        let nick = text_field(&data, "nick", 24)?;
        let old = nick_of(&conn);
        if let Some(session) = conn.session() {
            session.set("nick", &nick).map_err(|e| e.to_string())?;
        }
        conn.save_session().await.map_err(|e| e.to_string())?;
        for room in conn.channels() {
            let _ = conn.host().channel(&room).broadcast_event("system", &json!({ "text": format!("{old} is now {nick}") }));
        }
        Ok::<_, String>(json!({ "nick": nick }))
    });
    chat.on("join", |conn, data| async move {
        let room = text_field(&data, "room", 32)?;
        if !room.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Err("a room name has letters, digits, '-' and '_' only".to_string());
        }
        for old in conn.channels() {
            if old != room {
                conn.unbind(&old);
            }
        }
        conn.bind(&room);
        let members: Vec<String> = conn.host().channel(&room).members().iter().map(nick_of).collect();
        Ok(json!({ "room": room, "members": members }))
    });
    chat.on("say", |conn, data| async move {
        let text = text_field(&data, "text", 500)?;
        let nick = nick_of(&conn);
        for room in conn.channels() {
            let _ = conn.host().channel(&room).broadcast_event("said", &json!({ "nick": nick, "text": text, "room": room }));
        }
        Ok::<_, String>(Value::Null)
    });
    chat.on_close(|conn, _frame| async move { announce_online(&conn) });
    // Join and leave notices, for explicit joins and for closed connections.
    chat.on_channel(|event| match event {
        ChannelEvent::Bind { channel, conn } => notice(conn, channel, "joined"),
        ChannelEvent::Unbind { channel, conn } => notice(conn, channel, "left"),
        ChannelEvent::Close { .. } => {}
    });

    let running = match server.start().await {
        Ok(r) => r,
        Err(e) => {
            // A start-up error (address taken, invalid): its reason, not
            // the HTTP status the error type also carries.
            eprintln!("chat: {}", e.reason());
            std::process::exit(1);
        }
    };
    println!("chat listening on http://{}", running.local_addr());
    tokio::select! {
        _ = stop_signal() => running.stop().await,
        _ = running.wait() => {}
    }
}

/// Ctrl-C (SIGINT), or SIGTERM on Unix (`kill`, `docker stop`, systemd).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => eprintln!("chat: cannot watch SIGTERM ({e}); Ctrl-C still stops gracefully"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `--addr HOST:PORT`, else `ADDR`, else 127.0.0.1:8080.
fn address() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = std::env::var("ADDR").ok().filter(|a| !a.is_empty());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = Some(args.next().ok_or("--addr needs a value")?),
            a if a.starts_with("--addr=") => addr = Some(a["--addr=".len()..].to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(addr.unwrap_or_else(|| "127.0.0.1:8080".to_string()))
}

/// `guest-1`, `guest-2`, ...: unique while the server runs.
fn guest_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!("guest-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A non-empty string field of at most `max` characters, trimmed.
fn text_field(data: &Value, name: &str, max: usize) -> Result<String, String> {
    let text = data[name].as_str().map(str::trim).unwrap_or("");
    if text.is_empty() || text.chars().count() > max {
        return Err(format!("{name:?} must be 1 to {max} characters"));
    }
    Ok(text.to_string())
}

fn nick_of(conn: &WsConn) -> String {
    conn.session()
        .and_then(|s| s.get::<String>("nick").ok().flatten())
        .unwrap_or_else(|| format!("anonymous-{}", conn.id()))
}

fn announce_online(conn: &WsConn) {
    let host = conn.host();
    let _ = host.broadcast_event("online", &json!({ "count": host.len() }));
}

fn notice(conn: &WsConn, channel: &str, what: &str) {
    let text = format!("{} {what}", nick_of(conn));
    let room = conn.host().channel(channel);
    let _ = room.broadcast_event("system", &json!({ "text": text }));
    if what == "joined" {
        let members: Vec<String> = room.members().iter().map(nick_of).collect();
        let _ = conn.send_event("room", &json!({ "room": channel, "members": members }));
    }
}
