//! [`Host`]: one virtual host's routes, error routes, middlewares and
//! options ([`HostOptions`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use http::Method;

use crate::conn::{Conn, Head, SessionSlot};
use crate::cors::Cors;
use crate::error::Error;
use crate::handler::{call_caught, BoxHandler, Handler, Middleware, Next};
use crate::log::AccessLog;
use crate::response::{default_error_page, take_pending, IntoResponse, Response};
use crate::router::{Params, Router};
use crate::session::SessionConfig;
use crate::static_files::{StaticDir, StaticOptions};
use crate::template::TemplateEngine;

/// A host's options. Every field has a default (`HostOptions::default()`).
#[derive(Clone)]
pub struct HostOptions {
    /// Largest request body the body readers accept, in bytes; more is
    /// answered with `413`. Default: `1_048_576` (1 MiB).
    pub body_limit: usize,
    /// Compress responses (br, gzip, deflate) as negotiated from
    /// `Accept-Encoding`. Default: `false`.
    pub compression: bool,
    /// Cross-origin resource sharing. Default: `None` (no CORS headers).
    pub cors: Option<Cors>,
    /// Access log lines through `tracing` (target `simples::access`).
    /// Default: `None` (no access log).
    pub log: Option<AccessLog>,
    /// Cookie-identified sessions. Default: `None` (sessions off;
    /// `Conn::session` fails).
    pub session: Option<SessionConfig>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions { body_limit: 1 << 20, compression: false, cors: None, log: None, session: None }
    }
}

/// A virtual host: routes, error routes, a middleware chain, options and a
/// template engine. The server's main host answers requests whose `Host`
/// header matches no named host.
#[derive(Default)]
pub struct Host {
    pub(crate) router: Router,
    pub(crate) errors: HashMap<u16, BoxHandler>,
    pub(crate) middlewares: Vec<Arc<dyn Middleware>>,
    pub(crate) options: HostOptions,
    pub(crate) templates: Option<Arc<dyn TemplateEngine>>,
    pub(crate) ws_hosts: Vec<crate::ws::WsHost>,
}

