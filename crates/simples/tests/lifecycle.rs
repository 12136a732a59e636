//! Start, graceful stop (running requests finish, idle connections close,
//! a deadline for the rest), restart on the same port, hooks, wait.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use simples::Conn;
use tokio::net::TcpStream;

fn slow_server(delay: Duration) -> simples::Server {
    let mut s = server();
    s.get("/slow", move |conn: Conn| async move {
        tokio::time::sleep(delay).await;
        conn.send("finished")
    });
    s.get("/fast", |conn: Conn| async move { conn.send("fast") });
    s
}

#[tokio::test]
async fn stop_lets_running_requests_finish() {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let mut s = slow_server(Duration::from_millis(600));
    let (st, sp) = (starts.clone(), stops.clone());
    s.on_start(move |addrs| {
        assert_eq!(addrs.len(), 1);
        st.fetch_add(1, Ordering::SeqCst);
    });
    s.on_stop(move || {
        sp.fetch_add(1, Ordering::SeqCst);
    });
    let r = start(s).await;
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    let a = r.local_addr();

    let in_flight = tokio::spawn(async move { get(a, "/slow").await });
    // An idle keep-alive connection must not hold the stop up.
    let idle = TcpStream::connect(a).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(idle)).await.unwrap();
    let idle_task = tokio::spawn(conn);
    let req = http::Request::builder().uri("/fast").header("host", "x").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);

    tokio::time::sleep(Duration::from_millis(150)).await;
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move { r.wait().await })
    };
    let t = Instant::now();
    r.stop().await;
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300), "stop waited for the request: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "finished"));
    assert_eq!(stops.load(Ordering::SeqCst), 1);
    assert!(!r.is_running());
    tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("wait() returns").unwrap();
    // The idle connection was closed and the port no longer accepts.
    tokio::time::timeout(Duration::from_secs(2), idle_task).await.expect("idle connection closed").unwrap().ok();
    assert!(TcpStream::connect(a).await.is_err(), "not listening any more");
    r.stop().await; // a second stop does nothing
    assert_eq!(stops.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stop_has_a_deadline() {
    let mut s = slow_server(Duration::from_secs(30));
    s.server_options_mut().shutdown_timeout = Duration::from_millis(300);
    let r = start(s).await;
    let a = r.local_addr();
    let stuck = tokio::spawn(async move {
        let stream = TcpStream::connect(a).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder().uri("/slow").header("host", "x").body(Full::new(Bytes::new())).unwrap();
        sender.send_request(req).await.map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t = Instant::now();
    r.stop().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let outcome = tokio::time::timeout(Duration::from_secs(2), stuck).await.expect("client unblocked").unwrap();
    assert!(outcome.is_err(), "the stuck request's connection was closed: {outcome:?}");
}

#[tokio::test]
async fn restart_comes_back_on_the_same_port() {
    let starts = Arc::new(AtomicUsize::new(0));
    let mut s = slow_server(Duration::from_millis(10));
    s.mirror("127.0.0.1:0");
    let st = starts.clone();
    s.on_start(move |_| {
        st.fetch_add(1, Ordering::SeqCst);
    });
    let r = start(s).await;
    let before = r.addrs();
    assert_eq!(before.len(), 2);
    for &a in &before {
        assert_eq!(get(a, "/fast").await.text(), "fast");
    }
    r.restart().await.unwrap();
    assert_eq!(r.addrs(), before);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert!(r.is_running());
    for &a in &before {
        assert_eq!(get(a, "/slow").await.text(), "finished");
    }
    r.stop().await;
}

#[tokio::test]
async fn binding_a_busy_port_is_an_error() {
    let r = start(slow_server(Duration::ZERO)).await;
    let busy = simples::Server::new(r.local_addr());
    let err = busy.start().await.err().expect("address in use");
    assert_eq!(err.kind(), simples::ErrorKind::Server);
    assert!(err.to_string().contains("cannot listen"), "{err}");
}
