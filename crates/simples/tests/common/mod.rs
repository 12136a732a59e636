//! Test helpers: start a server on 127.0.0.1:0 and talk to it with hyper's
//! HTTP/1.1 client (one connection per request) or a raw socket.

#![allow(dead_code)]

pub mod history;
pub mod redis;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use simples::{Running, Server};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A fresh server on an ephemeral port.
pub fn server() -> Server {
    Server::new("127.0.0.1:0")
}

/// A server (not started) whose `GET /` answers `"{name} home"` and
/// `GET /users/:id` answers `"{name} user {id}"`: the app the service
/// tests mount or call, each adding its own routes.
pub fn named_app(name: &'static str) -> Server {
    let mut server = Server::new("unused");
    server.get("/", move |conn| async move { conn.send(format!("{name} home")) });
    server.get("/users/:id", move |conn| async move {
        let id = conn.param("id").unwrap_or("").to_string();
        conn.send(format!("{name} user {id}"))
    });
    server
}

/// Starts `server`, panicking on failure.
pub async fn start(server: Server) -> Running {
    server.start().await.expect("server starts")
}

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }
}

/// A request builder with `Host: localhost`.
pub fn req(method: &str, path: &str) -> http::request::Builder {
    Request::builder().method(method).uri(path).header("host", "localhost")
}

/// Sends `req` with `body` over a new connection.
pub async fn send_body(addr: SocketAddr, req: http::request::Builder, body: impl Into<Bytes>) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    send_on(stream, req.body(Full::new(body.into())).unwrap()).await
}

/// Sends `req` (no body) over a new connection.
pub async fn send(addr: SocketAddr, req: http::request::Builder) -> Reply {
    send_body(addr, req, Bytes::new()).await
}

/// `GET path` with `Host: localhost`.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, req("GET", path)).await
}

/// Sends a request over any stream (plain or TLS).
pub async fn send_on<S>(stream: S, req: Request<Full<Bytes>>) -> Reply
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response within 10 s")
        .expect("response");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply { status, headers, body }
}

/// Writes `bytes` on a new connection and reads until the server closes
/// it (or 5 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A self-signed certificate for `localhost` and `127.0.0.1`:
/// (certificate PEM, key PEM, certificate DER).
pub fn test_cert() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// A TLS client trusting `cert_der`.
pub fn tls_connector(cert_der: &[u8]) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(cert_der.to_vec())).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Sends `req` over HTTPS.
pub async fn send_tls(addr: SocketAddr, connector: &tokio_rustls::TlsConnector, req: Request<Full<Bytes>>) -> Reply {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    send_on(tls, req).await
}

/// WebSocket clients (simples-ws's client over a real socket).
pub mod ws {
    use std::net::SocketAddr;
    use std::time::Duration;

    use serde_json::Value;
    use simples_ws::handshake::client::ClientConfig;
    use simples_ws::tokio::{connect_with, Error, WebSocket};
    use simples_ws::{Config, Message};
    use tokio::net::TcpStream;

    pub type Client = WebSocket<TcpStream>;

    /// Connects to `path` on `addr` with `config`; the handshake's result.
    pub async fn try_connect(addr: SocketAddr, path: &str, config: ClientConfig) -> Result<Client, Error> {
        let url = format!("ws://{addr}{path}");
        connect_with(&url, &config, Config::default()).await.map(|(ws, _)| ws)
    }

    /// Connects to `path` on `addr`, panicking on failure.
    pub async fn connect(addr: SocketAddr, path: &str) -> Client {
        try_connect(addr, path, ClientConfig::default()).await.expect("WebSocket handshake")
    }

