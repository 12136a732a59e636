//! The handshake decision on the `http` crate's types (feature `http`, on
//! by default): what hyper, axum and other `http`-based servers hand over.

use super::decision::Decision;
use super::error::HandshakeError;
use super::offer::RequestHead;
use super::server::Request;

/// A borrowed request head made of `http` parts, for servers that keep the
/// method, version and headers apart (as the `simples` framework does).
///
/// ```
/// use simples_ws::handshake::{HttpHead, ServerPolicy};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("host", "example.com".parse().unwrap());
/// let head = HttpHead { method: &http::Method::GET, version: http::Version::HTTP_11, headers: &headers };
/// // No Upgrade header: not a WebSocket handshake.
/// assert_eq!(ServerPolicy::default().decide(&head).unwrap_err().status(), 400);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HttpHead<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The HTTP version.
    pub version: http::Version,
    /// The request's header fields.
    pub headers: &'a http::HeaderMap,
}

impl RequestHead for HttpHead<'_> {
    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn is_http11(&self) -> bool {
        self.version == http::Version::HTTP_11
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(name).into_iter().map(http::HeaderValue::as_bytes)
    }
}

impl RequestHead for http::request::Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn is_http11(&self) -> bool {
        self.version == http::Version::HTTP_11
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(name).into_iter().map(http::HeaderValue::as_bytes)
    }
}

impl<B> RequestHead for http::Request<B> {
    fn method(&self) -> &str {
        self.method().as_str()
    }

    fn is_http11(&self) -> bool {
        self.version() == http::Version::HTTP_11
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers().get_all(name).into_iter().map(http::HeaderValue::as_bytes)
    }
}

impl Decision {
    /// The `101 Switching Protocols` response as an `http::Response`, for
    /// servers that write responses themselves (hyper, axum): the same
    /// headers as [`Decision::response_bytes`].
    ///
    /// ```
    /// use simples_ws::handshake::ServerPolicy;
    ///
    /// let req = http::Request::get("/ws")
    ///     .header("Host", "example.com")
    ///     .header("Upgrade", "websocket")
    ///     .header("Connection", "Upgrade")
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let response = ServerPolicy::default().decide(&req).unwrap().response();
    /// assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    /// assert_eq!(response.headers()["upgrade"], "websocket");
    /// ```
    pub fn response(&self) -> http::Response<()> {
        let mut response = http::Response::new(());
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        for (name, value) in self.response_headers() {
            // Every name and value was checked (tokens, no CR/LF/NUL) when
            // it entered the decision; a value `http` still refuses (other
            // control characters) is left out rather than sent broken.
            let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), http::HeaderValue::try_from(value)) else {
                tracing::debug!(header = name, "header left out of the 101: not valid for http");
                continue;
            };
            headers.append(name, value);
        }
        response
    }
}

impl HandshakeError {
    /// The refusal as an `http::Response`: the status, the headers it
    /// requires ([`HandshakeError::response_headers`]), `Content-Type:
    /// text/plain; charset=utf-8`, and the reason followed by `\n` as the
    /// body. Map the body to the server's type with `Response::map`.
    ///
    /// ```
    /// use simples_ws::handshake::ServerPolicy;
    ///
    /// let req = http::Request::get("/ws")
    ///     .header("Host", "example.com")
    ///     .header("Upgrade", "websocket")
    ///     .header("Connection", "Upgrade")
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("Sec-WebSocket-Version", "8")
    ///     .body(())
    ///     .unwrap();
    /// let refusal = ServerPolicy::default().decide(&req).unwrap_err().to_http_response();
    /// assert_eq!(refusal.status(), 426);
    /// assert_eq!(refusal.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn to_http_response(&self) -> http::Response<String> {
        let mut response = http::Response::new(format!("{}\n", self.reason()));
        *response.status_mut() =
            http::StatusCode::from_u16(self.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
        for (name, value) in self.response_headers() {
            if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                headers.insert(name, http::HeaderValue::from_static(value));
            }
        }
        response
    }
}

impl Request {
    /// The request head as `http::request::Parts` (method, target, HTTP/1.1
    /// and every header), for applications written against the `http`
    /// types. Header fields `http` refuses are left out.
    ///
    /// ```
    /// use simples_ws::handshake::server::{parse_request, ServerConfig};
    ///
    /// let raw = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\nCookie: sid=7\r\n\r\n";
    /// let (request, _) = parse_request(raw, &ServerConfig::default()).unwrap().unwrap();
    /// let parts = request.to_parts();
    /// assert_eq!(parts.uri.path(), "/chat");
    /// assert_eq!(parts.headers["cookie"], "sid=7");
    /// ```
    pub fn to_parts(&self) -> http::request::Parts {
        let method = http::Method::from_bytes(self.method().as_bytes()).unwrap_or(http::Method::GET);
        let uri = self.target().parse::<http::Uri>().unwrap_or_else(|_| http::Uri::from_static("/"));
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        for (name, value) in self.headers() {
            if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), http::HeaderValue::from_bytes(value)) {
                parts.headers.append(name, value);
            }
        }
        parts
    }
}
