//! The session a WebSocket connection shares with HTTP: same cookie, same
//! store; changes made on the connection reach HTTP once saved.

mod common;

use common::ws::{connect, text, try_connect};
use common::{req, send, Reply};
use simples::ws::{Message, WsOptions};
use simples::{Conn, SessionConfig};
use simples_ws::handshake::client::ClientConfig;

fn session_cookie(reply: &Reply) -> String {
    reply
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("simples.sid="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no session cookie in {:?}", reply.headers))
}

fn with_cookie(cookie: &str) -> ClientConfig {
    ClientConfig { headers: vec![("Cookie".into(), cookie.to_string())], ..ClientConfig::default() }
}

/// A host with sessions: `/login?name=` and `/whoami` over HTTP, `/ws`
/// greeting with the session's name and handling `rename:NAME`,
/// `rename-unsaved:NAME` and `logout`.
fn session_server() -> simples::Server {
    let mut server = common::server();
    server.options_mut().session = Some(SessionConfig::default());
    server.get("/login", |mut conn: Conn| async move {
        let name = conn.query("name").unwrap_or("anonymous").to_string();
        conn.session().await?.set("name", &name)?;
        Ok::<_, simples::Error>(conn.send("ok"))
    });
    server.get("/whoami", |mut conn: Conn| async move {
        let name: Option<String> = conn.session().await?.get("name")?;
        Ok::<_, simples::Error>(conn.send(name.unwrap_or_else(|| "nobody".into())))
    });
    let ws = server.ws("/ws", WsOptions::default(), |conn| async move {
        let session = conn.session().expect("the host has sessions");
        let name: Option<String> = session.get("name").unwrap();
        let _ = conn.send_text(format!("hello {}", name.as_deref().unwrap_or("nobody")));
    });
    ws.on_message(|conn, message| async move {
        let Message::Text(t) = message else { return };
        let session = conn.session().expect("the host has sessions").clone();
        let t = t.as_str();
        if let Some(name) = t.strip_prefix("rename:") {
            session.set("name", name).unwrap();
            conn.save_session().await.unwrap();
        } else if let Some(name) = t.strip_prefix("rename-unsaved:") {
            session.set("name", name).unwrap();
        } else if t == "logout" {
            session.destroy();
            conn.save_session().await.unwrap();
        }
        let now: Option<String> = session.get("name").unwrap();
        let _ = conn.send_text(format!("now {}", now.as_deref().unwrap_or("nobody")));
    });
    server
}

#[tokio::test]
async fn the_session_is_shared_with_http_both_ways() {
    let running = common::start(session_server()).await;
    let addr = running.local_addr();

    let login = send(addr, req("GET", "/login?name=ada")).await;
    assert_eq!(login.text(), "ok");
    let cookie = session_cookie(&login);

    // The connection made with the cookie sees what HTTP stored.
    let mut client = try_connect(addr, "/ws", with_cookie(&cookie)).await.expect("handshake");
    assert_eq!(text(&mut client).await, "hello ada");

    // Changed and saved on the connection: the next HTTP request sees it.
    common::ws::send(&mut client, "rename:grace").await;
    assert_eq!(text(&mut client).await, "now grace");
    assert_eq!(send(addr, req("GET", "/whoami").header("cookie", &cookie)).await.text(), "grace");

    // Changed but not saved: HTTP still sees the stored value, while the
    // connection keeps its own.
    common::ws::send(&mut client, "rename-unsaved:linus").await;
    assert_eq!(text(&mut client).await, "now linus");
    assert_eq!(send(addr, req("GET", "/whoami").header("cookie", &cookie)).await.text(), "grace");

    // A new connection loads the stored session.
    let mut second = try_connect(addr, "/ws", with_cookie(&cookie)).await.expect("handshake");
    assert_eq!(text(&mut second).await, "hello grace");

    // Destroyed from the connection: gone for HTTP too.
    common::ws::send(&mut client, "logout").await;
    assert_eq!(text(&mut client).await, "now nobody");
    assert_eq!(send(addr, req("GET", "/whoami").header("cookie", &cookie)).await.text(), "nobody");

    drop(client);
    drop(second);
    running.stop().await;
}

#[tokio::test]
async fn a_connection_without_a_cookie_gets_a_fresh_session() {
    let running = common::start(session_server()).await;
    let addr = running.local_addr();
    let mut client = connect(addr, "/ws").await;
    assert_eq!(text(&mut client).await, "hello nobody");
    // Another client's session is not this one.
    let login = send(addr, req("GET", "/login?name=ada")).await;
    let mut stranger = try_connect(addr, "/ws", with_cookie("simples.sid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await.unwrap();
    assert_eq!(text(&mut stranger).await, "hello nobody");
    let mut owner = try_connect(addr, "/ws", with_cookie(&session_cookie(&login))).await.unwrap();
    assert_eq!(text(&mut owner).await, "hello ada");
    drop((client, stranger, owner));
    running.stop().await;
}

#[tokio::test]
async fn without_sessions_configured_the_connection_has_none() {
    let mut server = common::server();
    server.ws("/ws", WsOptions::default(), |conn| async move {
        let saved = conn.save_session().await.is_ok();
        let _ = conn.send_text(format!("session: {}, save ok: {saved}", conn.session().is_some()));
    });
    let running = common::start(server).await;
    let cookie = with_cookie("simples.sid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut client = try_connect(running.local_addr(), "/ws", cookie).await.expect("handshake");
    assert_eq!(text(&mut client).await, "session: false, save ok: true");
    drop(client);
    running.stop().await;
}
