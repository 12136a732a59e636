//! Handlers and middlewares.
//!
//! A handler is any `Fn(Conn) -> impl Future<Output = impl IntoResponse>`;
//! a middleware is any `Fn(Conn, Next) -> impl Future<Output = impl
//! IntoResponse>`. A middleware may inspect or modify the request, answer
//! it itself (by not calling [`Next::run`]) or modify the response that
//! `next.run(conn).await` returns. A host's middlewares run in the order
//! they were added, around the route's handler.
//!
//! A request's [`Next`] holds the host's [`Chain`] (its middlewares, its
//! error routes and the [`HostContext`] their `Conn`s get) and the
//! [`Endpoint`] the router chose; nothing here knows the `Host` itself.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use http::{header, HeaderValue, Method, StatusCode};

use crate::conn::{Conn, SessionSlot};
use crate::context::HostContext;
use crate::error::Error;
use crate::head::Head;
use crate::response::{default_error_page, take_pending, IntoResponse, Response};
use crate::router::Params;

/// A boxed, sendable future (the `futures` crate's).
pub use futures_util::future::BoxFuture;

/// Something that answers a request: implemented for every
/// `Fn(Conn) -> impl Future<Output = impl IntoResponse>`.
pub trait Handler: Send + Sync + 'static {
    /// Answers the request of `conn`.
    fn call(&self, conn: Conn) -> BoxFuture<'static, Response>;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, conn: Conn) -> BoxFuture<'static, Response> {
        let fut = self(conn);
        Box::pin(async move { fut.await.into_response() })
    }
}

pub(crate) type BoxHandler = Arc<dyn Handler>;

/// A step of a host's middleware chain: implemented for every
/// `Fn(Conn, Next) -> impl Future<Output = impl IntoResponse>`.
pub trait Middleware: Send + Sync + 'static {
    /// Handles `conn`, usually by calling `next.run(conn).await`.
    fn call(&self, conn: Conn, next: Next) -> BoxFuture<'static, Response>;
}

impl<F, Fut, R> Middleware for F
where
    F: Fn(Conn, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, conn: Conn, next: Next) -> BoxFuture<'static, Response> {
        let fut = self(conn, next);
        Box::pin(async move { fut.await.into_response() })
    }
}

/// What a request ends at once the middlewares have run.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// A route's handler.
    Route(BoxHandler),
    /// No route has this path: 404.
    NotFound,
    /// The path exists for other methods: 405 with `Allow`.
    MethodNotAllowed(Arc<[Method]>),
    /// `OPTIONS` on a path without an `OPTIONS` route: 204 with `Allow`.
    Options(Arc<[Method]>),
}

/// A host's middlewares and error routes, frozen when the server starts,
/// with the context the error routes' `Conn`s get.
#[derive(Default)]
pub(crate) struct Chain {
    pub(crate) middlewares: Vec<Arc<dyn Middleware>>,
    pub(crate) errors: HashMap<u16, BoxHandler>,
    pub(crate) context: Arc<HostContext>,
}

impl Chain {
    /// Renders the page for `error` with the error route for its status
    /// (or the default text page), keeping headers of `original` (e.g.
    /// `Allow`) that the page does not set.
    pub(crate) async fn render_error(
        &self,
        head: Arc<Head>,
        slot: Option<SessionSlot>,
        error: Arc<Error>,
        original: Response,
    ) -> Response {
        let status = error.status();
        let mut page = match self.errors.get(&status.as_u16()) {
            Some(handler) => {
                let mut conn = Conn::new(head, Params::default(), self.context.clone(), None, None, slot);
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

/// The rest of the middleware chain, then the endpoint (the route's
/// handler, or the 404/405/`OPTIONS` answer).
pub struct Next {
    chain: Arc<Chain>,
    index: usize,
    endpoint: Endpoint,
}

impl Next {
    pub(crate) fn new(chain: Arc<Chain>, endpoint: Endpoint) -> Next {
        Next { chain, index: 0, endpoint }
    }

    /// Runs the remaining middlewares and the handler, and returns the
    /// response (error pages already rendered by the host's error routes).
    pub async fn run(self, conn: Conn) -> Response {
        if let Some(mw) = self.chain.middlewares.get(self.index).cloned() {
            let next = Next { chain: self.chain, index: self.index + 1, endpoint: self.endpoint };
            return mw.call(conn, next).await;
        }
        let chain = self.chain;
        let (head, slot) = (conn.head.clone(), conn.session_slot());
        let mut res = match self.endpoint {
            Endpoint::Route(handler) => call_caught(&*handler, conn).await,
            Endpoint::NotFound => Error::not_found("no route for this path").into_response(),
            Endpoint::MethodNotAllowed(allowed) => {
                let reason = format!("{} is not allowed here", head.method);
                let mut res = Error::new(405, reason).into_response();
                res.headers_mut().insert(header::ALLOW, allow_value(&allowed));
                res
            }
            Endpoint::Options(allowed) => {
                let mut res = Response::new(Default::default());
                *res.status_mut() = StatusCode::NO_CONTENT;
                res.headers_mut().insert(header::ALLOW, allow_value(&allowed));
                res
            }
        };
        if let Some(error) = take_pending(&mut res) {
            res = chain.render_error(head, slot, error, res).await;
        }
        res
    }
}

/// Calls `handler`, turning a panic into a pending `500`.
pub(crate) async fn call_caught(handler: &dyn Handler, conn: Conn) -> Response {
    match AssertUnwindSafe(handler.call(conn)).catch_unwind().await {
        Ok(res) => res,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %msg, "handler panicked; answering 500");
            Error::new(500, "the handler failed").into_response()
        }
    }
}

fn allow_value(methods: &[Method]) -> HeaderValue {
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::from_str(&list.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}
