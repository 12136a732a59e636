//! Error routes: default pages with reasons, application overrides for 404,
//! 405, 500 and any status, handler errors, panics answered 500 while the
//! server keeps serving.

mod common;

use common::*;
use simples::{Conn, Error, StatusCode};

#[tokio::test]
async fn default_pages_carry_the_reason() {
    let mut s = server();
    s.get("/forbidden", |_conn: Conn| async move { Err::<simples::Response, _>(Error::new(403, "not yours")) });
    s.get("/teapot", |_conn: Conn| async move { StatusCode::IM_A_TEAPOT });
    let r = start(s).await;
    let a = r.local_addr();
    let f = get(a, "/forbidden").await;
    assert_eq!(f.status, 403);
    assert_eq!(f.text(), "403 Forbidden: not yours\n");
    assert_eq!(f.header("content-type"), Some("text/plain; charset=utf-8"));
    let t = get(a, "/teapot").await;
    assert_eq!(t.status, 418);
    assert_eq!(t.text(), "418 I'm a teapot\n");
}

#[tokio::test]
async fn error_routes_override_pages() {
    let mut s = server();
    s.get("/only-get", |conn: Conn| async move { conn.send("ok") });
    s.get("/forbidden", |_conn: Conn| async move { Err::<simples::Response, _>(Error::new(403, "not yours")) });
    s.get("/boom", |_conn: Conn| async move {
        if true {
            panic!("boom");
        }
        "unreachable"
    });
    s.error(404, |conn: Conn| async move {
        let path = conn.path().to_string();
        conn.html(format!("<h1>nothing at {path}</h1>"))
    });
    s.error(405, |conn: Conn| async move { conn.send("custom 405") });
    s.error(500, |conn: Conn| async move {
        let reason = conn.error().map(|e| e.reason().to_string()).unwrap_or_default();
        conn.send(format!("custom 500: {reason}"))
    });
    s.error(403, |conn: Conn| async move {
        let status = conn.status();
        conn.send(format!("custom {}", status.as_u16()))
    });
    let r = start(s).await;
    let a = r.local_addr();

    let nf = get(a, "/missing").await;
    assert_eq!((nf.status, nf.text().as_str()), (404, "<h1>nothing at /missing</h1>"));
    assert_eq!(nf.header("content-type"), Some("text/html; charset=utf-8"));

    let na = send(a, req("POST", "/only-get")).await;
    assert_eq!((na.status, na.text().as_str()), (405, "custom 405"));
    assert_eq!(na.header("allow"), Some("GET, HEAD"), "Allow survives a custom page");

    let p = get(a, "/boom").await;
    assert_eq!((p.status, p.text().as_str()), (500, "custom 500: the handler failed"));

    let f = get(a, "/forbidden").await;
    assert_eq!((f.status, f.text().as_str()), (403, "custom 403"));
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let mut s = server();
    s.get("/panic", |_conn: Conn| async move {
        let v: Vec<u8> = Vec::new();
        #[allow(clippy::out_of_bounds_indexing)]
        let x = v[3];
        x.to_string()
    });
    s.get("/ok", |conn: Conn| async move { conn.send("still here") });
    s.error(418, |_conn: Conn| async move {
        if true {
            panic!("the error route fails too");
        }
        "unreachable"
    });
    s.get("/teapot", |_conn: Conn| async move { StatusCode::IM_A_TEAPOT });
    let r = start(s).await;
    let a = r.local_addr();
    for _ in 0..3 {
        let p = get(a, "/panic").await;
        assert_eq!(p.status, 500);
        assert_eq!(p.text(), "500 Internal Server Error: the handler failed\n");
        assert_eq!(get(a, "/ok").await.text(), "still here");
    }
    // A panicking error route falls back to the default page.
    let t = get(a, "/teapot").await;
    assert_eq!(t.status, 500);
}

#[tokio::test]
async fn a_panicking_middleware_answers_500() {
    let mut s = server();
    s.middleware(|conn: Conn, next: simples::Next| async move {
        if conn.path() == "/mw-panic" {
            panic!("middleware failure");
        }
        next.run(conn).await
    });
    s.get("/mw-panic", |conn: Conn| async move { conn.send("never") });
    s.get("/ok", |conn: Conn| async move { conn.send("ok") });
    let r = start(s).await;
    let a = r.local_addr();
    assert_eq!(get(a, "/mw-panic").await.status, 500);
    assert_eq!(get(a, "/ok").await.text(), "ok");
}
