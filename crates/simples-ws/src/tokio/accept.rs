//! The server side of the opening handshake over a tokio transport.

use super::{Error, WebSocket};
use crate::handshake::server::{parse_request, Request, ServerConfig};
pub use crate::handshake::Accept;
use crate::handshake::{Decision, HandshakeError, NonUpgrade, ServerPolicy};
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

impl AcceptOptions {
    /// The handshake decision these options make (see
    /// [`ServerPolicy`]): a request that is no upgrade is a 400.
    pub(crate) fn policy(&self) -> ServerPolicy {
        ServerPolicy {
            protocols: self.protocols.clone(),
            #[cfg(feature = "deflate")]
            deflate: self.deflate.clone(),
            non_upgrade: NonUpgrade::BadRequest,
        }
    }
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
/// (see [`crate::handshake::server::reject`]). To `.await` in the check
/// (a database lookup...), use [`ServerHandshake`].
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
    Box::pin(async move {
        let handshake = ServerHandshake::read_unboxed(io, options).await?;
        match check(handshake.request()) {
            Ok(accept) => handshake.accept_unboxed(accept).await,
            Err(e) => Err(handshake.reject_with(e).await),
        }
    })
    .await
}

/// A server handshake whose request was read and validated, waiting for
/// the application's decision, which may take any `.await` (a database
/// lookup, a call to an authorization service...): then
/// [`accept`](ServerHandshake::accept) or [`reject`](ServerHandshake::reject).
///
/// ```no_run
/// use simples_ws::tokio::{Accept, ServerHandshake, AcceptOptions};
/// use tokio::net::TcpListener;
///
/// # async fn lookup(_: Option<&str>) -> Option<String> { None }
/// # async fn run() -> Result<(), simples_ws::tokio::Error> {
/// let listener = TcpListener::bind("127.0.0.1:9001").await?;
/// let options = AcceptOptions { protocols: vec!["chat".into()], ..Default::default() };
/// let (tcp, _) = listener.accept().await?;
/// let handshake = ServerHandshake::read(tcp, &options).await?; // bad requests are answered here
/// match lookup(handshake.request().cookie("sid")).await {
///     Some(user) => {
///         let accept = Accept { headers: vec![("X-User".into(), user)], ..Default::default() };
///         let (mut ws, _request) = handshake.accept(accept).await?;
///         ws.send(simples_ws::Message::text("welcome")).await?;
///     }
///     None => {
///         handshake.reject(401, "who are you?").await;
///     }
/// }
/// # Ok(()) }
/// ```
pub struct ServerHandshake<S> {
    io: S,
    request: Request,
    buf: BytesMut,
    consumed: usize,
    decision: Decision,
    config: Config,
}

