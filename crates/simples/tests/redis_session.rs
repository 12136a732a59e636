//! RedisSessionStore against a real redis-server: save, load, destroy,
//! expiry by Redis, corrupt values, Redis down, and one session shared by
//! two servers (two "nodes") through the cookie.

#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis::{eventually, RedisServer};
use common::*;
use simples::{Conn, ErrorKind, RedisSessionStore, SessionConfig, SessionData, SessionStore};

fn data(n: u32) -> SessionData {
    let mut d = SessionData::new();
    d.insert("n".into(), serde_json::json!(n));
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_load_destroy_expire_and_corrupt_values() {
    let Some(mut redis) = RedisServer::start() else { return };
    let store = RedisSessionStore::connect(&redis.url(), "app").await.expect("connects");

    assert!(store.load("nobody").await.unwrap().is_none());
    store.save("s1", data(1), Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.load("s1").await.unwrap(), Some(data(1)));
    let pttl: i64 = redis.cli(&["PTTL", "app:session:s1"]).parse().unwrap();
    assert!(pttl > 55_000 && pttl <= 60_000, "Redis holds the expiry: {pttl}");
    store.save("s1", data(2), Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.load("s1").await.unwrap(), Some(data(2)));
    store.destroy("s1").await.unwrap();
    assert!(store.load("s1").await.unwrap().is_none());
    store.destroy("s1").await.unwrap();

    // Expiry is Redis's: the key goes by itself.
    store.save("short", data(3), Duration::from_millis(200)).await.unwrap();
    assert_eq!(store.load("short").await.unwrap(), Some(data(3)));
    eventually(Duration::from_secs(3), "the key to expire", || redis.cli(&["EXISTS", "app:session:short"]) == "0").await;
    assert!(store.load("short").await.unwrap().is_none());

    // What is not a JSON object is an error, not a panic.
    for bad in ["not json", "[1,2]", "\u{1}"] {
        redis.cli(&["SET", "app:session:bad", bad]);
        let e = store.load("bad").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Session);
        assert!(e.reason().contains("not a JSON object"), "{}", e.reason());
    }

    // Redis down: a clear error at once, no hang; back when it is.
    redis.kill();
    let e = tokio::time::timeout(Duration::from_secs(3), store.load("s1")).await.expect("fails fast").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Session);
    redis.restart();
    let mut back = false;
    for _ in 0..200 {
        if store.save("s2", data(4), Duration::from_secs(60)).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(back, "the store reconnects by itself");
    assert_eq!(store.load("s2").await.unwrap(), Some(data(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_clear_errors() {
    let e = RedisSessionStore::connect("redis://nowhere", "app").await.unwrap_err();
    assert!(e.reason().contains("bad Redis URL"), "{}", e.reason());
    let e = RedisSessionStore::connect("redis://127.0.0.1:1", "").await.unwrap_err();
    assert!(e.reason().contains("prefix"), "{}", e.reason());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = RedisSessionStore::connect(&format!("redis://127.0.0.1:{port}"), "app").await.unwrap_err();
    assert!(e.reason().contains("cannot connect"), "{}", e.reason());
}

fn counter_server(store: Arc<RedisSessionStore>) -> simples::Server {
    let mut s = server();
    s.options_mut().session = Some(SessionConfig { store, ..SessionConfig::default() });
    s.get("/count", |mut conn: Conn| async move {
        let session = conn.session().await?;
        let n: u32 = session.get("n")?.unwrap_or(0) + 1;
        session.set("n", &n)?;
        Ok::<_, simples::Error>(conn.send(n.to_string()))
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_sessions_through_redis() {
    let Some(redis) = RedisServer::start() else { return };
    let node1 = start(counter_server(Arc::new(RedisSessionStore::connect(&redis.url(), "app").await.unwrap()))).await;
    let node2 = start(counter_server(Arc::new(RedisSessionStore::connect(&redis.url(), "app").await.unwrap()))).await;
    assert_ne!(node1.local_addr(), node2.local_addr());

    let first = get(node1.local_addr(), "/count").await;
    assert_eq!(first.text(), "1");
    let cookie = first
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("simples.sid="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .expect("a session cookie");
    let id = cookie.trim_start_matches("simples.sid=");
    assert_eq!(redis.cli(&["EXISTS", &format!("app:session:{id}")]), "1", "the session is in Redis");

    // The other node reads it, and the first sees the other's write.
    assert_eq!(send(node2.local_addr(), req("GET", "/count").header("cookie", &cookie)).await.text(), "2");
    assert_eq!(send(node1.local_addr(), req("GET", "/count").header("cookie", &cookie)).await.text(), "3");
}
