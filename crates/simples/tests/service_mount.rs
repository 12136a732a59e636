//! The framework's `tower::Service` over real sockets: mounted in an axum
//! Router next to an axum route, wrapped in tower layers, and under plain
//! hyper with upgrades (a WebSocket host through the service).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use simples::ws::{Message, WsOptions};
use simples::Server;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::ServiceExt as _;

mod common;
use common::{req, send_body};

async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let reply = send_body(addr, req("GET", path), "").await;
    (reply.status, reply.text())
}

fn simples_app() -> Server {
    let mut server = common::named_app("simples");
    server.get("/slow", |conn| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        conn.send("too late")
    });
    server.error(404, |conn| async move { conn.send("simples 404") });
    server
}

/// Serves `app` with axum on an ephemeral port.
async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn mounted_in_axum_next_to_an_axum_route() {
    let app = axum::Router::new()
        .route("/axum", get(|| async { "from axum" }))
        .nest_service("/app", simples_app().service())
        .fallback_service(simples_app().service());
    let addr = serve_axum(app).await;
    assert_eq!(get_text(addr, "/axum").await, (200, "from axum".into()));
    assert_eq!(get_text(addr, "/").await, (200, "simples home".into()));
    assert_eq!(get_text(addr, "/users/7").await, (200, "simples user 7".into()));
    assert_eq!(get_text(addr, "/app/users/8").await, (200, "simples user 8".into()), "nested: the prefix is stripped");
    assert_eq!(get_text(addr, "/nowhere").await, (404, "simples 404".into()));
}

#[tokio::test]
async fn tower_layers_wrap_the_service() {
    // A timeout layer (its error turned into a 504 by a HandleError
    // layer, as axum requires infallible services) and tower-http's trace
    // layer around the framework.
    let layered = ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::error_handling::HandleErrorLayer::new(|_: tower::BoxError| async {
            (http::StatusCode::GATEWAY_TIMEOUT, "timed out")
        }))
        .timeout(Duration::from_millis(200))
        .service(simples_app().service());
    let app = axum::Router::new().fallback_service(layered);
    let addr = serve_axum(app).await;
    assert_eq!(get_text(addr, "/users/1").await, (200, "simples user 1".into()));
    assert_eq!(get_text(addr, "/slow").await, (504, "timed out".into()));
    // The same layers without a socket.
    let svc = ServiceBuilder::new().timeout(Duration::from_millis(200)).service(simples_app().service());
    let request = http::Request::get("/slow").body(http_body_util::Full::<bytes::Bytes>::default()).unwrap();
    let err = svc.oneshot(request).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>());
}

#[tokio::test]
async fn a_websocket_host_through_the_service_under_hyper() {
    let mut server = Server::new("unused");
    server.get("/", |conn| async move { conn.send("page") });
    let echo = server.ws("/echo", WsOptions::default(), |_conn| async move {});
    echo.on_message(|conn, msg| async move {
        let _ = conn.send(msg);
    });
    let service = server.service();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = service.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let svc = svc.clone();
            tokio::spawn(async move {
                let hyper_svc = hyper::service::service_fn(move |req| {
                    let svc = svc.clone();
                    async move { Ok::<_, Infallible>(svc.oneshot(req).await.unwrap_or_else(|e| match e {})) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), hyper_svc).with_upgrades().await;
            });
        }
    });
    assert_eq!(get_text(addr, "/").await, (200, "page".into()));
    let (mut ws, _) = simples_ws::tokio::connect(&format!("ws://{addr}/echo")).await.expect("handshake");
    ws.send(Message::text("hi")).await.unwrap();
    match ws.recv().await.unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "hi"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(echo.len(), 1);
    // The service's shutdown closes WebSocket connections with 1001.
    service.shutdown(Duration::from_secs(2)).await;
    match ws.recv().await {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, simples::ws::CloseCode::GOING_AWAY),
        other => panic!("expected a close 1001, got {other:?}"),
    }
}

#[tokio::test]
async fn a_websocket_host_through_axum() {
    let mut server = Server::new("unused");
    let echo = server.ws("/echo", WsOptions::default(), |_conn| async move {});
    echo.on_message(|conn, msg| async move {
        let _ = conn.send(msg);
    });
    let app = axum::Router::new().route("/axum", get(|| async { "from axum" })).fallback_service(server.service());
    let addr = serve_axum(app).await;
    let (mut ws, _) = simples_ws::tokio::connect(&format!("ws://{addr}/echo")).await.expect("handshake");
    ws.send(Message::text("through axum")).await.unwrap();
    match ws.recv().await.unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "through axum"),
        other => panic!("unexpected {other:?}"),
    }
}