impl<S> std::fmt::Debug for ServerHandshake<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("request", &self.request)
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerHandshake<S> {
    /// Reads the client's request (within
    /// [`AcceptOptions::handshake_timeout`]), validates it (RFC 6455
    /// §4.2.1) and negotiates the subprotocol and permessage-deflate with
    /// `options`. A bad request is answered (400/405/426/431) and closed
    /// here, and returned as [`Error::Handshake`]. An accepted
    /// permessage-deflate offer holds its share of
    /// [`DeflateConfig`]'s budget until [`accept`](Self::accept),
    /// [`reject`](Self::reject) or a drop.
    ///
    /// ```no_run
    /// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), simples_ws::tokio::Error> {
    /// use simples_ws::tokio::{ServerHandshake, AcceptOptions};
    /// let handshake = ServerHandshake::read(tcp, &AcceptOptions::default()).await?;
    /// println!("{} wants {:?}", handshake.request().path(), handshake.protocol());
    /// # Ok(()) }
    /// ```
    pub async fn read(io: S, options: &AcceptOptions) -> Result<Self, Error> {
        // Boxed for the same reason as `accept_with`.
        Box::pin(Self::read_unboxed(io, options)).await
    }

    async fn read_unboxed(mut io: S, options: &AcceptOptions) -> Result<Self, Error> {
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
        // `parse_request` applied the rule already: this cannot refuse,
        // it negotiates.
        let decision = match options.policy().decide(&request) {
            Ok(d) => d,
            Err(e) => return Err(reject(&mut io, e).await),
        };
        Ok(ServerHandshake { io, request, buf, consumed, decision, config: options.config.clone() })
    }

    /// The validated request: path, query, headers, cookies, origin,
    /// offered subprotocols (see also `Request::to_parts` for the `http`
    /// types).
    ///
    /// ```no_run
    /// # async fn run(h: simples_ws::tokio::ServerHandshake<tokio::net::TcpStream>) {
    /// let origin = h.request().origin().unwrap_or("none");
    /// # }
    /// ```
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The subprotocol negotiated from [`AcceptOptions::protocols`], which
    /// [`Accept::protocol`] may still replace.
    ///
    /// ```no_run
    /// # async fn run(h: simples_ws::tokio::ServerHandshake<tokio::net::TcpStream>) {
    /// if h.protocol() == Some("chat.v2") { /* ... */ }
    /// # }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.decision.protocol()
    }

    /// Accepts: sends the `101` (with [`Accept::protocol`] if set, and
    /// [`Accept::headers`]) and returns the connection. An invalid choice
    /// (a subprotocol the client did not offer, a header the handshake
    /// owns) is answered with a 500 and returned as [`Error::Handshake`].
    ///
    /// ```no_run
    /// # async fn run(h: simples_ws::tokio::ServerHandshake<tokio::net::TcpStream>) -> Result<(), simples_ws::tokio::Error> {
    /// use simples_ws::tokio::Accept;
    /// let (ws, request) = h.accept(Accept { protocol: Some("chat".into()), ..Default::default() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn accept(self, accept: Accept) -> Result<(WebSocket<S>, Request), Error> {
        Box::pin(self.accept_unboxed(accept)).await
    }

    async fn accept_unboxed(self, accept: Accept) -> Result<(WebSocket<S>, Request), Error> {
        let ServerHandshake { mut io, request, buf, consumed, mut decision, config } = self;
        let chosen = match &accept.protocol {
            Some(p) => decision.set_protocol(Some(p)),
            None => Ok(()),
        };
        let added = chosen.and_then(|()| accept.headers.iter().try_for_each(|(n, v)| decision.add_header(n, v)));
        if let Err(e) = added {
            tracing::debug!(reason = e.reason(), "cannot build WebSocket 101 response");
            return Err(reject(&mut io, e).await);
        }
        io.write_all(&decision.response_bytes()).await?;
        io.flush().await?;
        let config = accept.config.unwrap_or(config);
        let mut ws = WebSocket::from_raw(io, Role::Server, config, &buf[consumed..]);
        decision.into_negotiated().install(ws.protocol_mut());
        Ok((ws, request))
    }

    /// Refuses with `status` (400 to 599; another is replaced by 500) and
    /// `reason` as the body, closes, and returns the error (as
    /// [`crate::handshake::server::reject`]).
    ///
    /// ```no_run
    /// # async fn run(h: simples_ws::tokio::ServerHandshake<tokio::net::TcpStream>) {
    /// h.reject(403, "origin not allowed").await;
    /// # }
    /// ```
    pub async fn reject(self, status: u16, reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
        self.reject_with(crate::handshake::server::reject(status, reason)).await
    }

    /// Refuses with `e`'s response (see [`HandshakeError::to_response`]),
    /// closes, and returns it as [`Error::Handshake`].
    ///
    /// ```no_run
    /// # async fn run(h: simples_ws::tokio::ServerHandshake<tokio::net::TcpStream>) {
    /// use simples_ws::handshake::server::reject;
    /// h.reject_with(reject(429, "slow down")).await;
    /// # }
    /// ```
    pub async fn reject_with(mut self, e: HandshakeError) -> Error {
        Box::pin(reject(&mut self.io, e)).await
    }
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
