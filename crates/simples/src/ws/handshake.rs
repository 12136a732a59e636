//! The opening handshake of a WebSocket host, on top of the request hyper
//! has parsed: validation (RFC 6455 §4.2.1), the origin check, the
//! application's `authorize` hook, subprotocol and permessage-deflate
//! negotiation, then `101 Switching Protocols` (§4.2.2) and the connection's
//! task once hyper hands the connection over.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use simples_ws::deflate::DeflateExtension;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use simples_ws::handshake::{accept_key, header_has_token, WEBSOCKET_VERSION};

use super::conn::{RequestInfo, WsConn};
use super::driver;
use super::host::WsHost;
use super::options::Origins;
use crate::body::Body;
use crate::conn::{Conn, Head};
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
            res
        }
        Err(e) => {
            ws.shared.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let status = e.status();
            ws.shared.metrics().refused(status.as_u16());
            tracing::debug!(%path, %peer, status = status.as_u16(), reason = e.reason(), "WebSocket handshake refused");
            let mut res = e.into_response();
            if status == StatusCode::UPGRADE_REQUIRED {
                // RFC 6455 §4.4: name the version this server speaks.
                res.headers_mut().insert("sec-websocket-version", HeaderValue::from_static(WEBSOCKET_VERSION));
                res.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            }
            res
        }
    }
}

async fn accept(ws: &WsHost, mut conn: Conn) -> Result<Response, Error> {
    let key = validate(conn.head.version, conn.headers())?;
    check_origin(&ws.shared.options.origins, &conn)?;
    let authorize = ws.shared.authorize_hook();
    if let Some(hook) = authorize {
        conn = hook(conn).await?;
    }
    let session = match conn.host.options.session.clone() {
        Some(config) => Some((conn.session().await?, config)),
        None => None,
    };
    let options = &ws.shared.options;
    let offered: Vec<&str> = values(conn.headers(), "sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    // RFC 6455 §4.2.2 item 5.5: at most one of the client's values.
    let protocol = offered.iter().find(|p| options.protocols.iter().any(|s| s == *p)).map(|p| p.to_string());
    let deflate = options
        .deflate
        .as_ref()
        .and_then(|d| d.accept_offers(values(conn.headers(), "sec-websocket-extensions")));
    // `validate` refused what hyper cannot upgrade (HTTP/1.0, a body):
    // without an upgrade now, the application's `authorize` hook took it.
    let on_upgrade = conn.upgrade().ok_or_else(|| Error::new(500, "the connection cannot be upgraded"))?;

    let request = RequestInfo {
        head: std::sync::Arc::new(detached(&conn.head)),
        params: conn.params().clone(),
        query: conn.query_pairs().to_vec(),
        cookies: conn.cookies().map(|c| c.to_vec()).unwrap_or_default(),
        languages: conn.languages(),
        protocol: protocol.clone(),
        data: conn.take_data(),
        session,
    };

    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert("sec-websocket-accept", header_value(&accept_key(key.as_bytes()))?);
    if let Some(p) = &protocol {
        headers.insert("sec-websocket-protocol", header_value(p)?);
    }
    if let Some((_, agreed)) = &deflate {
        headers.insert("sec-websocket-extensions", header_value(agreed)?);
    }

    // Counted from here until the connection registers, so that a stop
    // that starts meanwhile waits for it and closes it.
    if !ws.shared.begin_upgrade() {
        return Err(Error::new(503, "the server is shutting down"));
    }
    // What waits for hyper to hand the connection over is kept small: it is
    // part of every connection's task for the connection's whole life.
    let extension = deflate.map(|(ext, _)| Box::new(ext));
    let conn = WsConn::new(ws.shared.next_id(), ws.shared.clone(), request);
    // Every event of the connection's task carries who it is.
    let span = tracing::info_span!("ws", id = conn.id(), peer = %conn.peer_addr(), host = %conn.host_name(), path = %conn.path());
    let fut = async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                conn.inner.host.end_upgrade();
                return;
            }
        };
        into_driver(upgraded, extension, conn).await;
    };
    tokio::spawn(tracing::Instrument::instrument(fut, span));
    Ok(res)
}