macro_rules! method_routes {
    ($($(#[$doc:meta])* $name:ident => $method:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name<F, Fut, R>(&mut self, path: &str, handler: F) -> &mut Self
            where
                F: Fn(Conn) -> Fut + Send + Sync + 'static,
                Fut: Future<Output = R> + Send + 'static,
                R: IntoResponse,
            {
                self.route(Some($method), path, handler)
            }
        )*
    };
}

impl Host {
    /// Adds a WebSocket host at `path` (a route pattern: `/chat`,
    /// `/rooms/:room`): `GET` requests there are WebSocket handshakes,
    /// checked and accepted as `options` say, and `on_open` runs for each
    /// new connection (before its first message is handled: spawn
    /// long-running work, such as a periodic update, with `tokio::spawn`
    /// rather than looping in it). Register the
    /// other handlers on the returned [`WsHost`](crate::WsHost), which also
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
    pub fn ws<F, Fut>(&mut self, path: &str, options: crate::ws::WsOptions, on_open: F) -> crate::ws::WsHost
    where
        F: Fn(crate::ws::WsConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let ws = crate::ws::WsHost::new(path, options);
        ws.set_open(on_open);
        let handshake = ws.clone();
        self.route(Some(Method::GET), path, move |conn: Conn| crate::ws::handshake(handshake.clone(), conn));
        self.ws_hosts.push(ws.clone());
        ws
    }

    /// A host with no routes and default options.
    pub fn new() -> Host {
        Host::default()
    }

    /// Adds a route for `method` (`None`: every method) and `path` (fixed
    /// text, `:name` parameters, a final `*` wildcard; a trailing `/`
    /// matters). Takes any [`Handler`]; the method shortcuts (`get`,
    /// `post`...) take closures so that `|conn| async move { ... }` needs
    /// no type annotation.
    pub fn route(&mut self, method: Option<Method>, path: &str, handler: impl Handler) -> &mut Self {
        self.router.add(method, path, Arc::new(handler));
        self
    }

    method_routes! {
        /// Adds a `GET` route (it also answers `HEAD`, without the body).
        get => Method::GET;
        /// Adds a `POST` route.
        post => Method::POST;
        /// Adds a `PUT` route.
        put => Method::PUT;
        /// Adds a `PATCH` route.
        patch => Method::PATCH;
        /// Adds a `DELETE` route.
        delete => Method::DELETE;
        /// Adds a `HEAD` route (overrides the answer from `GET`).
        head => Method::HEAD;
        /// Adds an `OPTIONS` route (without one, `OPTIONS` on a known path
        /// answers `204` with `Allow`).
        options => Method::OPTIONS;
    }

    /// Adds a route answering every method.
    pub fn all<F, Fut, R>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.route(None, path, handler)
    }

    /// Sets the error route for `status` (404, 405, 413, 500, ...). It
    /// receives a `Conn` for the failed request (no body, status already
    /// set; [`Conn::error`] tells why).
    pub fn error<F, Fut, R>(&mut self, status: u16, handler: F) -> &mut Self
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.errors.insert(status, Arc::new(handler));
        self
    }

    /// Appends a middleware to the chain (run in the order added).
    pub fn middleware<F, Fut, R>(&mut self, middleware: F) -> &mut Self
    where
        F: Fn(Conn, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.middleware_from(middleware)
    }

    /// Appends any [`Middleware`] (e.g. a struct implementing it).
    pub fn middleware_from(&mut self, middleware: impl Middleware) -> &mut Self {
        self.middlewares.push(Arc::new(middleware));
        self
    }

    /// Serves the files of `dir` under `prefix` (e.g. `"/static"`, or `"/"`)
    /// for `GET` and `HEAD`, with default [`StaticOptions`].
    pub fn serve_dir(&mut self, prefix: &str, dir: impl Into<PathBuf>) -> &mut Self {
        self.serve_dir_with(prefix, dir, StaticOptions::default())
    }

    /// Like [`serve_dir`](Self::serve_dir) with options.
    pub fn serve_dir_with(&mut self, prefix: &str, dir: impl Into<PathBuf>, options: StaticOptions) -> &mut Self {
        let pattern = format!("{}/*", prefix.trim_end_matches('/'));
        let dir = Arc::new(StaticDir::new(dir.into(), options));
        self.get(&pattern, move |conn: Conn| {
            let dir = dir.clone();
            async move { dir.serve(conn).await }
        })
    }

    /// Replaces all options.
    pub fn set_options(&mut self, options: HostOptions) -> &mut Self {
        self.options = options;
        self
    }

    /// The options, to change one.
    pub fn options_mut(&mut self) -> &mut HostOptions {
        &mut self.options
    }

    /// Sets the template engine used by [`Conn::render`].
    pub fn templates(&mut self, engine: impl TemplateEngine) -> &mut Self {
        self.templates = Some(Arc::new(engine));
        self
    }

    /// Renders the page for `error` with this host's error route (or the
    /// default text page), keeping headers of `original` (e.g. `Allow`)
    /// that the page does not set.
    pub(crate) async fn render_error(
        self: &Arc<Self>,
        head: Arc<Head>,
        slot: Option<SessionSlot>,
        error: Arc<Error>,
        original: Response,
    ) -> Response {
        let status = error.status();
        let mut page = match self.errors.get(&status.as_u16()) {
            Some(handler) => {
                let mut conn = Conn::new(head, Params::default(), self.clone(), None, None, slot);
                conn.set_status(status.as_u16());
                conn.set_data(ErrorInfo(error.clone()));
                let mut page = call_caught(&**handler, conn).await;
                match take_pending(&mut page) {
                    Some(e) => default_error_page(&e),
                    None => page,
                }
            }
            None => default_error_page(&error),
        };
        for (name, value) in original.headers() {
            if !page.headers().contains_key(name) {
                page.headers_mut().insert(name.clone(), value.clone());
            }
        }
        page
    }
}

/// The error an error route is answering, from [`Conn::error`].
#[derive(Clone)]
pub(crate) struct ErrorInfo(pub(crate) Arc<Error>);

impl Conn {
    /// In an error route: the error being answered (status and reason).
    pub fn error(&self) -> Option<&Error> {
        self.data::<ErrorInfo>().map(|e| &*e.0)
    }
}
