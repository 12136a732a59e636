//! The per-request pipeline, outermost first:
//!
//! 1. choose the host from the `Host` header, route the path;
//! 2. CORS preflights are answered here (other CORS headers are added to
//!    the response at step 5);
//! 3. the host's middlewares, then the handler (or the 404/405/`OPTIONS`
//!    endpoint), panics caught and error pages rendered ([`Next::run`]);
//! 4. the session is saved and its cookie set;
//! 5. CORS headers, compression, `HEAD` body removal, access log.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{header, HeaderValue, Method, Request};
use hyper::upgrade::OnUpgrade;

use crate::body::{Body, BoxError, RequestBody};
use crate::conn::Conn;
use crate::error::Error;
use crate::handler::{Endpoint, Next};
use crate::head::Head;
use crate::headers::host_name;
use crate::host::ServedHost;
use crate::response::{default_error_page, take_pending, Response};
use crate::router::{Found, Params};
use crate::virtual_hosts::VirtualHosts;
use crate::{compress, cors, session};

/// Answers one request (any body: hyper's from the listeners, another
/// through `Server::service`).
pub(crate) async fn dispatch<B>(hosts: &VirtualHosts, req: Request<B>, peer: SocketAddr, secure: bool) -> Response
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<OnUpgrade>();
    let name = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.host())
        .map(host_name)
        .unwrap_or_default();
    let host = hosts.select(&name).clone();
    let head = Arc::new(Head {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        peer,
        secure,
        host: name,
    });

    if let Some(cors) = &host.options.cors {
        if let Some(res) = cors::preflight(cors, &head) {
            return finish(&host, &head, res, started);
        }
    }

    let (endpoint, params) = match host.router.find(&head.method, head.uri.path()) {
        Found::Route(handler, params) => (Endpoint::Route(handler.clone()), params),
        Found::OtherMethods(allowed) if head.method == Method::OPTIONS => {
            let mut allowed = allowed;
            allowed.push(Method::OPTIONS);
            (Endpoint::Options(allowed.into()), Params::default())
        }
        Found::OtherMethods(allowed) => (Endpoint::MethodNotAllowed(allowed.into()), Params::default()),
        Found::Nothing => (Endpoint::NotFound, Params::default()),
    };
    let slot = host.options.session.as_ref().map(|_| Arc::new(Mutex::new(None)));
    let conn = Conn::new(head.clone(), params, host.chain.context.clone(), Some(RequestBody::new(body)), upgrade, slot.clone());
    let next = Next::new(host.chain.clone(), endpoint);
    let mut res = match AssertUnwindSafe(next.run(conn)).catch_unwind().await {
        Ok(res) => res,
        Err(_) => {
            tracing::error!("a middleware panicked; answering 500");
            Error::new(500, "a middleware failed").into_response_page()
        }
    };
    if let Some(error) = take_pending(&mut res) {
        res = host.chain.render_error(head.clone(), slot.clone(), error, res).await;
    }
    if let (Some(config), Some(slot)) = (&host.options.session, slot) {
        let session = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(session) = session {
            if let Err(e) = session::finish(config, &session, secure, &mut res).await {
                tracing::error!(error = %e, "saving the session failed");
                res = default_error_page(&e);
            }
        }
    }
    finish(&host, &head, res, started)
}

/// The steps that apply to every response, including preflights.
fn finish(host: &ServedHost, head: &Head, mut res: Response, started: Instant) -> Response {
    if let Some(cors) = &host.options.cors {
        cors::decorate(cors, head, &mut res);
    }
    if host.options.compression {
        res = compress::maybe_compress(head, res);
    }
    if head.method == Method::HEAD {
        let len = res.body().len();
        *res.body_mut() = Body::empty();
        if let Some(len) = len.filter(|&n| n > 0) {
            if !res.headers().contains_key(header::CONTENT_LENGTH) {
                res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
    }
    if let Some(log) = &host.options.log {
        log.log(head, &res, started.elapsed());
    }
    res
}

impl Error {
    /// The default page for this error (used where no host route can run).
    fn into_response_page(self) -> Response {
        default_error_page(&self)
    }
}
