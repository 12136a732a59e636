//! The framework's CORS and response compression against tower-http's
//! layers, on the same requests through `Server::service` (no socket):
//! what each answers, and how long a request takes. The figures are
//! quoted in `src/compress.rs` and `src/cors.rs`. Run with
//! `cargo test -p simples --all-features --test tower_http_compare -- --ignored --nocapture`
//! (optimised: `CARGO_PROFILE_TEST_OPT_LEVEL=3`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use simples::{Cors, Server};
use tower::{Service, ServiceBuilder, ServiceExt as _};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

fn page() -> String {
    let mut s = String::from("<!doctype html><html><body><ul>");
    for i in 0..1500 {
        s.push_str(&format!("<li class=\"item\">item number {i} of the list</li>"));
    }
    s.push_str("</ul></body></html>");
    s
}

fn app(compression: bool, cors: bool) -> Server {
    let mut server = Server::new("unused");
    server.options_mut().compression = compression;
    if cors {
        server.options_mut().cors = Some(Cors::origins(["https://app.example"]));
    }
    let page = page();
    server.get("/page", move |conn| {
        let page = page.clone();
        async move { conn.html(page) }
    });
    server.get("/small", |conn| async move { conn.send("hello") });
    server
}

fn request(path: &str, encoding: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("accept-encoding", encoding)
        .header("origin", "https://app.example")
        .body(Full::default())
        .unwrap()
}

async fn run<S>(mut svc: S, path: &str, encoding: &str) -> (http::HeaderMap, usize)
where
    S: Service<Request<Full<Bytes>>>,
    S::Response: Into<http::Response<simples::Body>>,
    S::Error: std::fmt::Debug,
{
    let res: http::Response<simples::Body> = svc.ready().await.unwrap().call(request(path, encoding)).await.unwrap().into();
    let (parts, body) = res.into_parts();
    (parts.headers, body.collect().await.unwrap().to_bytes().len())
}

async fn time<F, Fut>(rounds: u32, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future,
{
    let t = Instant::now();
    for _ in 0..rounds {
        f().await;
    }
    t.elapsed() / rounds
}

/// Ours and tower-http's layers answer the same (content coding, body
/// size, CORS origin); the timings are printed (a measurement, not a
/// check: `SIMPLES_MEASURE=1 cargo test --release -p simples --test
/// tower_http_compare -- --nocapture` for the full rounds; without it, a
/// few rounds only).
#[tokio::test]
async fn compression_and_cors_against_tower_http() {
    let scale = if std::env::var_os("SIMPLES_MEASURE").is_some() { 1 } else { 100 };
    let ours = app(true, true).service();
    let layered = ServiceBuilder::new()
        .layer(CorsLayer::new().allow_origin(AllowOrigin::list(["https://app.example".parse().unwrap()])).allow_methods([Method::GET]))
        .layer(CompressionLayer::new())
        .service(app(false, false).service());
    let theirs = tower::ServiceExt::<Request<Full<Bytes>>>::map_response(layered, |r| {
        r.map(|b| simples::Body::stream(http_body_util::BodyDataStream::new(b)))
    });
    let plain = app(false, false).service();
    for (path, encoding) in [("/page", "gzip"), ("/page", "br"), ("/page", "deflate"), ("/small", "gzip"), ("/page", "identity")] {
        let (h1, n1) = run(ours.clone(), path, encoding).await;
        let (h2, n2) = run(theirs.clone(), path, encoding).await;
        let (_, n0) = run(plain.clone(), path, encoding).await;
        let rounds = if path == "/page" && encoding != "identity" { 200 } else { 5000 } / scale;
        let t1 = time(rounds, || run(ours.clone(), path, encoding)).await;
        let t2 = time(rounds, || run(theirs.clone(), path, encoding)).await;
        let t0 = time(rounds, || run(plain.clone(), path, encoding)).await;
        println!(
            "{path:<6} {encoding:<8} plain {n0:>6} B {:>8.1} us | ours {:<7} {n1:>6} B {:>8.1} us | tower-http {:<7} {n2:>6} B {:>8.1} us",
            t0.as_secs_f64() * 1e6,
            h1.get("content-encoding").map_or("-", |v| v.to_str().unwrap()),
            t1.as_secs_f64() * 1e6,
            h2.get("content-encoding").map_or("-", |v| v.to_str().unwrap()),
            t2.as_secs_f64() * 1e6,
        );
        assert_eq!(h1.get("access-control-allow-origin"), h2.get("access-control-allow-origin"));
        assert!(h1.get("access-control-allow-origin").is_some(), "CORS answered");
        assert_eq!(h1.get("content-encoding"), h2.get("content-encoding"), "{path} {encoding}");
        assert_eq!(n1, n2, "{path} {encoding}: the same body size");
    }
}
