//! A connection whose handshake another HTTP server made: hyper's
//! `Upgraded` (through `hyper_util::rt::TokioIo`), or any transport.

use super::WebSocket;
use crate::handshake::Negotiated;
use crate::proto::{Config, Role};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport upgraded by another HTTP server, with what the
    /// handshake agreed (the permessage-deflate extension is installed).
    ///
    /// With hyper: decide on the request with
    /// [`ServerPolicy::decide`](crate::handshake::ServerPolicy::decide),
    /// answer with `Decision::response` (feature `http`), and once
    /// `hyper::upgrade::on(request)` resolves, wrap it in
    /// `hyper_util::rt::TokioIo`: hyper's `Upgraded` already hands back the
    /// bytes it read past the request, so nothing is left over here.
    ///
    /// ```no_run
    /// use http_body_util::Empty;
    /// use hyper::body::{Bytes, Incoming};
    /// use hyper::{Request, Response};
    /// use hyper_util::rt::TokioIo;
    /// use simples_ws::handshake::ServerPolicy;
    /// use simples_ws::tokio::WebSocket;
    /// use simples_ws::{Config, Role};
    ///
    /// async fn handle(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, std::convert::Infallible> {
    ///     let policy = ServerPolicy { protocols: vec!["chat".into()], ..Default::default() };
    ///     let decision = match policy.decide(&req) {
    ///         Ok(d) => d,
    ///         // 400, 405, 426 (with Sec-WebSocket-Version: 13)...: the client's mistake.
    ///         Err(e) => return Ok(e.to_http_response().map(|_| Empty::new())),
    ///     };
    ///     let response = decision.response().map(|()| Empty::new());
    ///     let negotiated = decision.into_negotiated();
    ///     let on_upgrade = hyper::upgrade::on(&mut req);
    ///     tokio::spawn(async move {
    ///         let Ok(upgraded) = on_upgrade.await else { return };
    ///         let mut ws = WebSocket::from_upgraded(TokioIo::new(upgraded), Role::Server, Config::default(), negotiated);
    ///         while let Ok(msg) = ws.recv().await {
    ///             if msg.is_data() {
    ///                 let _ = ws.send(msg).await; // echo
    ///             }
    ///         }
    ///     });
    ///     Ok(response)
    /// }
    /// ```
    pub fn from_upgraded(io: S, role: Role, config: impl Into<std::sync::Arc<Config>>, negotiated: Negotiated) -> Self {
        let mut ws = WebSocket::from_raw(io, role, config, &[]);
        negotiated.install(ws.protocol_mut());
        ws
    }
}
