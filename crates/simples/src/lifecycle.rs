//! [`Lifecycle`]: the small interface through which what runs beside a
//! host's routes (its WebSocket hosts) registers with the host
//! (`Host::attach`), so that `host` and the server that starts and stops it
//! need not know what it is. A leaf.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::context::HostContext;

/// Something a host keeps alive between requests, told when the server
/// starts serving and when it stops.
pub(crate) trait Lifecycle: Send + Sync + 'static {
    /// The server starts (or restarts) serving: `context` is the frozen
    /// settings of the host it belongs to. Called once per start.
    fn started(&self, context: &HostContext);

    /// The server stops: end gracefully within `deadline`.
    fn stop(&self, deadline: Duration) -> BoxFuture<'static, ()>;
}
