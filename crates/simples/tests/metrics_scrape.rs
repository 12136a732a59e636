//! The WebSocket hosts' metrics on a Prometheus scrape page, moving as
//! connections come, exchange, get refused and go (feature `prometheus`).
//! One test: the recorder is global to the process.

#![cfg(feature = "prometheus")]

mod common;

use std::time::Duration;

use common::ws::{connect, text};
use common::ws_extra::upgrade_req;
use simples::ws::{CloseCode, Message, WsOptions};

/// The value of the series `name` whose labels include all of `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let ok = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        ok.then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let reply = common::get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap_or("").starts_with("text/plain; version=0.0.4"));
    reply.text()
}

/// Scrapes until `name{labels}` reads `want` (the driver updates some
/// series just after the client sees the effect).
async fn expect(addr: std::net::SocketAddr, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let mut page = String::new();
    for _ in 0..100 {
        page = scrape(addr).await;
        if value(&page, name, labels) == Some(want) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name}{labels:?} is {:?}, expected {want}; the page:\n{page}", value(&page, name, labels));
}

#[tokio::test]
async fn scrape_shows_the_hosts_counters_moving() {
    let prometheus = simples::prometheus::install().expect("the recorder installs");
    assert!(simples::prometheus::install().is_err(), "a second recorder is refused");
    let mut server = common::server();
    server.serve_metrics("/metrics", prometheus);
    let host = server.ws("/m", WsOptions::default(), |_| async {});
    host.on_message(|conn, message| {
        let _ = conn.send(message);
        async {}
    });
    let running = common::start(server).await;
    let addr = running.local_addr();
    let path = [("path", "/m")];

    let mut ws = connect(addr, "/m").await;
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        assert_eq!(text(&mut ws).await, format!("hello {i}"));
    }
    assert_eq!(host.broadcast(Message::text("to all")), 1);
    assert_eq!(text(&mut ws).await, "to all");
    let refused = common::send(addr, upgrade_req("/m").header("origin", "http://evil.example")).await;
    assert_eq!(refused.status, 403);

    let page = expect(addr, "simples_ws_connections", &path, 1.0).await;
    assert_eq!(value(&page, "simples_ws_accepted_total", &path), Some(1.0));
    assert_eq!(value(&page, "simples_ws_refused_total", &[("path", "/m"), ("status", "403")]), Some(1.0));
    assert_eq!(value(&page, "simples_ws_messages_in_total", &path), Some(3.0));
    assert_eq!(value(&page, "simples_ws_bytes_in_total", &path), Some(21.0));
    assert_eq!(value(&page, "simples_ws_messages_out_total", &path), Some(4.0), "3 echoes and 1 broadcast delivery");
    assert_eq!(value(&page, "simples_ws_broadcasts_total", &path), Some(1.0));
    assert_eq!(value(&page, "simples_ws_handshake_seconds_count", &path), Some(1.0));

    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    while ws.recv().await.is_ok() {}
    let page = expect(addr, "simples_ws_closed_total", &[("path", "/m"), ("code", "1000")], 1.0).await;
    assert_eq!(value(&page, "simples_ws_connections", &path), Some(0.0));

    // A second client: the counters move on.
    let mut again = connect(addr, "/m").await;
    again.send(Message::text("more")).await.unwrap();
    assert_eq!(text(&mut again).await, "more");
    let page = expect(addr, "simples_ws_messages_in_total", &path, 4.0).await;
    assert_eq!(value(&page, "simples_ws_accepted_total", &path), Some(2.0));
    assert_eq!(value(&page, "simples_ws_messages_out_total", &path), Some(5.0));
    drop(again);
    running.stop().await;
}
