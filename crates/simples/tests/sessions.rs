//! Sessions: typed values kept across requests by cookie, cookie
//! attributes, expiry, destroy, regenerate, refusal of unknown ids, the
//! memory store's sweep.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use simples::{Conn, MemoryStore, SessionConfig, SessionStore};

/// [`counter_server`] started with its sessions in a [`MemoryStore`] the
/// test can look into: the store, the server and its address.
async fn counter_with_memory_store() -> (Arc<MemoryStore>, simples::Running, std::net::SocketAddr) {
    let store = Arc::new(MemoryStore::new());
    let config = SessionConfig { store: store.clone(), ..SessionConfig::default() };
    let r = start(counter_server(config)).await;
    let a = r.local_addr();
    (store, r, a)
}

fn counter_server(config: SessionConfig) -> simples::Server {
    let mut s = server();
    s.options_mut().session = Some(config);
    s.get("/count", |mut conn: Conn| async move {
        let session = conn.session().await?;
        let n: u32 = session.get("n")?.unwrap_or(0) + 1;
        session.set("n", &n)?;
        Ok::<_, simples::Error>(conn.send(n.to_string()))
    });
    s.get("/peek", |mut conn: Conn| async move {
        let session = conn.session().await?;
        let n: Option<u32> = session.get("n")?;
        Ok::<_, simples::Error>(conn.send(format!("{n:?}")))
    });
    s.get("/wrong-type", |mut conn: Conn| async move {
        let session = conn.session().await?;
        let _: Option<Vec<String>> = session.get("n")?;
        Ok::<_, simples::Error>(conn.send("unreachable"))
    });
    s.get("/logout", |mut conn: Conn| async move {
        conn.session().await?.destroy();
        Ok::<_, simples::Error>(conn.send("bye"))
    });
    s.get("/login", |mut conn: Conn| async move {
        let session = conn.session().await?;
        let before = session.id();
        session.regenerate();
        session.set("user", "ada")?;
        Ok::<_, simples::Error>(conn.send(before))
    });
    s
}

fn session_cookie(reply: &Reply) -> Option<String> {
    reply
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("simples.sid="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn values_persist_through_the_cookie() {
    let r = start(counter_server(SessionConfig::default())).await;
    let a = r.local_addr();
    let first = get(a, "/count").await;
    assert_eq!(first.text(), "1");
    let set = first.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "no Secure over plain HTTP: {set}");
    let cookie = session_cookie(&first).unwrap();
    let id = cookie.trim_start_matches("simples.sid=");
    assert_eq!(id.len(), 32, "192-bit id, base64url");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    for expected in ["2", "3"] {
        let r = send(a, req("GET", "/count").header("cookie", &cookie)).await;
        assert_eq!(r.text(), expected);
        assert!(session_cookie(&r).is_none(), "the cookie is set once");
    }
    // A type mismatch is a 500 with the reason, not a crash.
    let wrong = send(a, req("GET", "/wrong-type").header("cookie", &cookie)).await;
    assert_eq!(wrong.status, 500);
    assert!(wrong.text().contains("another type"));

    // Another client has its own session.
    assert_eq!(get(a, "/count").await.text(), "1");
}

#[tokio::test]
async fn empty_sessions_are_not_stored_and_unknown_ids_are_not_adopted() {
    let (store, _running, a) = counter_with_memory_store().await;
    let peek = get(a, "/peek").await;
    assert_eq!(peek.text(), "None");
    assert!(peek.header("set-cookie").is_none());
    assert!(store.is_empty());

    let forged = "simples.sid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r1 = send(a, req("GET", "/count").header("cookie", forged)).await;
    assert_eq!(r1.text(), "1");
    let new_cookie = session_cookie(&r1).unwrap();
    assert_ne!(new_cookie, forged, "a fresh id replaces an unknown one");
    let garbage = send(a, req("GET", "/count").header("cookie", "simples.sid=../../etc")).await;
    assert_eq!(garbage.text(), "1");
}

#[tokio::test]
async fn sessions_expire() {
    let config = SessionConfig::with_ttl(Duration::from_millis(1000));
    let r = start(counter_server(config)).await;
    let a = r.local_addr();
    let cookie = session_cookie(&get(a, "/count").await).unwrap();
    // Each use slides the expiry.
    for expected in ["2", "3"] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(send(a, req("GET", "/count").header("cookie", &cookie)).await.text(), expected);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(send(a, req("GET", "/peek").header("cookie", &cookie)).await.text(), "None");
}

#[tokio::test]
async fn destroy_and_regenerate() {
    let (store, _running, a) = counter_with_memory_store().await;
    let cookie = session_cookie(&get(a, "/count").await).unwrap();
    let login = send(a, req("GET", "/login").header("cookie", &cookie)).await;
    let old_id = login.text();
    let new_cookie = session_cookie(&login).unwrap();
    assert_ne!(new_cookie, cookie);
    assert!(store.load(&old_id).await.unwrap().is_none(), "the old id is gone");
    assert_eq!(send(a, req("GET", "/count").header("cookie", &new_cookie)).await.text(), "2", "data kept");
    assert_eq!(send(a, req("GET", "/peek").header("cookie", &cookie)).await.text(), "None");

    let logout = send(a, req("GET", "/logout").header("cookie", &new_cookie)).await;
    let removal = logout.header("set-cookie").unwrap();
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(store.is_empty());
    assert_eq!(send(a, req("GET", "/peek").header("cookie", &new_cookie)).await.text(), "None");
}

#[tokio::test]
async fn memory_store_sweeps_expired_sessions() {
    let store = MemoryStore::with_sweep_interval(Duration::from_millis(50));
    let mut data = simples::SessionData::new();
    data.insert("k".into(), serde_json::json!(1));
    store.save("a", data.clone(), Duration::from_millis(30)).await.unwrap();
    store.save("b", data.clone(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.len(), 2);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(store.load("a").await.unwrap().is_none(), "expired sessions are never returned");
    assert_eq!(store.len(), 2, "not swept yet");
    store.save("c", data, Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.len(), 2, "the save swept the expired one");
    assert!(store.load("b").await.unwrap().is_some());
}

#[tokio::test]
async fn sessions_off_is_a_clear_500() {
    let mut s = server();
    s.get("/", |mut conn: Conn| async move {
        conn.session().await?;
        Ok::<_, simples::Error>(conn.send("?"))
    });
    let r = start(s).await;
    let reply = get(r.local_addr(), "/").await;
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("sessions are not enabled"));
}
