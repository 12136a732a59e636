//! [`Accept`]: what the application decided about a valid handshake
//! request, the same for every server driver (tokio `accept_with` and
//! `ServerHandshake::accept`, the event loop's `EventHandler::on_open`).

use crate::proto::Config;

/// What the application decided about a handshake request: the 101's
/// subprotocol and extra headers, and the connection's settings.
///
/// ```
/// use simples_ws::handshake::Accept;
///
/// let accept = Accept { protocol: Some("chat".into()), ..Accept::default() };
/// assert!(accept.headers.is_empty() && accept.config.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Accept {
    /// The subprotocol to answer with; it must be one the client offered.
    /// `None` (the default) negotiates from the driver's options
    /// (`AcceptOptions::protocols`, the event loop's `Options::protocols`).
    pub protocol: Option<String>,
    /// Extra response headers (e.g. `Set-Cookie`). Default: none.
    pub headers: Vec<(String, String)>,
    /// This connection's protocol settings; `None` (the default) keeps the
    /// driver's options' `config`.
    pub config: Option<Config>,
}
