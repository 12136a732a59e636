//! [`Head`]: the request head of one request, shared (cheaply cloned)
//! by its [`Conn`](crate::Conn), the error routes, CORS, compression, the
//! access log and WebSocket connections. A leaf: it knows no other module.

use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version};

/// The request head, with where the request came from.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// The client's address (the TCP peer; for a service without a socket,
    /// what the request's `ConnectInfo` says, else `0.0.0.0:0`).
    pub(crate) peer: SocketAddr,
    /// Whether the request came over TLS.
    pub(crate) secure: bool,
    /// The normalized host name (lowercase, no port) the request was
    /// addressed to.
    pub(crate) host: String,
}
