//! The server side of the opening handshake over a tokio transport.

use super::{Error, WebSocket};
use crate::handshake::server::{accept_response, parse_request, Request, ServerConfig};
use crate::handshake::HandshakeError;
#[cfg(feature = "deflate")]
use crate::deflate::DeflateConfig;
use crate::proto::{Config, Role};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The options of [`accept`] and [`accept_with`]: handshake limits,
/// subprotocols and protocol limits.
#[derive(Debug, Clone)]
pub struct AcceptOptions {
    /// Request head limits. Default: [`ServerConfig::default`] (8 KiB, 64
    /// headers).
    pub handshake: ServerConfig,
    /// Subprotocols this server speaks, in no particular order; the first
    /// of the client's offers found here is chosen. Default: none.
    pub protocols: Vec<String>,
    /// Limits and timers of accepted connections. Default:
    /// [`Config::default`].
    pub config: Config,
    /// Time allowed for the client to send its request head. Default: 10 s.
    pub handshake_timeout: Duration,
    /// permessage-deflate (RFC 7692): `Some` accepts clients' offers with
    /// these settings (see [`DeflateConfig::negotiate`]); over its budget,
    /// the extension is declined and the connection opens uncompressed.
    /// Default: `None` (off).
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateConfig>,
}

impl Default for AcceptOptions {
    fn default() -> Self {
        AcceptOptions {
            handshake: ServerConfig::default(),
            protocols: Vec::new(),
            config: Config::default(),
            handshake_timeout: Duration::from_secs(10),
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

/// What the application decided about a handshake request.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    /// The subprotocol to answer with; `None` negotiates from
    /// [`AcceptOptions::protocols`]. It must be one the client offered.
    pub protocol: Option<String>,
    /// Extra response headers (e.g. `Set-Cookie`).
    pub headers: Vec<(String, String)>,
    /// Per-connection protocol settings; `None` keeps
    /// [`AcceptOptions::config`].
    pub config: Option<Config>,
}

/// Accepts a WebSocket connection with default checks: any path, any
/// origin. Returns the connection and the request it was opened with.
pub async fn accept<S>(io: S, options: &AcceptOptions) -> Result<(WebSocket<S>, Request), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(io, options, |_| Ok(Accept::default())).await
}

/// Accepts a WebSocket connection after asking `check`, which sees the
/// path, query, headers, cookies and origin, and either accepts (choosing
/// the subprotocol and extra headers) or rejects with a status and reason
/// (see [`crate::handshake::server::reject`]).
///
/// Every failure is answered with an HTTP response before the transport is
/// closed: 400/405/426/431 for a bad request, the application's status for
/// a rejection. The reason is logged at debug level.
pub async fn accept_with<S, F>(io: S, options: &AcceptOptions, check: F) -> Result<(WebSocket<S>, Request), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, HandshakeError>,
{
    // Boxed: the handshake's state (the request parser, a 4 KiB buffer for
    // refusals) is freed once it is done, instead of staying inside the
    // caller's task (every `async` block awaiting `accept`) for the
    // connection's whole life. See tests/task_size.rs.
    Box::pin(handshake(io, options, check)).await
}

async fn handshake<S, F>(mut io: S, options: &AcceptOptions, check: F) -> Result<(WebSocket<S>, Request), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, HandshakeError>,
{
    let read = tokio::time::timeout(options.handshake_timeout, read_request(&mut io, &options.handshake)).await;
    let (request, buf, consumed) = match read {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(Err(Error::Handshake(e))) => return Err(reject(&mut io, e).await),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let e = HandshakeError::new(crate::handshake::HandshakeErrorKind::BadRequest, "request head timed out");
            return Err(reject(&mut io, e).await);
        }
    };
    let decision = match check(&request) {
        Ok(d) => d,
        Err(e) => return Err(reject(&mut io, e).await),
    };
    let protocol = match &decision.protocol {
        Some(p) => Some(p.as_str()),
        None => request.select_protocol(&options.protocols),
    };
    #[cfg(feature = "deflate")]
    let deflate = options.deflate.as_ref().and_then(|d| d.accept_offers(request.extensions()));
    #[cfg(feature = "deflate")]
    let extensions = deflate.as_ref().map(|(_, header)| header.as_str());
    #[cfg(not(feature = "deflate"))]
    let extensions = None;
    let response = match accept_response(&request, protocol, extensions, &decision.headers) {
        Ok(r) => r,
        Err(e) => return Err(reject(&mut io, e).await),
    };
    io.write_all(&response).await?;
    io.flush().await?;
    let config = decision.config.unwrap_or_else(|| options.config.clone());
    #[allow(unused_mut)]
    let mut ws = WebSocket::from_raw(io, Role::Server, config, &buf[consumed..]);
    #[cfg(feature = "deflate")]
    if let Some((ext, _)) = deflate {
        ws.protocol_mut().set_extension(Box::new(ext));
    }
    Ok((ws, request))
}

/// Reads until a complete request head; `Ok(None)` if the client left.
async fn read_request<S>(io: &mut S, config: &ServerConfig) -> Result<Option<(Request, BytesMut, usize)>, Error>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some((req, n)) = parse_request(&buf, config)? {
            return Ok(Some((req, buf, n)));
        }
        buf.reserve(1024);
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Answers a failed handshake with its HTTP response and closes the write
/// side; returns the error for the caller.
async fn reject<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, e: HandshakeError) -> Error {
    tracing::debug!(status = e.status(), reason = e.reason(), "rejecting WebSocket handshake");
    let response = e.to_response();
    let write = async {
        io.write_all(&response).await?;
        io.flush().await?;
        io.shutdown().await?;
        // Read what the client still sends (the rest of an oversized head,
        // early frames) until it closes: closing with unread bytes would
        // reset the connection and could destroy the response in flight.
        let mut sink = [0u8; 4096];
        let mut left = 1usize << 20;
        while left > 0 {
            match io.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
    Error::Handshake(e)
}
