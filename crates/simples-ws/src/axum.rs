//! axum (0.8) integration (feature `axum`): an extractor in the style of
//! axum's own `WebSocketUpgrade`, deciding with the crate's one handshake
//! rule ([`ServerPolicy`]) and running the connection as a
//! [`WebSocket`].
//!
//! ```no_run
//! use axum::response::Response;
//! use axum::routing::get;
//! use simples_ws::axum::WebSocketUpgrade;
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat"]).max_message_size(64 << 10).on_upgrade(|mut socket| async move {
//!         while let Ok(msg) = socket.recv().await {
//!             if msg.is_data() && socket.send(msg).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = axum::Router::new().route("/ws", get(handler));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! A request that is not a valid upgrade is refused by the extractor with
//! the rule's answer ([`WebSocketUpgradeRejection`]): 400 (a bad key, no
//! `Host`, HTTP/1.0, a body...), 405 (not `GET`), 426 with
//! `Sec-WebSocket-Version: 13` (a plain `GET`, another version).

use std::future::Future;
use std::sync::Arc;

use axum_core::body::Body;
use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

#[cfg(feature = "deflate")]
use crate::deflate::DeflateConfig;
use crate::handshake::{HandshakeError, HandshakeErrorKind, NonUpgrade, Offer, ServerPolicy};
use crate::proto::{Config, Role};
use crate::tokio::WebSocket;

/// The connection [`WebSocketUpgrade::on_upgrade`] hands over: a
/// [`WebSocket`] over hyper's upgraded transport.
///
/// ```
/// use simples_ws::axum::UpgradedSocket;
/// use simples_ws::Message;
///
/// async fn greet(mut socket: UpgradedSocket) {
///     let _ = socket.send(Message::text("hello")).await;
/// }
/// ```
pub type UpgradedSocket = WebSocket<TokioIo<Upgraded>>;

/// Extractor of a WebSocket upgrade request; answer with
/// [`on_upgrade`](WebSocketUpgrade::on_upgrade).
///
/// ```no_run
/// use axum::response::Response;
/// use simples_ws::axum::WebSocketUpgrade;
///
/// async fn handler(ws: WebSocketUpgrade) -> Response {
///     ws.on_upgrade(|mut socket| async move {
///         let _ = socket.send(simples_ws::Message::text("hello")).await;
///     })
/// }
/// ```
#[derive(Debug)]
pub struct WebSocketUpgrade {
    offer: Offer,
    on_upgrade: OnUpgrade,
    policy: ServerPolicy,
    config: Config,
}

/// Why [`WebSocketUpgrade`] refused a request: the handshake rule's error.
/// As a response: its status, the headers the status requires, and the
/// reason as a plain-text body.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use simples_ws::axum::WebSocketUpgradeRejection;
/// use simples_ws::handshake::{HandshakeError, HandshakeErrorKind};
///
/// let e = HandshakeError::new(HandshakeErrorKind::UpgradeRequired, "version 13 only");
/// let response = WebSocketUpgradeRejection::from(e).into_response();
/// assert_eq!(response.status(), 426);
/// assert_eq!(response.headers()["sec-websocket-version"], "13");
/// ```
#[derive(Debug)]
pub struct WebSocketUpgradeRejection(HandshakeError);

impl WebSocketUpgradeRejection {
    /// The handshake error.
    ///
    /// ```
    /// use simples_ws::axum::WebSocketUpgradeRejection;
    /// use simples_ws::handshake::{HandshakeError, HandshakeErrorKind};
    ///
    /// let e = WebSocketUpgradeRejection::from(HandshakeError::new(HandshakeErrorKind::BadRequest, "no key"));
    /// assert_eq!(e.error().status(), 400);
    /// ```
    pub fn error(&self) -> &HandshakeError {
        &self.0
    }
}

impl From<HandshakeError> for WebSocketUpgradeRejection {
    fn from(e: HandshakeError) -> Self {
        WebSocketUpgradeRejection(e)
    }
}

