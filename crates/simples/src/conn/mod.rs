//! [`Conn`]: one request and the response being prepared for it.
//!
//! The request side lives here (method, path, query, params, headers,
//! cookies, client address, languages, upgrade); `reply.rs` builds the
//! response (status, headers, cookies, then one terminal `send`-like call),
//! `read.rs` reads the body (bytes, text, JSON, forms) and `multipart.rs`
//! multipart forms.

mod multipart;
mod read;
pub(crate) mod reply;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use http::{HeaderMap, Method, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;

use crate::body::RequestBody;
use crate::context::HostContext;
use crate::error::{Error, Result};
use crate::head::Head;
use crate::headers;
use crate::router::Params;
use crate::session::Session;

pub use multipart::{Field, Multipart};

pub(crate) type SessionSlot = Arc<Mutex<Option<Session>>>;

/// One request and the response being prepared for it: what every handler
/// and middleware receives.
///
/// Read the request with the getters ([`method`](Conn::method),
/// [`path`](Conn::path), [`query`](Conn::query), [`param`](Conn::param),
/// [`header`](Conn::header), [`cookie`](Conn::cookie), ...), the body with
/// the async readers ([`bytes`](Conn::bytes), [`json`](Conn::json),
/// [`form`](Conn::form), [`multipart`](Conn::multipart)), prepare the
/// response with the setters ([`set_status`](Conn::set_status),
/// [`set_header`](Conn::set_header), [`set_cookie`](Conn::set_cookie)) and
/// finish with one terminal call ([`send`](Conn::send),
/// [`json_response`](Conn::json_response), [`redirect`](Conn::redirect),
/// [`file`](Conn::file), [`render`](Conn::render), ...) that returns the
/// [`Response`](crate::Response).
pub struct Conn {
    pub(crate) head: Arc<Head>,
    pub(crate) params: Params,
    /// What the request needs from its host (limits, sessions, templates).
    pub(crate) context: Arc<HostContext>,
    body: Option<RequestBody>,
    body_limit: usize,
    upgrade: Option<OnUpgrade>,
    status: StatusCode,
    headers: HeaderMap,
    data: http::Extensions,
    session: Option<SessionSlot>,
    query: OnceLock<Vec<(String, String)>>,
    cookies: OnceLock<Result<Vec<(String, String)>, String>>,
}

impl Conn {
    pub(crate) fn new(
        head: Arc<Head>,
        params: Params,
        context: Arc<HostContext>,
        body: Option<RequestBody>,
        upgrade: Option<OnUpgrade>,
        session: Option<SessionSlot>,
    ) -> Conn {
        let body_limit = context.body_limit;
        Conn {
            head,
            params,
            context,
            body,
            body_limit,
            upgrade,
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            data: http::Extensions::new(),
            session,
            query: OnceLock::new(),
            cookies: OnceLock::new(),
        }
    }

    /// The values stored with `set_data` (for a WebSocket connection).
    pub(crate) fn take_data(&mut self) -> http::Extensions {
        std::mem::take(&mut self.data)
    }

    pub(crate) fn session_slot(&self) -> Option<SessionSlot> {
        self.session.clone()
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request target as sent.
    pub fn uri(&self) -> &Uri {
        &self.head.uri
    }

    /// The path as sent (still percent-encoded), without the query.
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// The HTTP version of the request.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// All query parameters, decoded, in order (repeated names repeat).
    pub fn query_pairs(&self) -> &[(String, String)] {
        self.query.get_or_init(|| headers::query_pairs(self.head.uri.query().unwrap_or("")))
    }

    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query_pairs().iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The query string decoded into `T` (`400` when it does not fit).
    pub fn query_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(self.head.uri.query().unwrap_or(""))
            .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))
    }

    /// Route parameter `name` (`:name` in the pattern, `"*"` for the tail).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// All route parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The request headers, to modify (from a middleware).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut Arc::make_mut(&mut self.head).headers
    }

    /// The first value of request header `name`, when it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The host name the request was addressed to (lowercase, no port).
    pub fn host(&self) -> &str {
        &self.head.host
    }

    /// The client's IP address (the TCP peer).
    pub fn ip(&self) -> IpAddr {
        self.head.peer.ip()
    }

    /// The client's socket address (the TCP peer).
    pub fn peer_addr(&self) -> SocketAddr {
        self.head.peer
    }

    /// Whether the request came over HTTPS.
    pub fn is_secure(&self) -> bool {
        self.head.secure
    }

    /// The client's languages from `Accept-Language`, most preferred first
    /// (q-values honoured, `q=0` and `*` dropped).
    pub fn languages(&self) -> Vec<String> {
        self.header("accept-language").map(headers::languages).unwrap_or_default()
    }

    fn parsed_cookies(&self) -> &Result<Vec<(String, String)>, String> {
        self.cookies.get_or_init(|| headers::cookies(&self.head.headers))
    }

    /// The value of request cookie `name` (percent-decoded). A malformed
    /// `Cookie` header reads as no cookies; use [`try_cookie`](Self::try_cookie)
    /// to refuse it with `400` instead.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.try_cookie(name).ok().flatten()
    }

    /// Like [`cookie`](Self::cookie), but a malformed `Cookie` header is a
    /// `400` error.
    pub fn try_cookie(&self, name: &str) -> Result<Option<&str>> {
        match self.parsed_cookies() {
            Ok(list) => Ok(list.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())),
            Err(reason) => Err(Error::bad_request(reason.clone())),
        }
    }

    /// All request cookies as `(name, value)`; `400` when malformed.
    pub fn cookies(&self) -> Result<&[(String, String)]> {
        match self.parsed_cookies() {
            Ok(list) => Ok(list),
            Err(reason) => Err(Error::bad_request(reason.clone())),
        }
    }

    /// A value a middleware stored for later steps with [`set_data`](Self::set_data).
    pub fn data<T: Send + Sync + Clone + 'static>(&self) -> Option<&T> {
        self.data.get::<T>()
    }

    /// Stores a value (one per type) for later middlewares and the handler.
    pub fn set_data<T: Send + Sync + Clone + 'static>(&mut self, value: T) {
        self.data.insert(value);
    }

    /// The connection's upgrade (for protocols such as WebSocket): answer
    /// with `101 Switching Protocols` and await the returned
    /// [`OnUpgrade`] in a spawned task to get the raw connection. `None` if
    /// already taken (or for error routes).
    pub fn upgrade(&mut self) -> Option<OnUpgrade> {
        self.upgrade.take()
    }

    /// The session of this request, loaded (or created) on first call.
    /// Fails with `500` when the host has no sessions configured or the
    /// store fails.
    pub async fn session(&mut self) -> Result<Session> {
        let slot = self.session.clone().ok_or_else(|| {
            Error::from_kind(crate::ErrorKind::Session, "sessions are not enabled on this host")
        })?;
        if let Some(s) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(s.clone());
        }
        let config = self.context.session.as_ref().expect("slot implies sessions");
        let session = crate::session::load(config, self.cookie(&config.cookie)).await?;
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
        Ok(session)
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("method", &self.head.method)
            .field("uri", &self.head.uri)
            .field("host", &self.head.host)
            .field("peer", &self.head.peer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn conn_is_send_and_sync() {
        send_sync::<super::Conn>();
        send_sync::<crate::Session>();
        send_sync::<crate::body::RequestBody>();
    }
}
