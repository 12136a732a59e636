//! The demo application: a chat with rooms.
//!
//! ```text
//! cargo run --release --example chat                 # http://127.0.0.1:8080
//! cargo run --release --example chat -- --addr 127.0.0.1:3000
//! ADDR=127.0.0.1:3000 cargo run --release --example chat
//! # Several nodes sharing rooms, sessions and the online count:
//! cargo run --release -p simples --features redis --example chat -- --addr 127.0.0.1:8081 --redis redis://127.0.0.1:6379
//! ```
//!
//! * `GET /` renders `chat/index.html` (minijinja) with the visitor's
//!   nickname, kept in the session (a generated `guest-N` the first time;
//!   cookie `simples.sid`; memory session store, or Redis with `--redis`).
//! * With `--redis URL` (or `REDIS_URL`; the build needs `--features
//!   redis`), the node joins the others on that Redis: broadcasts, rooms
//!   and presence go through a `RedisBackplane`, sessions live in Redis, so
//!   a user can land on any node.
//! * `/simples.js` is the browser client, `/app.js` the page's script.
//! * `/metrics` (built with `--features prometheus`): the Prometheus scrape
//!   page (connections, messages and bytes in and out, broadcasts, drops,
//!   handshake refusals and time, close codes).
//! * `/chat` is a WebSocket host in object mode. Events from the page:
//!   `nick {nick}` (request: stored in the session, shared with HTTP, so a
//!   reload keeps it), `@join` (simples.js's `socket.join(room, {recent})`:
//!   leaves the other rooms, binds the new one, sends its latest messages
//!   first), `join {room}` (the same as a plain request, answering the
//!   members), `say {text}`.
//! * Rooms keep a history (`--history SIZE`, default 100 messages, at
//!   most 2 minutes old; in Redis with `--redis`, so the same on every
//!   node): a page that joins sees the last 20 messages, and a page that
//!   reconnects (to any node) gets exactly what it missed, or a notice
//!   when too much was missed. Events to the page:
//!   `room {room, members}`, `said {nick, text}`, `system {text}`,
//!   `online {count}` (every connected user, every room, every node).
//!   Room members and the online count come from presence (channel
//!   `@online` holds every connection), so they span the nodes. With
//!   Redis the count is also recounted every 5 s: the users of a node that
//!   died leave presence when its heartbeat expires, with no event.
//!
//! Stop with Ctrl-C or SIGTERM: connections get close 1001 and the server
//! waits for their closing handshakes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use simples::ws::{ChannelEvent, HistoryOptions, PresenceEvent, Relay, WsConn, WsHost, WsOptions};
use simples::{HostOptions, MiniJinja, Server, SessionConfig, SessionStore};