    /// The next data or close message (pings and pongs skipped), within 5 s.
    pub async fn next(ws: &mut Client) -> Message {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.recv())
                .await
                .expect("a message within 5 s")
                .expect("the connection is open");
            if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
                return m;
            }
        }
    }

    /// The next text message.
    pub async fn text(ws: &mut Client) -> String {
        match next(ws).await {
            Message::Text(t) => t.as_str().to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next text message as JSON.
    pub async fn json(ws: &mut Client) -> Value {
        let t = text(ws).await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// Sends a text message.
    pub async fn send(ws: &mut Client, text: &str) {
        ws.send(Message::text(text.to_string())).await.expect("send");
    }

    /// Sends `value` as JSON text.
    pub async fn send_json(ws: &mut Client, value: Value) {
        send(ws, &value.to_string()).await;
    }

    /// A client that completes the handshake to `path`, then never reads:
    /// a tiny receive buffer so that the kernel absorbs little.
    pub async fn stalled_client(addr: SocketAddr, path: &str) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        stream
    }

    /// Waits (5 s at most) until `host` has `n` connections.
    pub async fn wait_for(host: &simples::WsHost, n: usize) {
        for _ in 0..500 {
            if host.len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} connections, have {}", host.len());
    }

    /// Waits for the server's close frame; its code.
    pub async fn closed_with(ws: &mut Client) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await.expect("closed within 10 s") {
                Ok(Message::Close(frame)) => return frame.map_or(1005, |f| f.code.0),
                Ok(_) => continue,
                Err(e) => panic!("connection failed instead of closing: {e}"),
            }
        }
    }
}

/// More WebSocket helpers: refused handshakes and raw upgrade requests.
pub mod ws_extra {
    use std::net::SocketAddr;

    use simples_ws::handshake::client::ClientConfig;

    /// The RFC 6455 §1.3 sample key.
    pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The HTTP status with which the server refused a simples-ws client's
    /// handshake to `path`; panics if it was accepted.
    pub async fn refused(addr: SocketAddr, path: &str, config: ClientConfig) -> u16 {
        match super::ws::try_connect(addr, path, config).await {
            Ok(_) => panic!("the handshake to {path} was accepted"),
            Err(e) => {
                let text = e.to_string();
                let status = text
                    .split("server answered ")
                    .nth(1)
                    .and_then(|rest| rest.get(..3))
                    .and_then(|s| s.parse().ok());
                status.unwrap_or_else(|| panic!("not an HTTP refusal: {text}"))
            }
        }
    }

    /// A raw client that completed the handshake to `path` on `addr` (the
    /// 101 head read, nothing more).
    pub async fn raw_ws(addr: SocketAddr, path: &str) -> tokio::net::TcpStream {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        tcp
    }

    /// A ping flood of `pings` pings on `path` (the flooder's own control
    /// frame limit off, so it reads every pong); the server's close code.
    pub async fn ping_flood(addr: SocketAddr, path: &str, pings: u32) -> u16 {
        let config = simples_ws::Config { max_control_frames_per_second: None, ..simples_ws::Config::default() };
        let url = format!("ws://{addr}{path}");
        let (mut ws, _) = simples_ws::tokio::connect_with(&url, &ClientConfig::default(), config).await.unwrap();
        for i in 0..pings {
            if ws.feed(simples_ws::Message::Ping(i.to_string().into())).await.is_err() {
                break;
            }
        }
        let _ = ws.flush().await;
        super::ws::closed_with(&mut ws).await
    }

    /// A valid upgrade request to `path` (`Host: localhost`), for hyper's
    /// client: refusals come back as ordinary responses.
    pub fn upgrade_req(path: &str) -> http::request::Builder {
        upgrade_req_with(path, Some("13"), Some(SAMPLE_KEY))
    }

    /// An upgrade request to `path` with this `Sec-WebSocket-Version` and
    /// `Sec-WebSocket-Key` (`None`: the header is left out).
    pub fn upgrade_req_with(path: &str, version: Option<&str>, key: Option<&str>) -> http::request::Builder {
        let mut req = super::req("GET", path).header("upgrade", "websocket").header("connection", "Upgrade");
        if let Some(version) = version {
            req = req.header("sec-websocket-version", version);
        }
        if let Some(key) = key {
            req = req.header("sec-websocket-key", key);
        }
        req
    }
}

#[path = "../../../simples-ws/tests/common/shared.rs"]
pub mod shared;
