//! Middlewares: run in order around the handler, can inspect and modify the
//! request, pass data on, answer and stop, and modify the response.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use simples::{Conn, Next};

#[derive(Clone)]
struct User(String);

#[tokio::test]
async fn chain_order_data_answer_and_response_changes() {
    let trace = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut s = server();
    let t1 = trace.clone();
    s.middleware(move |conn: Conn, next: Next| {
        let t = t1.clone();
        async move {
            t.lock().unwrap().push(format!("first in {}", conn.path()));
            let mut res = next.run(conn).await;
            t.lock().unwrap().push("first out".into());
            res.headers_mut().insert("x-first", "1".parse().unwrap());
            res
        }
    });
    // Authentication: answers 401 itself, or passes the user on.
    s.middleware(|mut conn: Conn, next: Next| async move {
        match conn.header("authorization").map(str::to_string) {
            Some(token) if token.starts_with("Bearer ") => {
                conn.set_data(User(token[7..].to_string()));
                conn.headers_mut().insert("x-authenticated", "yes".parse().unwrap());
                next.run(conn).await
            }
            _ if conn.path() == "/public" => next.run(conn).await,
            _ => {
                let mut conn = conn;
                conn.set_status(401).set_header("www-authenticate", "Bearer");
                conn.send("login first")
            }
        }
    });
    let t3 = trace.clone();
    s.middleware(move |conn: Conn, next: Next| {
        let t = t3.clone();
        async move {
            t.lock().unwrap().push("third".into());
            next.run(conn).await
        }
    });
    let th = trace.clone();
    s.get("/me", move |conn: Conn| {
        let t = th.clone();
        async move {
            t.lock().unwrap().push("handler".into());
            let user = conn.data::<User>().map(|u| u.0.clone()).unwrap_or_default();
            let flag = conn.header("x-authenticated").unwrap_or("no").to_string();
            conn.send(format!("{user} {flag}"))
        }
    });
    s.get("/public", |conn: Conn| async move { conn.send("public") });
    let r = start(s).await;
    let a = r.local_addr();

    let me = send(a, req("GET", "/me").header("authorization", "Bearer ada")).await;
    assert_eq!(me.text(), "ada yes");
    assert_eq!(me.header("x-first"), Some("1"));
    assert_eq!(*trace.lock().unwrap(), ["first in /me", "third", "handler", "first out"]);

    trace.lock().unwrap().clear();
    let denied = get(a, "/me").await;
    assert_eq!((denied.status, denied.text().as_str()), (401, "login first"));
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert_eq!(denied.header("x-first"), Some("1"));
    assert_eq!(*trace.lock().unwrap(), ["first in /me", "first out"], "the chain stopped");

    assert_eq!(get(a, "/public").await.text(), "public");
}

#[tokio::test]
async fn middlewares_see_rendered_error_pages_and_unknown_paths() {
    let mut s = server();
    s.middleware(|conn: Conn, next: Next| async move {
        let mut res = next.run(conn).await;
        let status = res.status().as_u16().to_string();
        res.headers_mut().insert("x-seen-status", status.parse().unwrap());
        res
    });
    s.get("/", |conn: Conn| async move { conn.send("home") });
    let r = start(s).await;
    let a = r.local_addr();
    let nf = get(a, "/missing").await;
    assert_eq!(nf.header("x-seen-status"), Some("404"));
    assert!(nf.text().starts_with("404 Not Found"));
    assert_eq!(get(a, "/").await.header("x-seen-status"), Some("200"));
}