const INDEX: &str = include_str!("chat/index.html");
const APP_JS: &str = include_str!("chat/app.js");
/// Every connection is in this channel: its presence is the online list.
/// (Room names are letters, digits, '-' and '_': no room can be called so.)
const ONLINE: &str = "@online";
/// How long a room keeps its messages (and at most `--history` of them).
const HISTORY_TTL: Duration = Duration::from_secs(120);
/// With Redis, how often a node recounts the online users (see [`Online`]).
const ONLINE_RECOUNT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: {e}\nusage: chat [--addr HOST:PORT] [--redis redis://HOST:PORT] [--history SIZE]   (or ADDR=..., REDIS_URL=..., HISTORY=...)");
            std::process::exit(2);
        }
    };
    let (relay, store) = match &args.redis {
        None => (None, None),
        Some(url) => match scale_out(url).await {
            Ok((relay, store)) => (Some(relay), Some(store)),
            Err(e) => {
                eprintln!("chat: {e}");
                std::process::exit(1);
            }
        },
    };

    let mut server = Server::new(&args.addr);
    // Built with `--features prometheus`: the hosts' metrics at /metrics.
    #[cfg(feature = "prometheus")]
    match simples::prometheus::install() {
        Ok(prometheus) => {
            server.serve_metrics("/metrics", prometheus);
        }
        Err(e) => eprintln!("chat: no /metrics: {}", e.reason()),
    }
    let mut session = SessionConfig::with_ttl(Duration::from_secs(24 * 3600));
    if let Some(store) = store {
        session.store = store;
    }
    server.set_options(HostOptions { session: Some(session), ..HostOptions::default() });
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

    let options = WsOptions { relay, presence: true, ..WsOptions::object() };
    // The page joins the lobby itself (`socket.join`), so that it recovers
    // it after a reconnection.
    let chat = server.ws("/chat", options, |conn| async move {
        conn.set_presence(json!({ "nick": nick_of(&conn) }));
        conn.bind(ONLINE);
    });
    let history = HistoryOptions { size: args.history, ttl: HISTORY_TTL };
    chat.history(move |channel| (channel != ONLINE).then_some(history));
    chat.on_join(|conn, room| async move {
        check_room(&room)?;
        for old in rooms_of(&conn) {
            if old != room {
                conn.unbind(&old);
            }
        }
        Ok(())
    });
    chat.on("nick", |conn, data| async move {
        let nick = text_field(&data, "nick", 24)?;
        let old = nick_of(&conn);
        if let Some(session) = conn.session() {
            session.set("nick", &nick).map_err(|e| e.to_string())?;
        }
        conn.save_session().await.map_err(|e| e.to_string())?;
        conn.set_presence(json!({ "nick": nick }));
        for room in rooms_of(&conn) {
            let _ = conn.host().channel(&room).broadcast_event("system", &json!({ "text": format!("{old} is now {nick}") }));
        }
        Ok::<_, String>(json!({ "nick": nick }))
    });
    chat.on("join", |conn, data| async move {
        let room = text_field(&data, "room", 32)?;
        check_room(&room)?;
        for old in rooms_of(&conn) {
            if old != room {
                conn.unbind(&old);
            }
        }
        conn.bind(&room);
        let members = members_of(&conn.host(), &room).await;
        Ok::<_, String>(json!({ "room": room, "members": members }))
    });
    chat.on("say", |conn, data| async move {
        let text = text_field(&data, "text", 500)?;
        let nick = nick_of(&conn);
        for room in rooms_of(&conn) {
            let _ = conn.host().channel(&room).broadcast_event("said", &json!({ "nick": nick, "text": text, "room": room }));
        }
        Ok::<_, String>(Value::Null)
    });
    // Join and leave notices, for explicit joins and for closed connections.
    chat.on_channel(|event| match event {
        ChannelEvent::Bind { channel, conn } if channel != ONLINE => notice(conn, channel, "joined"),
        ChannelEvent::Unbind { channel, conn } if channel != ONLINE => notice(conn, channel, "left"),
        _ => {}
    });
    // Someone came or went, on any node: this node tells its own pages
    // the new count (every node does, for its pages).
    let online = Online::new(chat.clone());
    let counter = online.clone();
    chat.on_presence(move |event: &PresenceEvent| {
        if event.channel() == ONLINE {
            let counter = counter.clone();
            tokio::spawn(async move { counter.recount(true).await });
        }
    });
    // A node that dies announces no leave: its users drop out of presence
    // when its heartbeat expires (the backplane's TTL), and no presence
    // event says so. With Redis, recount every few seconds and tell the
    // pages when the count changed.
    if args.redis.is_some() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ONLINE_RECOUNT);
            loop {
                tick.tick().await;
                online.recount(false).await;
            }
        });
    }

    let running = match server.start().await {
        Ok(r) => r,
        Err(e) => {
            // A start-up error (address taken, invalid): its reason, not
            // the HTTP status the error type also carries.
            eprintln!("chat: {}", e.reason());
            std::process::exit(1);
        }
    };
    match &args.redis {
        Some(url) => println!("chat listening on http://{} (node of {url})", running.local_addr()),
        None => println!("chat listening on http://{}", running.local_addr()),
    }
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

