//! # simples: a small real-time web framework
//!
//! A server in a few lines, one [`Conn`] per request:
//!
//! ```no_run
//! use simples::Server;
//!
//! #[tokio::main]
//! async fn main() -> simples::Result<()> {
//!     let mut server = Server::new("127.0.0.1:8080");
//!     server.get("/", |conn| async move { conn.send("Hello, world") });
//!     server.serve_dir("/static", "public");
//!     server.start().await?.wait().await;
//!     Ok(())
//! }
//! ```
//!
//! ## Architecture
//!
//! (The whole project's map, both crates and the tooling, is
//! `ARCHITECTURE.md` at the repository's root.)
//!
//! The modules from the top down: each uses only modules listed below it
//! (no import cycles: `scripts/check-cycles` checks it in CI, at file
//! level; inside `ws/` the core types refer to each other, see there):
//!
//! ```text
//!   service      ServerService: the same request handling as a
//!                tower::Service (tests without a socket, axum, hyper,
//!                tower layers)
//!   server/      Server (builder: listeners, hosts, options, hooks) and
//!                Running (start, graceful stop, restart); listener.rs
//!                accepts TCP/TLS connections and serves them with hyper
//!                (HTTP/1.1, upgrades enabled)
//!   dispatch     the per-request pipeline: host, route, CORS preflight,
//!                middlewares + handler (panics caught), error pages,
//!                session save, CORS headers, compression, HEAD, access log
//!   virtual_hosts VirtualHosts: the frozen hosts, chosen by Host header
//!                (exact, wildcard, main)
//!   ws/          WebSocket hosts (`Host::ws`, in ws/mount.rs): plain and
//!                object mode, broadcasts, channels, bounded outboxes, the
//!                browser client simples.js (see the module's own map)
//!   prometheus   the Prometheus recorder and scrape page (feature
//!                `prometheus`); the hosts' metrics go through the
//!                `metrics` facade (ws/metrics.rs)
//!   host         Host: routes, error routes, middlewares, options; frozen
//!                into a ServedHost when the server starts; what runs
//!                beside the routes registers through `lifecycle`
//!   static_files/ a directory under a prefix (traversal-proof, symlinks
//!                checked) and single files, `Conn::file` (ETag, 304,
//!                Range 206/416)
//!   handler      Handler / Middleware traits; Next (the Chain of
//!                middlewares and error routes, then the endpoint)
//!   conn/        Conn: request getters, response setters and terminal
//!                calls (reply.rs), body readers with limits (read.rs),
//!                multipart (multipart.rs)
//!   lifecycle    Lifecycle: started and stopped with the server (the
//!                interface WebSocket hosts register through)
//!   context      HostContext: what a request needs from its host (body
//!                limit, session settings, templates)
//!   router       path patterns (fixed, :param, trailing *) and lookup
//!                (404 / 405 + Allow / OPTIONS), generic over the target
//!   compress     gzip/deflate/br from Accept-Encoding q-values
//!   cors         CORS with simpleS-style origin lists
//!   log          access log lines with a format, through tracing
//!   session/     cookie sessions, typed values, SessionStore trait, the
//!                expiring MemoryStore and RedisSessionStore (feature
//!                `redis`)
//!   template     TemplateEngine trait and the minijinja engine
//!   backplane/   scale-out across nodes: the Backplane trait (a leaf),
//!                the envelope format, RedisBackplane (feature `redis`)
//!   response     Response, IntoResponse, error pages
//!   body         the response Body and the request body a Conn reads
//!   head         the request head shared by Conn, CORS, compression, log
//!   headers      q-value lists, Host header normalization, charsets
//!   tls          rustls configuration from PEM files (ring provider)
//!   error        Error: the crate's one error type (carries the status)
//! ```
//!
//! A request runs through `dispatch`: the host is chosen from the `Host`
//! header, the router picks the handler (or a 404/405 endpoint), the host's
//! middlewares run around it in order, and any [`Error`] a handler returns
//! (or a panic, as `500`) is rendered by the host's error route for that
//! status. Taking a connection over (WebSocket) uses
//! [`Conn::upgrade`], hyper's upgrade mechanism.

#![warn(missing_docs)]

pub mod backplane;
mod body;
mod compress;
mod conn;
mod context;
mod cors;
mod dispatch;
mod error;
mod handler;
mod headers;
mod head;
mod host;
mod lifecycle;
mod log;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod response;
mod router;
mod server;
mod service;
mod session;
mod static_files;
mod template;
mod tls;
mod virtual_hosts;
pub mod ws;
mod fuzz;

pub use body::{Body, BoxError};
pub use conn::{Conn, Field, Multipart};
pub use cors::Cors;
pub use error::{Error, ErrorKind, Result};
pub use handler::{BoxFuture, Handler, Middleware, Next};
pub use host::{Host, HostOptions};
pub use log::{AccessLog, DEFAULT_LOG_FORMAT};
pub use response::{IntoResponse, Response};
pub use router::Params;
pub use server::{Running, Server, ServerOptions};
pub use service::{ClientInfo, ServerService};
pub use session::{MemoryStore, Session, SessionConfig, SessionData, SessionStore};
/// Scale-out on Redis (feature `redis`): the backplane and the session
/// store, next to [`MemoryStore`].
#[cfg(feature = "redis")]
pub use {
    backplane::{RedisBackplane, RedisBackplaneOptions},
    session::RedisSessionStore,
};
pub use static_files::StaticOptions;
pub use template::{MiniJinja, TemplateEngine};
pub use tls::Tls;
pub use ws::{WsConn, WsHost, WsOptions};
#[doc(hidden)]
pub use fuzz::http_headers as __fuzz_http_headers;

/// The `cookie` crate's cookie type, for [`Conn::set_cookie`].
pub use cookie::{Cookie, SameSite};
/// HTTP types used in the API.
pub use http::{self, HeaderMap, Method, StatusCode};
/// hyper's upgrade types, for [`Conn::upgrade`].
pub use hyper::upgrade::{OnUpgrade, Upgraded};

/// The README's examples (protocol crate and framework), compiled as
/// doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
