//! The framework as a `tower::Service`, without a socket: a request in, a
//! response out (`tower::ServiceExt::oneshot`), as axum users test.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use simples::{ClientInfo, Server, SessionConfig};
use tower::ServiceExt as _;

mod common;

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).header("host", "localhost").body(Full::default()).unwrap()
}

async fn text(res: http::Response<simples::Body>) -> (StatusCode, String) {
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("utf-8"))
}

fn app() -> Server {
    let mut server = common::named_app("oneshot");
    server.get("/files/*", |conn| async move {
        let rest = conn.param("*").unwrap_or("").to_string();
        conn.send(format!("file {rest}"))
    });
    server.post("/echo", |mut conn| async move {
        let body = conn.text().await?;
        Ok::<_, simples::Error>(conn.send(body))
    });
    server.error(404, |conn| async move {
        let path = conn.path().to_string();
        conn.send(format!("custom 404 for {path}"))
    });
    server
}

#[tokio::test]
async fn routes_and_params() {
    let service = app().service();
    assert_eq!(text(service.clone().oneshot(get("/")).await.unwrap()).await, (StatusCode::OK, "oneshot home".into()));
    assert_eq!(text(service.clone().oneshot(get("/users/42")).await.unwrap()).await.1, "oneshot user 42");
    assert_eq!(text(service.clone().oneshot(get("/users/a%20b")).await.unwrap()).await.1, "oneshot user a b");
    assert_eq!(text(service.clone().oneshot(get("/files/a/b.txt")).await.unwrap()).await.1, "file a/b.txt");
    // A body of any type (here `Full<Bytes>`) is read through the Conn.
    let post = Request::post("/echo").body(Full::new(Bytes::from_static(b"ping"))).unwrap();
    assert_eq!(text(service.clone().oneshot(post).await.unwrap()).await, (StatusCode::OK, "ping".into()));
    // 405 with Allow, as on a started server.
    let res = service.oneshot(Request::delete("/").body(Full::<Bytes>::default()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn the_404_error_route_renders_unknown_paths() {
    let res = app().service().oneshot(get("/nowhere")).await.unwrap();
    assert_eq!(text(res).await, (StatusCode::NOT_FOUND, "custom 404 for /nowhere".into()));
}

#[tokio::test]
async fn middlewares_run_in_order_around_the_handler() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::new("unused");
    for name in ["first", "second"] {
        let order = order.clone();
        server.middleware(move |conn, next: simples::Next| {
            let order = order.clone();
            async move {
                order.lock().unwrap().push(format!("{name} in"));
                let mut res = next.run(conn).await;
                order.lock().unwrap().push(format!("{name} out"));
                res.headers_mut().append("x-seen-by", name.parse().unwrap());
                res
            }
        });
    }
    let seen = order.clone();
    server.get("/", move |conn| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push("handler".into());
            conn.send("ok")
        }
    });
    let res = server.service().oneshot(get("/")).await.unwrap();
    let seen_by: Vec<_> = res.headers().get_all("x-seen-by").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(seen_by, ["second", "first"], "the inner middleware sees the response first");
    assert_eq!(*order.lock().unwrap(), ["first in", "second in", "handler", "second out", "first out"]);
}

#[tokio::test]
async fn a_session_cookie_round_trips() {
    let mut server = Server::new("unused");
    server.options_mut().session = Some(SessionConfig::default());
    server.get("/count", |mut conn| async move {
        let session = conn.session().await?;
        let n: u32 = session.get("n")?.unwrap_or(0) + 1;
        session.set("n", &n)?;
        Ok::<_, simples::Error>(conn.send(n.to_string()))
    });
    let service = server.service();
    let first = service.clone().oneshot(get("/count")).await.unwrap();
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("simples.sid=") && cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(text(first).await.1, "1");
    let pair = cookie.split(';').next().unwrap().to_string();
    let again = Request::get("/count").header("cookie", &pair).body(Full::<Bytes>::default()).unwrap();
    let second = service.oneshot(again).await.unwrap();
    assert!(second.headers().get("set-cookie").is_none(), "the cookie is set once");
    assert_eq!(text(second).await.1, "2");
}

#[tokio::test]
async fn virtual_hosts_and_client_info() {
    let mut server = Server::new("unused");
    server.get("/", |conn| async move { conn.send("main") });
    server.host("api.example.com").get("/", |conn| async move {
        let (peer, secure) = (conn.peer_addr(), conn.is_secure());
        conn.send(format!("api from {peer} secure={secure}"))
    });
    let service = server.service();
    let mut req = Request::get("/").header("host", "API.example.com:8080").body(Full::<Bytes>::default()).unwrap();
    req.extensions_mut().insert(ClientInfo { addr: "10.0.0.7:5000".parse().unwrap(), secure: true });
    assert_eq!(text(service.clone().oneshot(req).await.unwrap()).await.1, "api from 10.0.0.7:5000 secure=true");
    // Without ClientInfo: no address, secure from the URI's scheme.
    let req = Request::get("https://api.example.com/").body(Full::<Bytes>::default()).unwrap();
    assert_eq!(text(service.clone().oneshot(req).await.unwrap()).await.1, "api from 0.0.0.0:0 secure=true");
    assert_eq!(text(service.oneshot(get("/")).await.unwrap()).await.1, "main");
}

#[tokio::test]
async fn cors_compression_and_head_apply() {
    let mut server = Server::new("unused");
    server.options_mut().compression = true;
    server.options_mut().cors = Some(simples::Cors::origins(["*"]));
    let long = "simples ".repeat(200);
    server.get("/big", move |conn| {
        let long = long.clone();
        async move { conn.send(long) }
    });
    let service = server.service();
    let req = Request::get("/big")
        .header("accept-encoding", "gzip")
        .header("origin", "https://elsewhere.example")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = service.clone().oneshot(req).await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let head = Request::head("/big").body(Full::<Bytes>::default()).unwrap();
    let res = service.oneshot(head).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.into_body().collect().await.unwrap().to_bytes().is_empty());
}