/// The connection's task body. Back to the socket itself when it is one of
/// the listeners' types: no dynamic dispatch per read and write, and
/// hyper's read buffer (8 KiB or more, kept alive by the leftover bytes'
/// view of it) is released, the few leftover bytes being copied. A plain
/// function returning a boxed future, so that the task holds just the one
/// driver that runs.
fn into_driver(upgraded: Upgraded, extension: Option<Box<DeflateExtension>>, conn: WsConn) -> BoxFuture<'static, ()> {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (io, leftover) = (parts.io.into_inner(), parts.read_buf.to_vec());
            return Box::pin(async move { driver::run(io, &leftover, extension, conn).await });
        }
        Err(upgraded) => upgraded,
    };
    let upgraded = match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let (io, leftover) = (parts.io.into_inner(), parts.read_buf.to_vec());
            return Box::pin(async move { driver::run(io, &leftover, extension, conn).await });
        }
        Err(upgraded) => upgraded,
    };
    Box::pin(driver::run(TokioIo::new(upgraded), &[], extension, conn))
}

/// A copy of the request head that owns its bytes: hyper's header values
/// and URI are views of its 8 KiB read buffer, which they would keep alive
/// for the connection's whole life.
fn detached(head: &Head) -> Head {
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for (name, value) in &head.headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    Head {
        method: head.method.clone(),
        uri: head.uri.to_string().parse().unwrap_or_else(|_| head.uri.clone()),
        version: head.version,
        headers,
        peer: head.peer,
        secure: head.secure,
        host: head.host.clone(),
    }
}

fn header_value(s: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(s).map_err(|_| Error::new(500, "invalid handshake header value"))
}

/// Every value of header `name`, as text.
fn values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok())
}

/// RFC 6455 §4.2.1: the checks on the client's opening handshake (the
/// method is `GET` by routing). Returns the key. Every refusal is the
/// client's error: a 4xx with the reason.
pub(crate) fn validate(version: http::Version, headers: &HeaderMap) -> Result<String, Error> {
    // §4.2.1 item 1: "An HTTP/1.1 or higher GET request"; hyper upgrades
    // only HTTP/1.1 connections (HTTP/2 has no Upgrade, RFC 9113 §8.6).
    if version != http::Version::HTTP_11 {
        return Err(Error::bad_request(format!("a WebSocket handshake is an HTTP/1.1 request, not {version:?}")));
    }
    // §4.1: the client sends frames only once the server's 101 arrived;
    // body bytes would be taken for the first frames.
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || values(headers, "content-length").any(|v| v.trim() != "0");
    if has_body {
        return Err(Error::bad_request("a WebSocket handshake request has no body"));
    }
    let has = |name: &str, token: &str| values(headers, name).any(|v| header_has_token(v, token));
    // §4.2.1 items 3 and 4: `Upgrade: websocket`, `Connection: Upgrade`.
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(Error::new(426, "this is a WebSocket endpoint: upgrade required"));
    }
    // §4.2.1 item 6 and §4.4: version 13, else 426 with the versions we speak.
    let versions: Vec<&str> = values(headers, "sec-websocket-version").collect();
    if versions.len() != 1 || versions[0].trim() != WEBSOCKET_VERSION {
        return Err(Error::new(426, "unsupported Sec-WebSocket-Version (13 expected)"));
    }
    // §4.2.1 item 5: the key is 16 bytes, base64-encoded, sent once.
    let keys: Vec<&str> = values(headers, "sec-websocket-key").collect();
    let key = match keys.as_slice() {
        [key] => key.trim(),
        _ => return Err(Error::bad_request("exactly one Sec-WebSocket-Key header expected")),
    };
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(bytes) if bytes.len() == 16 => Ok(key.to_string()),
        _ => Err(Error::bad_request("Sec-WebSocket-Key is not 16 bytes in base64")),
    }
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

    #[test]
    fn validation_names_the_problem() {
        let mut h = HeaderMap::new();
        let validate = |h: &HeaderMap| validate(http::Version::HTTP_11, h);
        assert_eq!(validate(&h).unwrap_err().status(), 426);
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("connection", HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(validate(&h).unwrap_err().status(), 426);
        h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        assert_eq!(validate(&h).unwrap_err().status(), 400);
        h.insert("sec-websocket-key", HeaderValue::from_static("c2hvcnQ="));
        assert_eq!(validate(&h).unwrap_err().status(), 400);
        h.insert("sec-websocket-key", HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(validate(&h).unwrap(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(super::validate(http::Version::HTTP_10, &h).unwrap_err().status(), 400);
        h.insert("content-length", HeaderValue::from_static("5"));
        assert_eq!(validate(&h).unwrap_err().status(), 400);
        h.insert("content-length", HeaderValue::from_static("0"));
        assert_eq!(validate(&h).unwrap(), "dGhlIHNhbXBsZSBub25jZQ==");
    }
}
