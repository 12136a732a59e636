//! How a WebSocket host joins an HTTP host: [`Host::ws`] adds the handshake
//! route and registers the [`WsHost`] with the host through
//! [`Lifecycle`], the interface the server starts and stops it by (so that
//! `host` and `server` know nothing of WebSocket hosts).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::Method;

use super::state::WsConn;
use super::handshake::handshake;
use super::state::WsHost;
use super::options::WsOptions;
use crate::conn::Conn;
use crate::context::HostContext;
use crate::host::Host;
use crate::lifecycle::{Lifecycle, Together};

impl Host {
    /// Adds a WebSocket host at `path` (a route pattern: `/chat`,
    /// `/rooms/:room`): `GET` requests there are WebSocket handshakes,
    /// checked and accepted as `options` say, and `on_open` runs for each
    /// new connection (before its first message is handled: spawn
    /// long-running work, such as a periodic update, with `tokio::spawn`
    /// rather than looping in it). Register the
    /// other handlers on the returned [`WsHost`](crate::ws::WsHost), which also
    /// broadcasts and manages channels.
    ///
    /// ```no_run
    /// # async fn run() -> simples::Result<()> {
    /// use simples::{Server, ws::WsOptions};
    ///
    /// let mut server = Server::new("127.0.0.1:8080");
    /// let chat = server.ws("/chat", WsOptions::object(), |conn| async move {
    ///     let _ = conn.send_event("welcome", &conn.id());
    /// });
    /// chat.on("say", |conn, text| async move {
    ///     conn.host().broadcast_event("said", &text)
    /// });
    /// server.start().await?.wait().await;
    /// # Ok(()) }
    /// ```
    pub fn ws<F, Fut>(&mut self, path: &str, options: WsOptions, on_open: F) -> WsHost
    where
        F: Fn(WsConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let ws = WsHost::new(path, options);
        ws.set_open(on_open);
        let route = ws.clone();
        self.route(Some(Method::GET), path, move |conn: Conn| handshake(route.clone(), conn));
        self.attach(Arc::new(ws.clone()));
        ws
    }
}

impl Lifecycle for WsHost {
    fn started(&self, context: &HostContext, together: &Together) {
        self.attach_templates(context.templates.clone());
        self.resume();
        super::looped::start_with_server(&self.shared, together);
    }

    fn stop(&self, deadline: Duration) -> BoxFuture<'static, ()> {
        let ws = self.clone();
        Box::pin(async move {
            ws.shutdown(deadline).await;
            super::looped::stop(&ws.shared).await;
        })
    }
}
