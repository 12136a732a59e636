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

/// The `http` heads are read the same way: one implementation for the
/// three of them (`[generic]`, the type, then `$h` the head and its
/// method, version and headers).
macro_rules! impl_request_head {
    ([$($g:ident)?] $ty:ty, |$h:ident| ($method:expr, $version:expr, $headers:expr)) => {
        impl$(<$g>)? RequestHead for $ty {
            fn method(&self) -> &str {
                let $h = self;
                $method.as_str()
            }

            fn is_http11(&self) -> bool {
                let $h = self;
                $version == http::Version::HTTP_11
            }

            fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
                let $h = self;
                let values = match known_name(name) {
                    Some(known) => $headers.get_all(known),
                    None => $headers.get_all(name),
                };
                values.into_iter().map(http::HeaderValue::as_bytes)
            }
        }
    };
}

/// The handshake's header names as `http`'s constants, spelled as the rule
/// asks for them (`offer.rs`, `decision.rs`; a test checks it). A lookup by
/// constant skips parsing and lowercasing the name: about 250 instructions
/// each, eleven times per handshake. Any other spelling is parsed, as
/// before.
fn known_name(name: &str) -> Option<&'static http::HeaderName> {
    use http::header;
    Some(match name {
        "Host" => &header::HOST,
        "Upgrade" => &header::UPGRADE,
        "Connection" => &header::CONNECTION,
        "Sec-WebSocket-Version" => &header::SEC_WEBSOCKET_VERSION,
        "Sec-WebSocket-Key" => &header::SEC_WEBSOCKET_KEY,
        "Sec-WebSocket-Accept" => &header::SEC_WEBSOCKET_ACCEPT,
        "Sec-WebSocket-Protocol" => &header::SEC_WEBSOCKET_PROTOCOL,
        "Sec-WebSocket-Extensions" => &header::SEC_WEBSOCKET_EXTENSIONS,
        "Transfer-Encoding" => &header::TRANSFER_ENCODING,
        "Content-Length" => &header::CONTENT_LENGTH,
        _ => return None,
    })
}

