//! Test helpers: start a server on 127.0.0.1:0 and talk to it with hyper's
//! HTTP/1.1 client (one connection per request) or a raw socket.

#![allow(dead_code)]

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
