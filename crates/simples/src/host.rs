//! [`Host`]: one virtual host's routes, error routes, middlewares and
//! options ([`HostOptions`]), and what the host becomes when the server
//! starts ([`ServedHost`]: frozen, shared by its requests).
//!
//! What runs beside the routes (WebSocket hosts, `Host::ws` in `ws`)
//! registers through [`Lifecycle`]: this module knows no WebSocket type.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use http::Method;

use crate::conn::Conn;
use crate::context::HostContext;
use crate::cors::Cors;
use crate::handler::{BoxHandler, Chain, Handler, Middleware, Next};
use crate::lifecycle::Lifecycle;
use crate::log::AccessLog;
use crate::response::IntoResponse;
use crate::router::Router;
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
    router: Router<BoxHandler>,
    errors: HashMap<u16, BoxHandler>,
    middlewares: Vec<Arc<dyn Middleware>>,
    options: HostOptions,
    templates: Option<Arc<dyn TemplateEngine>>,
    attached: Vec<Arc<dyn Lifecycle>>,
}

/// A host as a running server serves it: routes, the middleware chain
/// (with the error routes and the requests' context) and the options the
/// pipeline applies (CORS, compression, access log, sessions).
pub(crate) struct ServedHost {
    pub(crate) router: Router<BoxHandler>,
    pub(crate) chain: Arc<Chain>,
    pub(crate) options: HostOptions,
    pub(crate) attached: Vec<Arc<dyn Lifecycle>>,
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

    /// Registers what must run beside the routes, started and stopped
    /// with the server (a WebSocket host).
    pub(crate) fn attach(&mut self, part: Arc<dyn Lifecycle>) {
        self.attached.push(part);
    }

    /// The host as the server serves it, from now on unchangeable.
    pub(crate) fn freeze(self) -> ServedHost {
        let context = Arc::new(HostContext {
            body_limit: self.options.body_limit,
            session: self.options.session.clone(),
            templates: self.templates,
        });
        let chain = Arc::new(Chain { middlewares: self.middlewares, errors: self.errors, context });
        ServedHost { router: self.router, chain, options: self.options, attached: self.attached }
    }
}
