//! The owned, parsed client upgrade request handed to the application by
//! [`parse_request`](super::server::parse_request).
//!
//! Everything the application needs to decide whether to accept (path,
//! query, `Origin`, cookies, offered subprotocols and extensions) is exposed
//! through accessors. The request has already passed every RFC 6455 §4.2.1
//! check when the application sees it.

use super::http::{self, Headers};

/// A validated WebSocket upgrade request (RFC 6455 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Byte range of the path inside `target` (empty for an absolute-form
    /// target without a path, reported as `/`).
    pub(crate) path_start: usize,
    pub(crate) path_end: usize,
    pub(crate) headers: Headers,
    pub(crate) key: String,
}

impl Request {
    /// The request method (always `GET` for a request that passed
    /// validation).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The raw request-target exactly as sent, e.g. `/chat?room=1` (or an
    /// absolute `ws://host/chat` form, RFC 6455 §4.2.1 item 1).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path of the request-target without the query, e.g. `/chat`
    /// (still percent-encoded). `/` if the target has an empty path.
    pub fn path(&self) -> &str {
        match self.target.get(self.path_start..self.path_end) {
            Some(p) if !p.is_empty() => p,
            _ => "/",
        }
    }

    /// The query of the request-target without the `?`, if there is one
    /// (still percent-encoded).
    pub fn query(&self) -> Option<&str> {
        let rest = self.target.get(self.path_end..)?;
        rest.strip_prefix('?')
    }

    /// The first value of header `name` (case-insensitive), with surrounding
    /// whitespace removed. `None` if absent or if that value is not UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        http::first_str(&self.headers, name)
    }

    /// All header fields in arrival order as (name, raw value bytes).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Every cookie of every `Cookie` header (RFC 6265 §5.4:
    /// `a=1; b=2`), as (name, value) with whitespace trimmed. Values are
    /// returned raw (surrounding double quotes are kept). Pairs without `=`
    /// or with an empty name are skipped.
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        http::str_values(&self.headers, "Cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                let name = name.trim_matches(http::is_ows);
                (!name.is_empty()).then(|| (name, value.trim_matches(http::is_ows)))
            })
    }

    /// The value of the first cookie called `name` (case-sensitive).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The `Origin` header, if any (RFC 6455 §4.2.1 item 7, §10.2). Servers
    /// that only expect browser clients should check it against an
    /// allow-list.
    pub fn origin(&self) -> Option<&str> {
        self.header("Origin")
    }

    /// The `Host` header (RFC 6455 §4.2.1 item 2; always present after
    /// validation).
    pub fn host(&self) -> Option<&str> {
        self.header("Host")
    }

    /// The client's `Sec-WebSocket-Key`, exactly as sent (RFC 6455 §4.2.1
    /// item 5).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Every subprotocol offered by the client, in the client's order of
    /// preference: each comma-separated token of every
    /// `Sec-WebSocket-Protocol` header, trimmed (RFC 6455 §4.2.1 item 8).
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        super::offer::protocol_tokens(http::str_values(&self.headers, "Sec-WebSocket-Protocol"))
    }

    /// The raw values of the `Sec-WebSocket-Extensions` headers (RFC 6455
    /// §4.2.1 item 9), in order; empty values are skipped. Interpreting the
    /// offers is up to the extension layer.
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        http::str_values(&self.headers, "Sec-WebSocket-Extensions").filter(|v| !v.is_empty())
    }

    /// Picks at most one subprotocol: the first one of the *client's* list
    /// (in its order) that appears in `supported`. Matching is exact and
    /// case-sensitive (RFC 6455 §4.2.2 item 5.5, §11.3.4). `None` if there
    /// is no overlap.
    pub fn select_protocol<'a, S: AsRef<str>>(&self, supported: &'a [S]) -> Option<&'a str> {
        self.protocols()
            .find_map(|offered| supported.iter().map(AsRef::as_ref).find(|s| *s == offered))
    }
}

/// The parsed request seen by the rule, e.g. to decide again with another
/// [`ServerPolicy`](super::ServerPolicy).
impl super::RequestHead for Request {
    fn method(&self) -> &str {
        &self.method
    }

    fn is_http11(&self) -> bool {
        // `parse_request` accepts HTTP/1.1 requests only.
        true
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        http::values(&self.headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, headers: &[(&str, &str)]) -> Request {
        let path_end = target.find('?').unwrap_or(target.len());
        Request {
            method: "GET".into(),
            target: target.into(),
            path_start: 0,
            path_end,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        }
    }

    #[test]
    fn path_and_query() {
        let r = req("/chat?room=1&x", &[]);
        assert_eq!(r.path(), "/chat");
        assert_eq!(r.query(), Some("room=1&x"));
        let r = req("/chat", &[]);
        assert_eq!(r.query(), None);
        let r = req("/?", &[]);
        assert_eq!(r.path(), "/");
        assert_eq!(r.query(), Some(""));
    }

    #[test]
    fn select_protocol_client_order_wins() {
        let r = req(
            "/",
            &[
                ("Sec-WebSocket-Protocol", "chat.v2, chat.v1"),
                ("sec-websocket-protocol", "mqtt"),
            ],
        );
        assert_eq!(
            r.protocols().collect::<Vec<_>>(),
            ["chat.v2", "chat.v1", "mqtt"]
        );
        // The server prefers v1, but the client's order wins.
        assert_eq!(
            r.select_protocol(&["mqtt", "chat.v1", "chat.v2"]),
            Some("chat.v2")
        );
        assert_eq!(r.select_protocol(&["mqtt".to_string()]), Some("mqtt"));
        // Exact, case-sensitive match only.
        assert_eq!(r.select_protocol(&["CHAT.V2", "graphql"]), None);
        assert_eq!(r.select_protocol::<&str>(&[]), None);
        let none = req("/", &[]);
        assert_eq!(none.select_protocol(&["chat.v1"]), None);
    }

    #[test]
    fn cookies_from_all_headers() {
        let r = req(
            "/",
            &[
                ("Cookie", "a=1; b = 2 ;novalue; =x"),
                ("cookie", "c=\"q\"; a=3"),
            ],
        );
        assert_eq!(
            r.cookies().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2"), ("c", "\"q\""), ("a", "3")]
        );
        assert_eq!(r.cookie("a"), Some("1"));
        assert_eq!(r.cookie("c"), Some("\"q\""));
        assert_eq!(r.cookie("A"), None);
        assert_eq!(r.cookie("novalue"), None);
    }

    #[test]
    fn header_access() {
        let mut r = req(
            "/",
            &[
                ("Host", "example.com"),
                ("Origin", "https://example.com"),
                ("Sec-WebSocket-Extensions", "permessage-deflate"),
                ("Sec-WebSocket-Extensions", ""),
                ("Sec-WebSocket-Extensions", "x; a=1"),
            ],
        );
        assert_eq!(r.header("HOST"), Some("example.com"));
        assert_eq!(r.host(), Some("example.com"));
        assert_eq!(r.origin(), Some("https://example.com"));
        assert_eq!(r.header("missing"), None);
        assert_eq!(
            r.extensions().collect::<Vec<_>>(),
            ["permessage-deflate", "x; a=1"]
        );
        assert_eq!(r.headers().count(), 5);
        r.headers.insert(0, ("X-Bin".into(), vec![0xff, 0xfe]));
        assert_eq!(r.header("x-bin"), None);
        assert_eq!(r.headers().next(), Some(("X-Bin", &[0xff, 0xfe][..])));
    }
}
