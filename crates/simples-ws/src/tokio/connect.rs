//! The client side of the opening handshake over a tokio transport.

use super::{Error, WebSocket};
#[cfg(feature = "deflate")]
use crate::deflate::DeflateConfig;
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
///
/// A permessage-deflate offer written in `client.extensions` is honoured
/// (with the default [`DeflateConfig`](crate::deflate::DeflateConfig)) if
/// the server accepts it.
pub async fn connect_with(url: &str, client: &ClientConfig, config: Config) -> Result<(WebSocket<TcpStream>, Response), Error> {
    // Boxed, like every handshake here: its state is freed once it is done
    // instead of staying in the caller's task (see tests/task_size.rs).
    Box::pin(connect_inner(
        url,
        client,
        config,
        #[cfg(feature = "deflate")]
        None,
    ))
    .await
}

/// As [`connect_with`], offering permessage-deflate (RFC 7692) with
/// `deflate`'s settings (after any extensions in `client.extensions`). If
/// the server accepts, the connection compresses; if it declines, it
/// does not; a response that breaks RFC 7692 fails the handshake with
/// [`HandshakeErrorKind::BadResponse`](crate::handshake::HandshakeErrorKind::BadResponse).
#[cfg(feature = "deflate")]
pub async fn connect_with_deflate(
    url: &str,
    client: &ClientConfig,
    config: Config,
    deflate: &DeflateConfig,
) -> Result<(WebSocket<TcpStream>, Response), Error> {
    Box::pin(connect_inner(url, client, config, Some(deflate))).await
}

async fn connect_inner(
    url: &str,
    client: &ClientConfig,
    config: Config,
    #[cfg(feature = "deflate")] deflate: Option<&DeflateConfig>,
) -> Result<(WebSocket<TcpStream>, Response), Error> {
    let url = parse_ws_url(url)?;
    if url.secure {
        return Err(Error::Unsupported("wss:// needs a TLS transport; use client_handshake over one"));
    }
    let fut = async {
        let tcp = TcpStream::connect(url.addr()).await?;
        tcp.set_nodelay(true)?;
        handshake_inner(
            tcp,
            &url,
            client,
            config,
            #[cfg(feature = "deflate")]
            deflate,
        )
        .await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Runs the client handshake over an open transport (TCP, TLS, ...).
pub async fn client_handshake<S>(io: S, url: &WsUrl, client: &ClientConfig, config: Config) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Box::pin(handshake_inner(
        io,
        url,
        client,
        config,
        #[cfg(feature = "deflate")]
        None,
    ))
    .await
}

/// As [`client_handshake`], offering permessage-deflate with `deflate`'s
/// settings when it is `Some` (see [`connect_with_deflate`]).
#[cfg(feature = "deflate")]
pub async fn client_handshake_with_deflate<S>(
    io: S,
    url: &WsUrl,
    client: &ClientConfig,
    config: Config,
    deflate: Option<&DeflateConfig>,
) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Box::pin(handshake_inner(io, url, client, config, deflate)).await
}

async fn handshake_inner<S>(
    mut io: S,
    url: &WsUrl,
    client: &ClientConfig,
    config: Config,
    #[cfg(feature = "deflate")] deflate: Option<&DeflateConfig>,
) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    #[cfg(feature = "deflate")]
    let (offer, with_offer);
    #[cfg(feature = "deflate")]
    let client = {
        let raw = client.extensions.as_deref();
        let default_config;
        let deflate = match deflate {
            Some(d) => Some(d),
            None if raw.is_some_and(crate::deflate::offers_pmd) => {
                default_config = DeflateConfig::default();
                Some(&default_config)
            }
            None => None,
        };
        offer = deflate.map(|d| d.client_offer(raw));
        match &offer {
            Some(o) => {
                with_offer = ClientConfig { extensions: o.header().map(str::to_owned), ..client.clone() };
                &with_offer
            }
            None => client,
        }
    };
    let (handshake, request) = ClientHandshake::new(url, client)?;
    io.write_all(&request).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some((response, n)) = handshake.parse_response(&buf)? {
            #[cfg(feature = "deflate")]
            let extension = match offer {
                Some(o) => o.accept(&response.extensions)?,
                None => None,
            };
            #[allow(unused_mut)]
            let mut ws = WebSocket::from_raw(io, Role::Client, config, &buf[n..]);
            #[cfg(feature = "deflate")]
            if let Some(ext) = extension {
                ws.protocol_mut().set_extension(Box::new(ext));
            }
            return Ok((ws, response));
        }
        buf.reserve(1024);
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}
