//! [`ServerService`]: a server's request handling as a
//! [`tower::Service`](tower_service::Service), for use without the
//! server's own listeners: in tests (a request in, a response out, no
//! socket), mounted under axum or plain hyper, or wrapped in tower layers.
//!
//! Everything a request meets on a started server is there (virtual
//! hosts, routing, middlewares, sessions, static files, error routes, CORS,
//! compression, `HEAD`, the access log): both paths call the same
//! `dispatch`. What belongs to the listeners is not: the HTTP options of
//! [`ServerOptions`](crate::ServerOptions) (head size, timeouts,
//! keep-alive), TLS, mirrors and the start/stop hooks are the embedding
//! server's business.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Request;

use crate::body::BoxError;
use crate::dispatch::dispatch;
use crate::lifecycle::Together;
use crate::response::Response;
use crate::server::Server;
use crate::virtual_hosts::VirtualHosts;

/// Where a request handled by a [`ServerService`] came from, read by
/// [`Conn::peer_addr`](crate::Conn::peer_addr) and
/// [`Conn::is_secure`](crate::Conn::is_secure): insert it into the
/// request's extensions (e.g. from axum's `ConnectInfo` in a small layer).
/// Without it the address is `0.0.0.0:0` and the request counts as secure
/// when its URI has the `https` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the request came over TLS.
    pub secure: bool,
}

/// A server's request handling as a `tower::Service<http::Request<B>>`
/// for any body `B` (hyper's `Incoming`, axum's `Body`, `Full<Bytes>`...),
/// answering `http::Response<simples::Body>` and never failing (errors are
/// responses). Cheap to clone: clones share the frozen hosts. Made by
/// [`Server::service`]; see [`Server::start`] for the simple path with the
/// server's own listeners.
///
/// In a test, with `tower::ServiceExt::oneshot`:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::ServiceExt as _;
///
/// let mut server = simples::Server::new("127.0.0.1:0");
/// server.get("/hello/:name", |conn| async move {
///     let name = conn.param("name").unwrap_or("").to_string();
///     conn.send(format!("hello {name}"))
/// });
/// let request = http::Request::get("/hello/ana").body(String::new()).unwrap();
/// let response = server.service().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.body().as_bytes(), Some(&b"hello ana"[..]));
/// # }
/// ```
///
/// Under axum, next to axum routes (`Router::fallback_service` or
/// `Router::nest_service`), with tower layers around it:
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let mut server = simples::Server::new("unused");
/// server.get("/", |conn| async move { conn.send("from simples") });
/// let app = axum::Router::new()
///     .route("/axum", axum::routing::get(|| async { "from axum" }))
///     .fallback_service(server.service());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
///
/// Under plain hyper, with `hyper::service::service_fn` (or
/// `hyper_util::service::TowerToHyperService`); serve the connection
/// `with_upgrades()` and WebSocket hosts work too (the handshake takes
/// hyper's `OnUpgrade` from the request's extensions, as on a started
/// server).
///
/// The WebSocket hosts of the server are started with the service; end
/// them with [`shutdown`](ServerService::shutdown) (close 1001).
#[derive(Clone)]
pub struct ServerService {
    hosts: Arc<VirtualHosts>,
}

impl Server {
    /// The server's request handling as a [`ServerService`] (a
    /// `tower::Service`), without listening anywhere: the listeners, the
    /// server options and the start/stop hooks are not used. Starts the
    /// hosts' WebSocket hosts (their connections run on the runtime the
    /// requests are served on).
    pub fn service(self) -> ServerService {
        let hosts = VirtualHosts::new(self.main, self.hosts);
        let together = Together::default();
        for (host, part) in hosts.attached() {
            part.started(&host.chain.context, &together);
        }
        ServerService { hosts: Arc::new(hosts) }
    }
}

impl ServerService {
    /// Closes the WebSocket hosts' connections (close 1001) and waits up
    /// to `deadline` for their closing handshakes; new handshakes are then
    /// refused (`503`). HTTP requests are still answered: stopping those is
    /// the embedding server's part.
    pub async fn shutdown(&self, deadline: Duration) {
        let parts = self.hosts.attached().map(|(_, part)| part.stop(deadline));
        futures_util::future::join_all(parts).await;
    }
}

impl std::fmt::Debug for ServerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerService").finish_non_exhaustive()
    }
}

impl<B> tower_service::Service<Request<B>> for ServerService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let hosts = self.hosts.clone();
        let (peer, secure) = match req.extensions().get::<ClientInfo>() {
            Some(info) => (info.addr, info.secure),
            None => {
                let secure = req.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
                (SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), secure)
            }
        };
        Box::pin(async move { Ok(dispatch(&hosts, req, peer, secure).await) })
    }
}