impl std::fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for WebSocketUpgradeRejection {}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        self.0.to_http_response().map(Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // RFC 6455 §4.2.1, the one rule; a plain GET to a WebSocket route
        // is told to upgrade (426), as axum apps serve other routes too.
        let offer = Offer::from_head(&*parts, NonUpgrade::UpgradeRequired).map_err(|e| {
            tracing::debug!(status = e.status(), reason = e.reason(), "rejecting WebSocket handshake request");
            WebSocketUpgradeRejection(e)
        })?;
        // hyper offers an upgrade on HTTP/1.1 connections served with
        // upgrades (as `axum::serve` does).
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            HandshakeError::new(HandshakeErrorKind::UpgradeRequired, "this connection cannot be upgraded")
        })?;
        let policy = ServerPolicy { non_upgrade: NonUpgrade::UpgradeRequired, ..ServerPolicy::default() };
        Ok(WebSocketUpgrade { offer, on_upgrade, policy, config: Config::default() })
    }
}

impl WebSocketUpgrade {
    /// The subprotocols this route speaks; the first of the client's offers
    /// (in the client's order) found here is selected (RFC 6455 §4.2.2 item
    /// 5.5), as everywhere in this crate.
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) -> axum::response::Response {
    /// ws.protocols(["chat.v2", "chat.v1"]).on_upgrade(|_socket| async {})
    /// # }
    /// ```
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.policy.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The subprotocol that will be selected, given
    /// [`protocols`](WebSocketUpgrade::protocols).
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) {
    /// let ws = ws.protocols(["chat"]);
    /// println!("{:?}", ws.selected_protocol());
    /// # }
    /// ```
    pub fn selected_protocol(&self) -> Option<&str> {
        self.policy.select_protocol(&self.offer)
    }

    /// What the client offered: key, subprotocols, extensions.
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) {
    /// println!("{:?}", ws.offer().protocols());
    /// # }
    /// ```
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// Accepts permessage-deflate (RFC 7692) when the client offers it,
    /// with these settings. Default: off.
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) -> axum::response::Response {
    /// use simples_ws::deflate::DeflateConfig;
    /// ws.deflate(DeflateConfig::default()).on_upgrade(|_socket| async {})
    /// # }
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, deflate: DeflateConfig) -> Self {
        self.policy.deflate = Some(deflate);
        self
    }

    /// The connection's limits and timers. Default: [`Config::default`].
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) -> axum::response::Response {
    /// use std::time::Duration;
    /// let config = simples_ws::Config { ping_interval: Some(Duration::from_secs(20)), ..Default::default() };
    /// ws.config(config).on_upgrade(|_socket| async {})
    /// # }
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The largest message accepted ([`Config::max_message_size`]).
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) -> axum::response::Response {
    /// ws.max_message_size(1 << 20).on_upgrade(|_socket| async {})
    /// # }
    /// ```
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.config.max_message_size = max;
        self
    }

    /// The largest frame accepted ([`Config::max_frame_size`]).
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) -> axum::response::Response {
    /// ws.max_frame_size(64 << 10).on_upgrade(|_socket| async {})
    /// # }
    /// ```
    pub fn max_frame_size(mut self, max: usize) -> Self {
        self.config.max_frame_size = max;
        self
    }

    /// Negotiates, answers `101 Switching Protocols`, and once hyper hands
    /// the connection over, runs `callback` with it on a new task.
    ///
    /// ```no_run
    /// # use simples_ws::axum::WebSocketUpgrade;
    /// # fn f(ws: WebSocketUpgrade) -> axum::response::Response {
    /// ws.on_upgrade(|mut socket| async move {
    ///     while let Ok(msg) = socket.recv().await {
    ///         println!("{msg:?}");
    ///     }
    /// })
    /// # }
    /// ```
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(UpgradedSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let WebSocketUpgrade { offer, on_upgrade, policy, config } = self;
        let decision = policy.negotiate(offer);
        let response = decision.response().map(|()| Body::empty());
        let negotiated = decision.into_negotiated();
        let config = Arc::new(config);
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let socket = WebSocket::from_upgraded(TokioIo::new(upgraded), Role::Server, config, negotiated);
            callback(socket).await;
        });
        response
    }
}
