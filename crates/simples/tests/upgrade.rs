//! A route takes the connection over with hyper's upgrade mechanism (what
//! WebSocket hosts will use): answer 101, then talk a raw protocol.

mod common;

use common::*;
use hyper_util::rt::TokioIo;
use simples::{Conn, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn a_route_takes_over_the_connection() {
    let mut s = server();
    s.get("/echo", |mut conn: Conn| async move {
        if !conn.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("echo")) {
            return Err(simples::Error::new(426, "upgrade to echo"));
        }
        let Some(on_upgrade) = conn.upgrade() else {
            return Err(simples::Error::new(500, "no upgrade"));
        };
        tokio::spawn(async move {
            let upgraded = on_upgrade.await.expect("upgraded");
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 64];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                io.write_all(&buf[..n]).await.unwrap();
            }
        });
        let mut conn = conn;
        conn.set_status(StatusCode::SWITCHING_PROTOCOLS.as_u16()).set_header("upgrade", "echo").set_header("connection", "upgrade");
        Ok(conn.end())
    });
    let r = start(s).await;
    let a = r.local_addr();

    let mut stream = tokio::net::TcpStream::connect(a).await.unwrap();
    stream.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(b"ping over raw bytes").await.unwrap();
    let mut buf = [0u8; 19];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping over raw bytes");

    let refused = get(a, "/echo").await;
    assert_eq!(refused.status, 426);
}
