//! The opening handshake of a WebSocket host, on top of the request hyper
//! has parsed: validation (RFC 6455 §4.2.1), the origin check, the
//! application's `authorize` hook, subprotocol and permessage-deflate
//! negotiation, then `101 Switching Protocols` (§4.2.2) and the connection's
//! task once hyper hands the connection over.

use std::sync::Arc;

use http::HeaderValue;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use simples_ws::deflate::DeflateExtension;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use simples_ws::{Protocol, Role};
use simples_ws::handshake::{HandshakeError, HandshakeErrorKind, HttpHead, NonUpgrade, Offer, ServerPolicy};

use super::admission::Slot;
use super::driver;
use super::looped;
use super::signal::Signal;
use super::state::{Adoption, WsConn, WsHost, WsShared};
use super::options::Origins;
use super::request::RequestInfo;
use crate::body::Body;
use crate::conn::Conn;
use crate::error::Error;
use crate::handler::BoxFuture;
use crate::response::{IntoResponse, Response};

/// Answers a request to a WebSocket host's path.
pub(crate) async fn handshake(ws: WsHost, conn: Conn) -> Response {
    let started = std::time::Instant::now();
    let (path, peer) = (conn.path().to_string(), conn.head.peer);
    match accept(&ws, conn).await {
        Ok(res) => {
            ws.shared.metrics().accepted(started.elapsed());
            super::trim::handshake_done();
            res
        }
        Err(e) => {
            ws.shared.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let status = e.status();
            ws.shared.metrics().refused(status.as_u16());
            tracing::debug!(%path, %peer, status = status.as_u16(), reason = e.reason(), "WebSocket handshake refused");
            let mut res = e.into_response();
            // The headers the status requires (426: the version this
            // server speaks, RFC 6455 §4.2.2 item 4; 405: Allow), from the
            // protocol crate's one decision, whoever refused.
            let kind = HandshakeErrorKind::Rejected { status: status.as_u16() };
            for (name, value) in HandshakeError::new(kind, "").response_headers() {
                if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                    res.headers_mut().insert(name, HeaderValue::from_static(value));
                }
            }
            res
        }
    }
}

async fn accept(ws: &WsHost, mut conn: Conn) -> Result<Response, Error> {
    let head = HttpHead { method: &conn.head.method, version: conn.head.version, headers: &conn.head.headers };
    // RFC 6455 §4.2.1, the one rule: a plain GET to a WebSocket path is
    // told to upgrade (426).
    let offer = Offer::from_head(&head, NonUpgrade::UpgradeRequired).map_err(refused)?;
    check_origin(&ws.shared.options.origins, &conn)?;
    // Taken before any application hook runs; released when the connection
    // ends (the task below keeps it) or when this handshake is refused.
    let mut slot = ws.shared.admission.admit(conn.head.peer.ip(), &ws.shared.options)?;
    let authorize = ws.shared.authorize_hook();
    if let Some(hook) = authorize {
        conn = hook(conn).await?;
    }
    let session = match conn.context.session.clone() {
        Some(config) => Some((conn.session().await?, config)),
        None => None,
    };
    let options = &ws.shared.options;
    let policy = ServerPolicy {
        protocols: options.protocols.clone(),
        deflate: options.deflate.clone(),
        non_upgrade: NonUpgrade::UpgradeRequired,
    };
    let decision = policy.negotiate(offer);
    // The rule refused what hyper cannot upgrade (HTTP/1.0, a body):
    // without an upgrade now, the application's `authorize` hook took it.
    let on_upgrade = conn.upgrade().ok_or_else(|| Error::new(500, "the connection cannot be upgraded"))?;

    let request = RequestInfo::new(&mut conn, decision.protocol(), session);
    let res = decision.response().map(|()| Body::empty());

    // Counted from here until the connection registers, so that a stop
    // that starts meanwhile waits for it and closes it.
    if !ws.shared.begin_upgrade() {
        return Err(Error::new(503, "the server is shutting down"));
    }
    // What waits for hyper to hand the connection over is kept small: it is
    // part of every connection's task for the connection's whole life.
    let extension = decision.into_negotiated().deflate.map(Box::new);
    let id = ws.shared.next_id();
    // Every event of the connection's task carries who it is.
    let span = tracing::info_span!("ws", id, peer = %request.peer(), host = %request.host(), path = %request.path());
    let host = ws.shared.clone();
    // Boxed while it waits: the task's future keeps room for what it holds
    // across the wait for the connection's whole life (a task driving the
    // connection took 144 B more with the request inline).
    let request = Box::new(request);
    // (`slot` is used in place: a copy into a local would take room in the
    // task for the connection's life.)
    let fut = async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                host.end_upgrade();
                return;
            }
        };
        if let Some(driver) = into_driver(upgraded, extension, host, id, request, &mut slot) {
            driver.await;
        }
    };
    tokio::spawn(tracing::Instrument::instrument(fut, span));
    Ok(res)
}

