//! CORS: origin lists and `*`, preflights (204 / 403), credentials.

mod common;

use std::time::Duration;

use common::*;
use simples::{Conn, Cors, Method};

fn app(cors: Cors) -> simples::Server {
    let mut s = server();
    s.options_mut().cors = Some(cors);
    s.get("/data", |conn: Conn| async move { conn.send("data") });
    s.put("/data", |conn: Conn| async move { conn.send("put") });
    s
}

#[tokio::test]
async fn origin_list() {
    let r = start(app(Cors::origins(["https://app.example.com", "http://localhost:3000"]))).await;
    let a = r.local_addr();
    let ok = send(a, req("GET", "/data").header("origin", "https://app.example.com")).await;
    assert_eq!(ok.text(), "data");
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert!(ok.header_all("vary").contains(&"Origin".to_string()));
    assert!(ok.header("access-control-allow-credentials").is_none());

    let other = send(a, req("GET", "/data").header("origin", "https://evil.example")).await;
    assert_eq!(other.status, 200, "the request is served; the browser blocks the answer");
    assert!(other.header("access-control-allow-origin").is_none());

    let none = get(a, "/data").await;
    assert!(none.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn preflights() {
    let cors = Cors {
        max_age: Some(Duration::from_secs(600)),
        methods: vec![Method::GET, Method::PUT],
        ..Cors::origins(["http://localhost:3000"])
    };
    let r = start(app(cors)).await;
    let a = r.local_addr();
    let pre = |origin: &str, method: &str| {
        req("OPTIONS", "/data")
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type, x-token")
    };
    let ok = send(a, pre("http://localhost:3000", "PUT")).await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some("http://localhost:3000"));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(ok.header("access-control-allow-headers"), Some("content-type, x-token"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));

    let bad_origin = send(a, pre("https://evil.example", "PUT")).await;
    assert_eq!(bad_origin.status, 403);
    assert!(bad_origin.text().contains("origin not allowed"));
    assert!(bad_origin.header("access-control-allow-origin").is_none());
    let bad_method = send(a, pre("http://localhost:3000", "DELETE")).await;
    assert_eq!(bad_method.status, 403);

    // A plain OPTIONS (not a preflight) is routed as usual.
    let plain = send(a, req("OPTIONS", "/data")).await;
    assert_eq!(plain.status, 204);
    assert_eq!(plain.header("allow"), Some("GET, PUT, HEAD, OPTIONS"));
}

#[tokio::test]
async fn any_origin_and_credentials() {
    let r = start(app(Cors::origins(["*"]))).await;
    let any = send(r.local_addr(), req("GET", "/data").header("origin", "https://whoever.example")).await;
    assert_eq!(any.header("access-control-allow-origin"), Some("*"));

    let r = start(app(Cors { credentials: true, headers: vec!["x-token".into()], ..Cors::origins(["*"]) })).await;
    let cred = send(r.local_addr(), req("GET", "/data").header("origin", "https://whoever.example")).await;
    assert_eq!(cred.header("access-control-allow-origin"), Some("https://whoever.example"), "echoed with credentials");
    assert_eq!(cred.header("access-control-allow-credentials"), Some("true"));
    let pre = send(
        r.local_addr(),
        req("OPTIONS", "/data").header("origin", "https://x.example").header("access-control-request-method", "GET"),
    )
    .await;
    assert_eq!(pre.header("access-control-allow-headers"), Some("x-token"));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
}
