//! Virtual hosts: main host, named hosts, wildcards, port and case ignored,
//! each host with its own routes and options.

mod common;

use common::*;
use simples::Conn;

fn on(host: &str) -> http::request::Builder {
    http::Request::builder().method("GET").uri("/").header("host", host)
}

#[tokio::test]
async fn hosts_are_chosen_by_the_host_header() {
    let mut s = server();
    s.get("/", |conn: Conn| async move { conn.send("main") });
    s.host("api.example.com").get("/", |conn: Conn| async move { conn.send("api") });
    s.host("*.example.com").get("/", |conn: Conn| async move {
        let h = conn.host().to_string();
        conn.send(format!("wildcard {h}"))
    });
    s.host("*.deep.example.com").get("/", |conn: Conn| async move { conn.send("deep wildcard") });
    s.host("Example.COM").get("/", |conn: Conn| async move { conn.send("apex") });
    let r = start(s).await;
    let a = r.local_addr();
    for (host, expected) in [
        ("localhost", "main"),
        ("api.example.com", "api"),
        ("API.Example.Com:8080", "api"),
        ("api.example.com.", "api"),
        ("www.example.com", "wildcard www.example.com"),
        ("a.b.example.com:1", "wildcard a.b.example.com"),
        ("x.deep.example.com", "deep wildcard"),
        ("example.com", "apex"),
        ("other.org", "main"),
        ("127.0.0.1:9", "main"),
        ("[::1]:80", "main"),
    ] {
        assert_eq!(send(a, on(host)).await.text(), expected, "{host}");
    }
}

#[tokio::test]
async fn each_host_has_its_own_routes_and_options() {
    let mut s = server();
    s.get("/only-main", |conn: Conn| async move { conn.send("main route") });
    s.error(404, |conn: Conn| async move { conn.send("main 404") });
    let api = s.host("api.test");
    api.options_mut().body_limit = 4;
    api.post("/echo", |mut conn: Conn| async move {
        let body = conn.text().await?;
        Ok::<_, simples::Error>(conn.send(body))
    });
    api.error(404, |conn: Conn| async move { conn.send("api 404") });
    s.post("/echo", |mut conn: Conn| async move {
        let body = conn.text().await?;
        Ok::<_, simples::Error>(conn.send(body))
    });
    let r = start(s).await;
    let a = r.local_addr();
    let main = |p: &str| http::Request::builder().uri(p).header("host", "localhost");
    let api = |p: &str| http::Request::builder().uri(p).header("host", "api.test");
    assert_eq!(send(a, main("/only-main")).await.text(), "main route");
    assert_eq!(send(a, api("/only-main")).await.text(), "api 404");
    assert_eq!(send(a, main("/nothing")).await.text(), "main 404");
    let long = "a body longer than four bytes";
    assert_eq!(send_body(a, main("/echo").method("POST"), long).await.text(), long);
    assert_eq!(send_body(a, api("/echo").method("POST"), long).await.status, 413);
    assert_eq!(send_body(a, api("/echo").method("POST"), "ok").await.text(), "ok");
}