/// The command line.
struct Args {
    /// `--addr HOST:PORT`, else `ADDR`, else 127.0.0.1:8080.
    addr: String,
    /// `--redis URL`, else `REDIS_URL`, else none (one node).
    redis: Option<String>,
    /// `--history SIZE`, else `HISTORY`, else 100: the messages a room keeps.
    history: usize,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut args = std::env::args().skip(1);
        let (mut addr, mut redis, mut history) = (env("ADDR"), env("REDIS_URL"), env("HISTORY"));
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let slot = match name.as_str() {
                "--addr" => &mut addr,
                "--redis" => &mut redis,
                "--history" => &mut history,
                other => return Err(format!("unknown argument {other:?}")),
            };
            *slot = Some(match inline {
                Some(v) => v,
                None => args.next().ok_or(format!("{name} needs a value"))?,
            });
        }
        let history = match history {
            None => 100,
            Some(h) => h.parse().ok().filter(|n| *n > 0).ok_or(format!("--history must be a positive number, not {h:?}"))?,
        };
        Ok(Args { addr: addr.unwrap_or_else(|| "127.0.0.1:8080".to_string()), redis, history })
    }
}

/// This node's link to the others through Redis, and the shared sessions.
#[cfg(feature = "redis")]
async fn scale_out(url: &str) -> Result<(Relay, Arc<dyn SessionStore>), String> {
    use simples::backplane::{RedisBackplane, RedisBackplaneOptions};
    let backplane = RedisBackplane::connect(RedisBackplaneOptions::new(url))
        .await
        .map_err(|e| format!("cannot use Redis at {url}: {e}"))?;
    let store = simples::RedisSessionStore::connect(url, "simples").await.map_err(|e| format!("cannot use Redis at {url} for sessions: {e}"))?;
    Ok((Relay::new(backplane), Arc::new(store)))
}

#[cfg(not(feature = "redis"))]
async fn scale_out(_url: &str) -> Result<(Relay, Arc<dyn SessionStore>), String> {
    Err("--redis needs the demo built with the redis feature: cargo run --release -p simples --features redis --example chat -- --redis URL".into())
}

/// `guest-N`: N random, so that nodes sharing sessions do not hand out the
/// same names.
fn guest_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("guest-{}", 1000 + random % 9000)
}

/// A room name: 1 to 32 letters, digits, '-' and '_'.
fn check_room(room: &str) -> Result<(), String> {
    if room.is_empty() || room.chars().count() > 32 || !room.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
        return Err("a room name has 1 to 32 letters, digits, '-' and '_'".to_string());
    }
    Ok(())
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

/// The online count this node's pages were last told.
#[derive(Clone)]
struct Online {
    host: WsHost,
    sent: Arc<Mutex<Option<usize>>>,
}

impl Online {
    fn new(host: WsHost) -> Online {
        Online { host, sent: Arc::new(Mutex::new(None)) }
    }

    /// Counts the members of `@online` on every node and tells this node's
    /// pages: always with `force` (after a presence event: a page that just
    /// came needs the count even if a leave elsewhere kept it the same),
    /// else only when it differs from the last one sent. The lock keeps
    /// the count recorded as sent the last one the pages got, whatever
    /// order concurrent recounts finish in.
    async fn recount(&self, force: bool) {
        let Ok(online) = self.host.channel(ONLINE).presence().await else { return };
        let count = online.len();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if force || *sent != Some(count) {
            *sent = Some(count);
            let _ = self.host.broadcast_event_filter("online", &json!({ "count": count }), |_| true);
        }
    }
}

/// The rooms `conn` is in (its channels but the online list).
fn rooms_of(conn: &WsConn) -> Vec<String> {
    conn.channels().into_iter().filter(|c| c != ONLINE).collect()
}

/// The nicknames in `room`, on every node.
async fn members_of(host: &WsHost, room: &str) -> Vec<String> {
    let members = host.channel(room).presence().await.unwrap_or_default();
    members.iter().filter_map(|m| m.info["nick"].as_str().map(String::from)).collect()
}

fn notice(conn: &WsConn, channel: &str, what: &str) {
    let text = format!("{} {what}", nick_of(conn));
    let room = conn.host().channel(channel);
    let _ = room.broadcast_event("system", &json!({ "text": text }));
    if what == "joined" {
        let (conn, channel) = (conn.clone(), channel.to_string());
        tokio::spawn(async move {
            let members = members_of(&conn.host(), &channel).await;
            let _ = conn.send_event("room", &json!({ "room": channel, "members": members }));
        });
    }
}
