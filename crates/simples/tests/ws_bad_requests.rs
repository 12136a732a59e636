//! Malformed WebSocket upgrade requests over raw TCP: each one is a client
//! error, answered with a 4xx and a reason (never a 5xx), and a
//! well-behaved client on the same server keeps working.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ws::{connect, text};
use common::ws_extra::SAMPLE_KEY;
use simples::ws::WsOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A server whose host at `/ws` greets every connection with "hi".
async fn greeting_server() -> simples::Running {
    let mut server = common::server();
    server.ws("/ws", WsOptions::default(), |conn| async move {
        let _ = conn.send_text("hi");
    });
    common::start(server).await
}

/// An answer read off a raw socket: status, head and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Writes `request` on a new connection and reads one response (its head,
/// then `Content-Length` bytes of body), within 5 s.
async fn ask(addr: SocketAddr, request: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "connection closed inside the body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Answer { status, head, body }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("a response within 5 s")
}

/// An upgrade request to `/ws`: `version` is the HTTP version, `method`
/// the method, `headers` the header lines (each ending in CRLF), `body`
/// what follows the head.
fn request(method: &str, version: &str, headers: &str, body: &str) -> String {
    format!("{method} /ws {version}\r\nHost: 127.0.0.1\r\n{headers}\r\n{body}")
}

const UPGRADE: &str = "Upgrade: websocket\r\n";
const CONNECTION: &str = "Connection: Upgrade\r\n";
const VERSION: &str = "Sec-WebSocket-Version: 13\r\n";

fn key() -> String {
    format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n")
}

/// The full set of valid upgrade headers, for the cases that change one
/// thing outside them.
fn valid_headers() -> String {
    format!("{UPGRADE}{CONNECTION}{VERSION}{}", key())
}

/// The regression of issue 13: an upgrade request made with HTTP/1.0 got
/// `500 Internal Server Error` (hyper does not offer an upgrade on
/// HTTP/1.0, and the host took that for its own failure). RFC 6455 §4.1:
/// the handshake is an HTTP/1.1 request, so this is the client's error.
#[tokio::test]
async fn http_1_0_upgrade_is_400_not_500() {
    let running = greeting_server().await;
    let addr = running.local_addr();
    let answer = ask(addr, &request("GET", "HTTP/1.0", &valid_headers(), "")).await;
    assert_eq!(answer.status, 400, "{}{}", answer.head, answer.body);
    assert!(answer.body.contains("HTTP/1.1"), "the reason names the version: {:?}", answer.body);
    // The server still serves a well-behaved client.
    let mut client = connect(addr, "/ws").await;
    assert_eq!(text(&mut client).await, "hi");
    drop(client);
    running.stop().await;
}

/// Every other malformed upgrade request: a 4xx with a reason in the body.
#[tokio::test]
async fn malformed_upgrades_are_4xx_with_a_reason() {
    let running = greeting_server().await;
    let addr = running.local_addr();
    let k = key();
    let cases: Vec<(&str, String, u16)> = vec![
        ("no key", request("GET", "HTTP/1.1", &format!("{UPGRADE}{CONNECTION}{VERSION}"), ""), 400),
        (
            "a key of 5 bytes",
            request("GET", "HTTP/1.1", &format!("{UPGRADE}{CONNECTION}{VERSION}Sec-WebSocket-Key: c2hvcnQ=\r\n"), ""),
            400,
        ),
        (
            "a key that is not base64",
            request("GET", "HTTP/1.1", &format!("{UPGRADE}{CONNECTION}{VERSION}Sec-WebSocket-Key: !!!!\r\n"), ""),
            400,
        ),
        ("two keys", request("GET", "HTTP/1.1", &format!("{}{k}", valid_headers()), ""), 400),
        (
            "version 8",
            request("GET", "HTTP/1.1", &format!("{UPGRADE}{CONNECTION}Sec-WebSocket-Version: 8\r\n{k}"), ""),
            426,
        ),
        ("no version", request("GET", "HTTP/1.1", &format!("{UPGRADE}{CONNECTION}{k}"), ""), 426),
        ("no Connection: Upgrade", request("GET", "HTTP/1.1", &format!("{UPGRADE}{VERSION}{k}"), ""), 426),
        ("no Upgrade: websocket", request("GET", "HTTP/1.1", &format!("{CONNECTION}{VERSION}{k}"), ""), 426),
        ("POST", request("POST", "HTTP/1.1", &format!("{}Content-Length: 0\r\n", valid_headers()), ""), 405),
        (
            "a body",
            request("GET", "HTTP/1.1", &format!("{}Content-Length: 5\r\n", valid_headers()), "hello"),
            400,
        ),
        (
            "a chunked body",
            request("GET", "HTTP/1.1", &format!("{}Transfer-Encoding: chunked\r\n", valid_headers()), "5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        ("HTTP/1.0 without upgrade headers", request("GET", "HTTP/1.0", "", ""), 400),
    ];
    for (what, req, expected) in cases {
        let answer = ask(addr, &req).await;
        assert_eq!(answer.status, expected, "{what}: {}{}", answer.head, answer.body);
        if expected != 405 {
            assert!(!answer.body.trim().is_empty(), "{what}: no reason given");
        }
        if expected == 426 {
            // RFC 6455 §4.4: the versions this server speaks.
            assert!(answer.head.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{what}: {}", answer.head);
        }
    }
    // The server still serves a well-behaved client.
    let mut client = connect(addr, "/ws").await;
    assert_eq!(text(&mut client).await, "hi");
    drop(client);
    running.stop().await;
}
