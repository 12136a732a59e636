//! The client side of the opening handshake over a tokio transport.

use super::{Error, WebSocket};
use crate::handshake::client::{ClientConfig, ClientHandshake, Response};
use crate::handshake::{parse_ws_url, WsUrl};
use crate::proto::{Config, Role};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time allowed for TCP connect plus the handshake in [`connect`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a `ws://` URL with default settings.
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, Response), Error> {
    connect_with(url, &ClientConfig::default(), Config::default()).await
}

/// Connects to a `ws://` URL with the given handshake and protocol
/// settings, within [`CONNECT_TIMEOUT`]. `wss://` needs a TLS transport:
/// open one yourself and use [`client_handshake`].
pub async fn connect_with(url: &str, client: &ClientConfig, config: Config) -> Result<(WebSocket<TcpStream>, Response), Error> {
    let url = parse_ws_url(url)?;
    if url.secure {
        return Err(Error::Unsupported("wss:// needs a TLS transport; use client_handshake over one"));
    }
    let fut = async {
        let tcp = TcpStream::connect(url.addr()).await?;
        tcp.set_nodelay(true)?;
        client_handshake(tcp, &url, client, config).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Runs the client handshake over an open transport (TCP, TLS, ...).
pub async fn client_handshake<S>(mut io: S, url: &WsUrl, client: &ClientConfig, config: Config) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (handshake, request) = ClientHandshake::new(url, client)?;
    io.write_all(&request).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some((response, n)) = handshake.parse_response(&buf)? {
            let ws = WebSocket::from_raw(io, Role::Client, config, &buf[n..]);
            return Ok((ws, response));
        }
        buf.reserve(1024);
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}
