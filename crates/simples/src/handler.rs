//! Handlers and middlewares.
//!
//! A handler is any `Fn(Conn) -> impl Future<Output = impl IntoResponse>`;
//! a middleware is any `Fn(Conn, Next) -> impl Future<Output = impl
//! IntoResponse>`. A middleware may inspect or modify the request, answer
//! it itself (by not calling [`Next::run`]) or modify the response that
//! `next.run(conn).await` returns. A host's middlewares run in the order
//! they were added, around the route's handler.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt as _;
use http::{header, HeaderValue, Method, StatusCode};

use crate::conn::Conn;
use crate::error::Error;
use crate::host::Host;
use crate::response::{take_pending, IntoResponse, Response};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// The rest of the middleware chain, then the route's handler.
pub struct Next {
    host: Arc<Host>,
    index: usize,
    endpoint: Endpoint,
}

impl Next {
    pub(crate) fn new(host: Arc<Host>, endpoint: Endpoint) -> Next {
        Next { host, index: 0, endpoint }
    }

    /// Runs the remaining middlewares and the handler, and returns the
    /// response (error pages already rendered by the host's error routes).
    pub async fn run(self, conn: Conn) -> Response {
        if let Some(mw) = self.host.middlewares.get(self.index).cloned() {
            let next = Next { host: self.host, index: self.index + 1, endpoint: self.endpoint };
            return mw.call(conn, next).await;
        }
        let host = self.host;
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
            res = host.render_error(head, slot, error, res).await;
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