/// The connection's task body, or `None` once a plain-TCP connection went
/// to the host's event loops (`looped.rs`, with the admission `slot`).
/// Back to the socket itself when it is one of the listeners' types: no
/// dynamic dispatch per read and write, and hyper's read buffer (8 KiB or
/// more, kept alive by the leftover bytes' view of it) is released, the
/// few leftover bytes being copied. A plain function returning the boxed
/// driver, so that the task holds just the one driver that runs (a task's
/// allocation is a multiple of 128 bytes: the driver inside the task took
/// more than the two allocations).
// `request` comes boxed from the task that waited for the upgrade (see
// `accept`) and is unboxed here, so that the box is freed now: moved out of
// in the task itself, it would be freed only when the task ends.
#[allow(clippy::boxed_local)]
fn into_driver(
    upgraded: Upgraded,
    extension: Option<Box<DeflateExtension>>,
    host: Arc<WsShared>,
    id: u64,
    request: Box<RequestInfo>,
    slot: &mut Option<Slot>,
) -> Option<BoxFuture<'static, ()>> {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let stream = parts.io.into_inner();
            if host.options.event_loop {
                match looped::lane(&host) {
                    Ok(lane) => {
                        let stream = match stream.into_std() {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(id, error = %e, "WebSocket connection could not leave tokio");
                                host.end_upgrade();
                                return None;
                            }
                        };
                        let adoption = Adoption { stream, protocol: Protocol::new(Role::Server, host.config.clone()), host, id, request: *request, slot: slot.take() };
                        looped::adopt(&lane, adoption, &parts.read_buf, extension);
                        return None;
                    }
                    Err(e) => tracing::warn!(error = %e, "WebSocket event loops could not start; the connection runs as a task"),
                }
            }
            let conn = WsConn::new(id, host, *request, Signal::default());
            let ws = driver::socket(stream, &parts.read_buf, extension, &conn);
            return Some(Box::pin(driver::run(ws, conn)));
        }
        Err(upgraded) => upgraded,
    };
    let conn = WsConn::new(id, host, *request, Signal::default());
    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let ws = driver::socket(parts.io.into_inner(), &parts.read_buf, extension, &conn);
            Some(Box::pin(driver::run(ws, conn)))
        }
        Err(upgraded) => Some(Box::pin(driver::run(driver::socket(TokioIo::new(upgraded), &[], extension, &conn), conn))),
    }
}

/// A refusal of the rule, as the framework's error (its status and reason).
fn refused(e: HandshakeError) -> Error {
    Error::new(e.status(), e.reason())
}

/// Cross-site WebSocket hijacking protection: browsers always send
/// `Origin`, and a page of another site must not use the visitor's cookies
/// on this host unless allowed (RFC 6455 §10.2).
fn check_origin(origins: &Origins, conn: &Conn) -> Result<(), Error> {
    let Some(origin) = conn.header("origin") else {
        return Ok(());
    };
    let same_host = || {
        let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        let host = conn.header("host").unwrap_or("");
        !authority.is_empty() && same_authority(authority, host, conn.is_secure())
    };
    let allowed = match origins {
        Origins::Any => true,
        Origins::SameHost => same_host(),
        Origins::List(list) => same_host() || list.iter().any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/'))),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::new(403, format!("origin {origin:?} is not allowed")))
    }
}

/// `host[:port]` equality, with the scheme's default port made explicit.
pub(crate) fn same_authority(a: &str, b: &str, secure: bool) -> bool {
    let default = if secure { "443" } else { "80" };
    let norm = |s: &str| {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let has_port = s.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && !p.contains(']') && p.bytes().all(|b| b.is_ascii_digit()));
        if has_port {
            s
        } else {
            format!("{s}:{default}")
        }
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_compare_with_default_ports() {
        assert!(same_authority("example.com", "example.com:80", false));
        assert!(same_authority("Example.COM:8080", "example.com:8080", false));
        assert!(!same_authority("example.com:8080", "example.com", false));
        assert!(same_authority("[::1]:3000", "[::1]:3000", false));
        assert!(same_authority("[::1]", "[::1]:443", true));
        assert!(!same_authority("evil.com", "example.com", false));
    }
}
