//! The access log: one line per response through `tracing`
//! (target `simples::access`), in the configured format.

mod common;

use common::shared::Capture;
use common::*;
use simples::{AccessLog, Conn};

// A current-thread runtime, so the thread-local subscriber sees the
// server's tasks.
#[tokio::test(flavor = "current_thread")]
async fn lines_follow_the_format() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut s = server();
    s.options_mut().log = Some(AccessLog::new("{ip} {method} {path} {status} {bytes} {host} ua={user_agent} ref={referer} {ms}ms {unknown}"));
    s.get("/hello", |conn: Conn| async move { conn.send("hello") });
    let r = start(s).await;
    let a = r.local_addr();
    get(a, "/hello?x=1").await;
    send(a, req("POST", "/nope").header("user-agent", "curl/8")).await;

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("simples::access")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("127.0.0.1 GET /hello?x=1 200 5 localhost ua=- ref=- "), "{}", lines[0]);
    assert!(lines[0].contains("ms {unknown}"), "unknown placeholders are kept: {}", lines[0]);
    assert!(lines[1].contains("127.0.0.1 POST /nope 404 "), "{}", lines[1]);
    assert!(lines[1].contains("ua=curl/8"), "{}", lines[1]);
}

#[test]
fn default_format_is_documented() {
    assert!(simples::DEFAULT_LOG_FORMAT.contains("{status}"));
    let _ = AccessLog::default();
}
