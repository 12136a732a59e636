//! Routing: every method, fixed paths, parameters, wildcards, priorities,
//! HEAD from GET, 404, 405 with Allow, automatic OPTIONS.

mod common;

use common::*;
use simples::{Conn, Method};

async fn echo(conn: Conn) -> simples::Response {
    let text = format!("{} {}", conn.method(), conn.path());
    conn.send(text)
}

#[tokio::test]
async fn every_method_and_all() {
    let mut s = server();
    s.get("/r", echo).post("/r", echo).put("/r", echo).patch("/r", echo).delete("/r", echo);
    s.options("/r", echo);
    s.head("/h", |conn: Conn| async move {
        let mut conn = conn;
        conn.set_header("x-head", "explicit");
        conn.end()
    });
    s.all("/any", echo);
    s.route(Some(Method::from_bytes(b"PURGE").unwrap()), "/r", echo);
    let r = start(s).await;
    let a = r.local_addr();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"] {
        let reply = send(a, req(m, "/r")).await;
        assert_eq!(reply.status, 200, "{m}");
        assert_eq!(reply.text(), format!("{m} /r"));
    }
    for m in ["GET", "POST", "DELETE", "BREW"] {
        let reply = send(a, req(m, "/any")).await;
        assert_eq!(reply.text(), format!("{m} /any"));
    }
    let head = send(a, req("HEAD", "/h")).await;
    assert_eq!(head.header("x-head"), Some("explicit"));
}

#[tokio::test]
async fn params_and_wildcards() {
    let mut s = server();
    s.get("/users/:id", |conn: Conn| async move {
        let id = conn.param("id").unwrap().to_string();
        conn.send(format!("user {id}"))
    });
    s.get("/users/new", |conn| async move { conn.send("new user form") });
    s.get("/a/:x/b/:y", |conn: Conn| async move {
        let t = format!("{}+{}", conn.param("x").unwrap(), conn.param("y").unwrap());
        conn.send(t)
    });
    s.get("/files/*", |conn: Conn| async move {
        let t = format!("tail={}", conn.param("*").unwrap());
        conn.send(t)
    });
    s.get("/caf%C3%A9", |conn: Conn| async move { conn.send("encoded fixed") });
    let r = start(s).await;
    let a = r.local_addr();
    assert_eq!(get(a, "/users/42").await.text(), "user 42");
    assert_eq!(get(a, "/users/new").await.text(), "new user form", "fixed paths win");
    assert_eq!(get(a, "/users/J%C3%BCrgen").await.text(), "user Jürgen", "params are decoded");
    assert_eq!(get(a, "/a/1/b/2").await.text(), "1+2");
    assert_eq!(get(a, "/files/x/y/z.txt").await.text(), "tail=x/y/z.txt");
    assert_eq!(get(a, "/files/").await.text(), "tail=");
    assert_eq!(get(a, "/users/42/more").await.status, 404);
    assert_eq!(get(a, "/users").await.status, 404);
    assert_eq!(get(a, "/users/").await.status, 200, "an empty segment is a parameter value");
    assert_eq!(get(a, "/a/1/b").await.status, 404);
}

#[tokio::test]
async fn query_is_not_part_of_the_path() {
    let mut s = server();
    s.get("/search", |conn: Conn| async move {
        let q = conn.query("q").unwrap_or("").to_string();
        conn.send(q)
    });
    let r = start(s).await;
    assert_eq!(get(r.local_addr(), "/search?q=rust+web&x=1").await.text(), "rust web");
}

#[tokio::test]
async fn head_is_answered_from_get_without_body() {
    let mut s = server();
    s.get("/page", |conn: Conn| async move { conn.send("twelve bytes") });
    let r = start(s).await;
    let reply = send(r.local_addr(), req("HEAD", "/page")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("content-length"), Some("12"));
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn not_found_method_not_allowed_and_options() {
    let mut s = server();
    s.get("/thing", echo).post("/thing", echo);
    s.delete("/items/:id", echo);
    let r = start(s).await;
    let a = r.local_addr();

    let nf = get(a, "/nothing").await;
    assert_eq!(nf.status, 404);
    assert!(nf.text().starts_with("404 Not Found"), "{}", nf.text());

    let na = send(a, req("PUT", "/thing")).await;
    assert_eq!(na.status, 405);
    assert_eq!(na.header("allow"), Some("GET, POST, HEAD"));
    assert!(na.text().contains("PUT is not allowed"), "{}", na.text());

    let na = send(a, req("GET", "/items/3")).await;
    assert_eq!(na.status, 405);
    assert_eq!(na.header("allow"), Some("DELETE"));

    let opt = send(a, req("OPTIONS", "/thing")).await;
    assert_eq!(opt.status, 204);
    assert_eq!(opt.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
    assert_eq!(send(a, req("OPTIONS", "/nothing")).await.status, 404);
}
