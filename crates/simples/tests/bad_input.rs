//! Hostile and malformed input: bad request lines, oversized heads, too
//! many headers, bad Content-Length, slow heads; each is answered with a
//! 4xx (or the connection closed) and the server keeps serving.

mod common;

use std::time::Duration;

use common::*;
use simples::{Conn, ServerOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn status_of(reply: &str) -> u16 {
    reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn app() -> simples::Running {
    let options = ServerOptions { header_read_timeout: Duration::from_millis(500), ..ServerOptions::default() };
    let mut s = simples::Server::with_options("127.0.0.1:0", options);
    s.get("/", |conn: Conn| async move { conn.send("ok") });
    s.post("/echo", |mut conn: Conn| async move {
        let b = conn.bytes().await?;
        Ok::<_, simples::Error>(conn.send(b))
    });
    start(s).await
}

#[tokio::test]
async fn malformed_requests_get_4xx() {
    let r = app().await;
    let a = r.local_addr();
    let long_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(40_000));
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40_000));
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("garbage", b"\x00\x01\x02 nonsense\r\n\r\n".to_vec(), &[400]),
        ("bad request line", b"GET\r\n\r\n".to_vec(), &[400]),
        ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), &[400, 505]),
        ("bad header", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), &[400]),
        ("space in header name", b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".to_vec(), &[400]),
        ("oversized header", long_header.into_bytes(), &[431]),
        ("too many headers", many_headers.into_bytes(), &[431]),
        ("oversized uri", long_uri.into_bytes(), &[414, 431]),
        ("bad content-length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(), &[400]),
        (
            "conflicting lengths",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            &[400],
        ),
        (
            "bad chunk",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
            &[400],
        ),
    ];
    for (what, bytes, expected) in cases {
        let reply = raw(a, &bytes).await;
        let status = status_of(&reply);
        assert!(expected.contains(&status), "{what}: got {status}: {reply:?}");
        assert_eq!(get(a, "/").await.text(), "ok", "still serving after {what}");
    }
}

#[tokio::test]
async fn slow_heads_are_cut_off() {
    let r = app().await;
    let a = r.local_addr();
    let mut stream = tokio::net::TcpStream::connect(a).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server closed the slow connection");
    let text = String::from_utf8_lossy(&out);
    assert!(text.is_empty() || status_of(&text) == 408, "{text}");
    assert_eq!(get(a, "/").await.text(), "ok");
}

#[tokio::test]
async fn many_bad_clients_in_a_row_leave_the_server_serving() {
    let r = app().await;
    let a = r.local_addr();
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        tasks.push(tokio::spawn(async move {
            let junk = format!("{}\r\n\r\n", "\u{1}".repeat(i as usize + 1));
            raw(a, junk.as_bytes()).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(get(a, "/").await.text(), "ok");
}
