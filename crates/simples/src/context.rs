//! [`HostContext`]: what a request needs from the host that answers it
//! (the body limit, the session settings, the template engine), frozen
//! when the server starts and shared by every [`Conn`](crate::Conn) of the
//! host. A leaf below `conn`: a `Conn` holds this, not the `Host`, so that
//! the request side knows nothing of routing, middlewares or WebSocket
//! hosts. (The error routes are handlers, which take a `Conn`: they travel
//! with the middleware chain, in `handler::Chain`.)

use std::sync::Arc;

use crate::session::SessionConfig;
use crate::template::TemplateEngine;

/// A host's settings as its requests see them.
#[derive(Clone)]
pub(crate) struct HostContext {
    /// Largest request body the body readers accept (`HostOptions::body_limit`).
    pub(crate) body_limit: usize,
    /// The host's sessions, when enabled (`HostOptions::session`).
    pub(crate) session: Option<SessionConfig>,
    /// The engine of `Conn::render` (`Host::templates`).
    pub(crate) templates: Option<Arc<dyn TemplateEngine>>,
}

impl Default for HostContext {
    /// A host with default options: 1 MiB bodies, no sessions, no templates.
    fn default() -> Self {
        HostContext { body_limit: 1 << 20, session: None, templates: None }
    }
}