impl_request_head!([] HttpHead<'_>, |h| (h.method, h.version, h.headers));
impl_request_head!([] http::request::Parts, |h| (h.method, h.version, h.headers));
impl_request_head!([B] http::Request<B>, |h| (h.method(), h.version(), h.headers()));

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
            let header = known_name(name).cloned().map_or_else(|| http::HeaderName::try_from(name), Ok);
            let (Ok(header), Ok(value)) = (header, http::HeaderValue::try_from(value)) else {
                tracing::debug!(header = name, "header left out of the 101: not valid for http");
                continue;
            };
            headers.append(header, value);
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

#[cfg(test)]
mod tests {
    use super::super::{NonUpgrade, Offer, ServerPolicy};

    fn head(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut req = http::Request::get("/ws");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    const VALID: &[(&str, &str)] = &[
        ("host", "example.com"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        VALID.iter().copied().filter(|(n, _)| *n != name).collect()
    }

    fn status(parts: &http::request::Parts, non_upgrade: NonUpgrade) -> u16 {
        Offer::from_head(parts, non_upgrade).map_or_else(|e| e.status(), |_| 101)
    }

    #[test]
    fn the_rule_names_each_problem_with_its_status() {
        use NonUpgrade::{BadRequest, UpgradeRequired};
        assert_eq!(status(&head(VALID), BadRequest), 101);
        // Not an upgrade at all: the server's choice.
        for missing in ["upgrade", "connection"] {
            assert_eq!(status(&head(&without(missing)), BadRequest), 400, "{missing}");
            assert_eq!(status(&head(&without(missing)), UpgradeRequired), 426, "{missing}");
        }
        assert_eq!(status(&head(&[("host", "x")]), UpgradeRequired), 426);
        assert_eq!(status(&head(&without("sec-websocket-version")), BadRequest), 426);
        assert_eq!(status(&head(&without("sec-websocket-key")), UpgradeRequired), 400);
        assert_eq!(status(&head(&without("host")), BadRequest), 400);
        let mut v8 = without("sec-websocket-version");
        v8.push(("sec-websocket-version", "8"));
        assert_eq!(status(&head(&v8), BadRequest), 426);
        let mut short = without("sec-websocket-key");
        short.push(("sec-websocket-key", "c2hvcnQ="));
        assert_eq!(status(&head(&short), BadRequest), 400);
        let mut body = VALID.to_vec();
        body.push(("content-length", "5"));
        assert_eq!(status(&head(&body), BadRequest), 400);
        body.pop();
        body.push(("content-length", "0"));
        assert_eq!(status(&head(&body), BadRequest), 101);
        let mut http10 = head(VALID);
        http10.version = http::Version::HTTP_10;
        let e = Offer::from_head(&http10, UpgradeRequired).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.reason().contains("HTTP/1.1"), "{e}");
        let mut post = head(VALID);
        post.method = http::Method::POST;
        assert_eq!(status(&post, BadRequest), 405);
    }

    /// The head of `parts`, noting every header name the rule asks for.
    struct Noting {
        parts: http::request::Parts,
        asked: std::cell::RefCell<Vec<String>>,
    }

    impl super::RequestHead for Noting {
        fn method(&self) -> &str {
            self.parts.method.as_str()
        }

        fn is_http11(&self) -> bool {
            self.parts.version == http::Version::HTTP_11
        }

        fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
            self.asked.borrow_mut().push(name.to_owned());
            self.parts.header_values(name)
        }
    }

    /// Every name the rule looks up and every name of a `101` is one of the
    /// constants (else each handshake parses it again: a spelling changed
    /// on one side only).
    #[test]
    fn the_rules_header_names_are_known_constants() {
        let mut offered = VALID.to_vec();
        offered.extend([("sec-websocket-protocol", "a"), ("sec-websocket-extensions", "x"), ("content-length", "0")]);
        let noting = Noting { parts: head(&offered), asked: Default::default() };
        let policy = ServerPolicy { protocols: vec!["a".into()], ..ServerPolicy::default() };
        let decision = policy.decide(&noting).unwrap();
        let asked = noting.asked.into_inner();
        assert!(asked.len() >= 10, "{asked:?}");
        for name in asked.iter().map(String::as_str).chain(decision.response_headers().iter().map(|(n, _)| *n)) {
            let known = super::known_name(name).unwrap_or_else(|| panic!("{name} is parsed on every handshake"));
            assert!(known.as_str().eq_ignore_ascii_case(name), "{name} maps to {known}");
        }
        assert_eq!(super::known_name("X-Other"), None);
    }

    #[test]
    fn responses_carry_the_decision_and_the_refusal_headers() {
        let mut offered = VALID.to_vec();
        offered.push(("sec-websocket-protocol", "a, b"));
        let policy = ServerPolicy { protocols: vec!["b".into()], ..ServerPolicy::default() };
        let mut decision = policy.decide(&head(&offered)).unwrap();
        decision.add_header("Set-Cookie", "a=1").unwrap();
        let response = decision.response();
        assert_eq!(response.status(), 101);
        assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(response.headers()["sec-websocket-protocol"], "b");
        assert_eq!(response.headers()["set-cookie"], "a=1");
        assert_eq!(String::from_utf8(decision.response_bytes()).unwrap().matches("\r\n").count(), 7);

        let refusal = ServerPolicy::default().decide(&head(&[("host", "x")])).unwrap_err().to_http_response();
        assert_eq!(refusal.status(), 400);
        assert!(refusal.body().ends_with('\n'));
        let plain = ServerPolicy { non_upgrade: NonUpgrade::UpgradeRequired, ..ServerPolicy::default() };
        let refusal = plain.decide(&head(&[("host", "x")])).unwrap_err().to_http_response();
        assert_eq!(refusal.status(), 426);
        assert_eq!(refusal.headers()["upgrade"], "websocket");
        assert_eq!(refusal.headers()["sec-websocket-version"], "13");
    }
}
