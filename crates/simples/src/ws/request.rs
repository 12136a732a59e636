//! [`RequestInfo`]: what a WebSocket connection keeps of its handshake
//! request for `WsConn::header`, `query`, `cookie` & co., for the
//! connection's whole life, so kept small.
//!
//! The path, the query string, the host name (unless the `Host` header
//! gives it back), the headers and the route parameters are copied at
//! accept into **one** allocation (`name:value\n` per header, then each
//! parameter's name and value, length-prefixed;
//! hyper's parsed head holds views of its 8 KiB read buffer, which they
//! would keep alive). `header` and `param` scan those bytes; what needs
//! parsing (the `HeaderMap` of `headers`, the decoded query and cookies,
//! the languages, the `Params` of `params`) is built on the first call that
//! needs it and kept from then on. The parts most connections lack
//! (subprotocol, request data, session) cost one pointer, and one
//! allocation holding them when any is set.
//!
//! The headers the handshake itself consumed ([`CONSUMED`]: `Connection`,
//! `Upgrade`, `Sec-WebSocket-Key`, `-Version`, `-Extensions`) are not kept:
//! they mean nothing once the connection is open (what was negotiated is
//! `WsConn::protocol` and the connection's extension), and they were most
//! of the head (105 of the benchmark request's 134 bytes; ~200 of a
//! browser's).
//!
//! For the benchmark's request this is ~30 bytes in one allocation, where
//! a copied `Head` + `HeaderMap` took ~1,000 in twelve.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use once_cell::race::OnceBox;

use crate::conn::Conn;
use crate::headers;
use crate::router::{Params, NO_PARAMS};
use crate::session::{Session, SessionConfig};

/// The request headers a connection does not keep (lowercase, as `http`
/// names them): the handshake's own.
pub(crate) const CONSUMED: [&str; 5] =
    ["connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"];

/// The handshake request's parts a connection keeps.
pub(crate) struct RequestInfo {
    /// The ends of the path, the query, the host name and the headers
    /// ([`Ends`]), then the path, the query string, the host name, then
    /// `name:value\n` per header (names in lowercase, in the request's
    /// order), then the route parameters (see [`push_param`]). The ends in
    /// the same allocation, not beside it: 16 bytes less per connection
    /// (the connection's shared state then fits malloc's 192-byte chunk,
    /// not 208), and for most heads none more in the allocation's (8 bytes
    /// of `u16`s in malloc's rounding).
    text: Box<[u8]>,
    /// The peer's address and whether the connection is TLS.
    transport: Transport,
    /// Subprotocol, request data and session: most connections have none,
    /// so they cost one pointer until one is set.
    extras: Option<Box<Extras>>,
    /// Built on first use (a `OnceBox`: one pointer, where a
    /// `OnceLock<Box<_>>` is two words, 8 B more per connection).
    parsed: OnceBox<Parsed>,
}

/// The peer's address, packed with the TLS flag: 24 bytes where a
/// `SocketAddr` and a `bool` took 40 (the connection's shared state then
/// fits malloc's 224-byte chunk, not 240). An IPv6 address keeps its scope
/// id; its flow label is not kept (accepted TCP connections report 0
/// unless the socket asked for flow information).
#[derive(Clone, Copy)]
struct Transport {
    /// IPv4 addresses in the first four bytes.
    ip: [u8; 16],
    scope_id: u32,
    port: u16,
    v6: bool,
    secure: bool,
}

impl Transport {
    fn new(peer: SocketAddr, secure: bool) -> Transport {
        let (ip, scope_id, v6) = match peer {
            SocketAddr::V4(a) => {
                let mut ip = [0; 16];
                ip[..4].copy_from_slice(&a.ip().octets());
                (ip, 0, false)
            }
            SocketAddr::V6(a) => (a.ip().octets(), a.scope_id(), true),
        };
        Transport { ip, scope_id, port: peer.port(), v6, secure }
    }

    fn peer(&self) -> SocketAddr {
        if self.v6 {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(self.ip), self.port, 0, self.scope_id))
        } else {
            let [a, b, c, d, ..] = self.ip;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), self.port))
        }
    }
}

/// See `RequestInfo::extras`.
struct Extras {
    protocol: Option<Box<str>>,
    data: http::Extensions,
    session: Option<Box<(Session, SessionConfig)>>,
}

/// The parts of the request that need parsing.
struct Parsed {
    headers: HeaderMap,
    /// The route parameters as `Params` (without the raw tail, which only
    /// static files read).
    params: Params,
    query: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    languages: Vec<String>,
}

impl RequestInfo {
    /// The same request in allocations made by the calling thread (see
    /// `state::Adoption`): the head (with the route parameters) is copied,
    /// the application's request data and session moved (what they
    /// allocated stays where it was made). `self` keeps the old copies.
    pub(crate) fn rehome(&mut self) -> RequestInfo {
        let extras = self.extras.as_mut().map(|e| {
            Box::new(Extras {
                protocol: e.protocol.as_deref().map(Box::from),
                data: std::mem::take(&mut e.data),
                session: e.session.take().map(|s| Box::new(*s)),
            })
        });
        RequestInfo {
            text: Box::from(&*self.text),
            transport: self.transport,
            extras,
            parsed: std::mem::take(&mut self.parsed),
        }
    }

    /// Copies what the connection keeps of `conn`'s request (taking its
    /// data).
    pub(crate) fn new(conn: &mut Conn, protocol: Option<&str>, session: Option<(Session, SessionConfig)>) -> RequestInfo {
        let data = conn.take_data();
        let head = &conn.head;
        let (path, query, host) = (head.uri.path(), head.uri.query().unwrap_or(""), head.host.as_str());
        // Not copied when its `Host` header (kept below) gives it back.
        let derived = head.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(headers::host_name_part);
        let host = if derived == Some(host) { "" } else { host };
        let kept = || head.headers.iter().filter(|(n, _)| !CONSUMED.contains(&n.as_str()));
        let headers_len: usize = kept().map(|(n, v)| n.as_str().len() + v.len() + 2).sum();
        let params = conn.params();
        let params_len: usize = params.iter().map(|(n, v)| n.len() + v.len() + 8).sum();
        let len = path.len() + query.len() + host.len() + headers_len + params_len;
        let prefix = Ends::prefix_for(len);
        let mut text = Vec::with_capacity(prefix + len);
        text.resize(prefix, 0);
        text.extend_from_slice(path.as_bytes());
        let path_end = text.len();
        text.extend_from_slice(query.as_bytes());
        let query_end = text.len();
        text.extend_from_slice(host.as_bytes());
        let host_end = text.len();
        for (name, value) in kept() {
            text.extend_from_slice(name.as_str().as_bytes());
            text.push(b':');
            text.extend_from_slice(value.as_bytes());
            text.push(b'\n');
        }
        let headers_end = text.len();
        for (name, value) in params.iter() {
            push_param(&mut text, name, value);
        }
        debug_assert_eq!(text.len(), prefix + len);
        Ends::write(&mut text, [path_end, query_end, host_end, headers_end]);
        let extras = Extras { protocol: protocol.map(Box::from), data, session: session.map(Box::new) };
        let used = extras.protocol.is_some() || !extras.data.is_empty() || extras.session.is_some();
        RequestInfo {
            text: text.into_boxed_slice(),
            transport: Transport::new(head.peer, head.secure),
            extras: used.then(|| Box::new(extras)),
            parsed: OnceBox::new(),
        }
    }

    /// A request of `text` (path, query, host name, then header lines),
    /// the first three parts ending at `ends`, from 127.0.0.1:1.
    #[cfg(test)]
    pub(crate) fn for_tests(text: &str, ends: [usize; 3]) -> RequestInfo {
        let prefix = Ends::prefix_for(text.len());
        let mut all = vec![0; prefix];
        all.extend_from_slice(text.as_bytes());
        let [path, query, host] = ends;
        Ends::write(&mut all, [path, query, host, text.len()].map(|e| e + prefix));
        RequestInfo {
            text: all.into(),
            transport: Transport::new(SocketAddr::from(([127, 0, 0, 1], 1)), false),
            extras: None,
            parsed: OnceBox::new(),
        }
    }

    fn ends(&self) -> [usize; 4] {
        Ends::read(&self.text)
    }

    fn part(&self, from: usize, to: usize) -> &str {
        // The first three parts were copied from `&str`s.
        std::str::from_utf8(&self.text[from..to]).unwrap_or("")
    }

    /// The request path.
    pub(crate) fn path(&self) -> &str {
        self.part(Ends::prefix_of(&self.text), self.ends()[0])
    }

    /// The query string (empty without one).
    fn query_string(&self) -> &str {
        let [path, query, ..] = self.ends();
        self.part(path, query)
    }

    /// The host name the client asked for (lowercase, without port): the
    /// copied part, or, when none was copied, what the `Host` header gives
    /// (`headers::host_name_part`; `new` copies the name unless the header
    /// gives it back exactly).
    pub(crate) fn host(&self) -> &str {
        let [_, query, host, _] = self.ends();
        if host > query {
            return self.part(query, host);
        }
        self.header("host").map(headers::host_name_part).unwrap_or("")
    }

    /// `(name, value)` of every header, in order.
    fn header_lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let [_, _, host, headers] = self.ends();
        self.text[host..headers].split(|&b| b == b'\n').filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
    }

    /// The first value of header `name` as text (`None` if absent or not
    /// visible ASCII, as `HeaderValue::to_str`).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self.header_lines().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))?;
        let visible = value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        visible.then(|| std::str::from_utf8(value).ok()).flatten()
    }

    /// Whether header `name` (lowercase) is present.
    fn has(&self, name: &[u8]) -> bool {
        self.header_lines().any(|(n, _)| n == name)
    }

    fn parsed(&self) -> &Parsed {
        self.parsed.get_or_init(|| {
            let mut map = HeaderMap::new();
            for (name, value) in self.header_lines() {
                // Both were valid when copied.
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                    map.append(name, value);
                }
            }
            let cookies = headers::cookies(&map).unwrap_or_default();
            let languages = self.header("accept-language").map(headers::languages).unwrap_or_default();
            let params = self.param_pairs().map(|(n, v)| (Arc::from(n), v.to_string())).collect();
            Box::new(Parsed {
                query: headers::query_pairs(self.query_string()),
                cookies,
                languages,
                headers: map,
                params: Params::from_pairs(params),
            })
        })
    }

    /// The headers.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.parsed().headers
    }

    /// The decoded query string parameters.
    pub(crate) fn query_pairs(&self) -> &[(String, String)] {
        if self.query_string().is_empty() {
            return &[];
        }
        &self.parsed().query
    }

    /// The decoded cookies (none when the `Cookie` header is malformed).
    pub(crate) fn cookies(&self) -> &[(String, String)] {
        if !self.has(b"cookie") {
            return &[];
        }
        &self.parsed().cookies
    }

    /// The languages of `Accept-Language`, best first.
    pub(crate) fn languages(&self) -> &[String] {
        if !self.has(b"accept-language") {
            return &[];
        }
        &self.parsed().languages
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.transport.peer()
    }

    pub(crate) fn is_secure(&self) -> bool {
        self.transport.secure
    }

    /// `(name, value)` of every route parameter, in pattern order.
    fn param_pairs(&self) -> ParamPairs<'_> {
        ParamPairs(&self.text[self.ends()[3]..])
    }

    /// The value of route parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.param_pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The route parameters (built on the first call, with the other
    /// parsed parts).
    pub(crate) fn params(&self) -> &Params {
        if self.text.len() == self.ends()[3] {
            return &NO_PARAMS;
        }
        &self.parsed().params
    }

    pub(crate) fn protocol(&self) -> Option<&str> {
        self.extras.as_ref().and_then(|e| e.protocol.as_deref())
    }

    pub(crate) fn data(&self) -> Option<&http::Extensions> {
        self.extras.as_ref().map(|e| &e.data)
    }

    pub(crate) fn session(&self) -> Option<&(Session, SessionConfig)> {
        self.extras.as_ref().and_then(|e| e.session.as_deref())
    }
}

/// The prefix of a request's text: the ends of its parts (absolute
/// offsets), as four `u16`s when the whole text fits in 64 KiB, else four
/// `u32`s (hyper's limits on a request head are far below 4 GiB). Which
/// one a text has follows from its length alone.
struct Ends;

impl Ends {
    /// The prefix's size in front of `len` bytes of parts.
    fn prefix_for(len: usize) -> usize {
        if len + 8 <= usize::from(u16::MAX) {
            8
        } else {
            16
        }
    }

    /// The prefix's size of a whole text.
    fn prefix_of(text: &[u8]) -> usize {
        if text.len() <= usize::from(u16::MAX) {
            8
        } else {
            16
        }
    }

    fn write(text: &mut [u8], ends: [usize; 4]) {
        let wide = Ends::prefix_of(text) == 16;
        for (i, end) in ends.into_iter().enumerate() {
            if wide {
                let end = u32::try_from(end).unwrap_or(u32::MAX);
                text[i * 4..i * 4 + 4].copy_from_slice(&end.to_le_bytes());
            } else {
                let end = u16::try_from(end).unwrap_or(u16::MAX);
                text[i * 2..i * 2 + 2].copy_from_slice(&end.to_le_bytes());
            }
        }
    }

    fn read(text: &[u8]) -> [usize; 4] {
        let wide = Ends::prefix_of(text) == 16;
        std::array::from_fn(|i| {
            if wide {
                u32::from_le_bytes([text[i * 4], text[i * 4 + 1], text[i * 4 + 2], text[i * 4 + 3]]) as usize
            } else {
                usize::from(u16::from_le_bytes([text[i * 2], text[i * 2 + 1]]))
            }
        })
    }
}

/// Appends a route parameter to a request's text: the name's length (u32,
/// little-endian), the name, the value's length, the value. (Decoded
/// values may hold any character, so no separator would do.)
fn push_param(text: &mut Vec<u8>, name: &str, value: &str) {
    for part in [name, value] {
        text.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
        text.extend_from_slice(part.as_bytes());
    }
}

/// Reads back what [`push_param`] wrote.
struct ParamPairs<'a>(&'a [u8]);

impl<'a> ParamPairs<'a> {
    fn part(&mut self) -> Option<&'a str> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let (part, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        // Copied from `&str`s.
        std::str::from_utf8(part).ok()
    }
}

impl<'a> Iterator for ParamPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.part()?, self.part()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packed_peer_address_gives_back_what_it_was_given() {
        let v6 = "[fe80::1:2%3]:4567".parse::<SocketAddr>().unwrap();
        let v4 = "203.0.113.9:65535".parse::<SocketAddr>().unwrap();
        for (peer, secure) in [(v4, false), (v6, true), ("[::ffff:1.2.3.4]:80".parse().unwrap(), false)] {
            let t = Transport::new(peer, secure);
            assert_eq!((t.peer(), t.secure), (peer, secure));
        }
        assert_eq!(std::mem::size_of::<Transport>(), 24);
    }

    fn info(text: &str, path_end: usize, query_end: usize, host_end: usize) -> RequestInfo {
        RequestInfo::for_tests(text, [path_end, query_end, host_end])
    }

    #[test]
    fn parts_headers_and_lazy_parsing() {
        let r = info(
            "/chatroom=a%20b&x=1example.comhost:example.com\nx-two:1\nx-two:2\ncookie:a=1; b=%41\naccept-language:fr;q=0.5, en\nx-bin:caf\u{e9}\n",
            5,
            19,
            30,
        );
        assert_eq!((r.path(), r.query_string(), r.host()), ("/chat", "room=a%20b&x=1", "example.com"));
        assert_eq!(r.header("X-Two"), Some("1"));
        assert_eq!(r.header("x-bin"), None, "not visible ASCII");
        assert_eq!(r.header("missing"), None);
        assert!(r.parsed.get().is_none(), "header() parses nothing");
        assert_eq!(r.query_pairs(), [("room".to_string(), "a b".to_string()), ("x".into(), "1".into())]);
        assert_eq!(r.cookies(), [("a".to_string(), "1".to_string()), ("b".into(), "A".into())]);
        assert_eq!(r.languages(), ["en".to_string(), "fr".to_string()]);
        assert_eq!(r.headers().get_all("x-two").iter().count(), 2);
        assert_eq!(r.headers().len(), 6);
    }

    #[test]
    fn empty_parts_parse_nothing() {
        let r = info("/host:h\n", 1, 1, 1);
        assert_eq!(r.path(), "/");
        assert!(r.query_pairs().is_empty() && r.cookies().is_empty() && r.languages().is_empty());
        assert!(r.parsed.get().is_none());
        assert!(r.params().is_empty());
    }

    #[test]
    fn route_parameters_follow_the_headers_in_the_same_allocation() {
        let mut r = info("/rooms/a%0Abxhost:h\n", 12, 12, 13);
        let mut text = r.text.to_vec();
        // Decoded values may hold the separators of the headers, and NUL.
        push_param(&mut text, "room", "a\nb:c\0");
        push_param(&mut text, "*", "");
        push_param(&mut text, "é", "x");
        r.text = text.into();
        assert_eq!(r.header("host"), Some("h"), "the headers end where the parameters start");
        assert_eq!(r.headers().len(), 1);
        assert_eq!(r.param("room"), Some("a\nb:c\0"));
        assert_eq!(r.param("*"), Some(""));
        assert_eq!(r.param("é"), Some("x"));
        assert_eq!(r.param("missing"), None);
        let all: Vec<(&str, &str)> = r.params().iter().collect();
        assert_eq!(all, [("room", "a\nb:c\0"), ("*", ""), ("é", "x")]);
        // A truncated text ends the list instead of reading past it.
        let cut = &r.text[r.ends()[3]..r.text.len() - 1];
        assert_eq!(ParamPairs(cut).count(), 2);
    }

    /// The ends take four `u16`s up to 64 KiB of text, four `u32`s past
    /// it, and read back the same either side of the boundary.
    #[test]
    fn the_ends_are_narrow_up_to_64_kib_and_wide_past_it() {
        for len in [0, 100, 65_527, 65_528, 65_529, 70_000] {
            let prefix = Ends::prefix_for(len);
            assert_eq!(prefix, if len + 8 <= 65_535 { 8 } else { 16 }, "{len}");
            let mut text = vec![0u8; prefix + len];
            assert_eq!(Ends::prefix_of(&text), prefix, "{len}");
            let ends = [prefix, prefix + len / 3, prefix + len / 2, prefix + len];
            Ends::write(&mut text, ends);
            assert_eq!(Ends::read(&text), ends, "{len}");
        }
        // A long header: the parts still come back whole.
        let value = "v".repeat(70_000);
        let r = info(&format!("/pq=1hostx-long:{value}\n"), 2, 5, 9);
        assert_eq!((r.path(), r.query_string(), r.host()), ("/p", "q=1", "host"));
        assert_eq!(r.header("x-long").map(str::len), Some(70_000));
        assert!(r.params().is_empty());
    }

    /// The host name is not copied when the kept `Host` header gives it
    /// back (16 bytes less in malloc for the benchmark's request); an
    /// empty copied part reads the header.
    #[test]
    fn the_host_name_comes_from_the_host_header_when_not_copied() {
        let r = info("/phost:127.0.0.1:9000\n", 2, 2, 2);
        assert_eq!(r.host(), "127.0.0.1");
        let r = info("/phost:[::1]:80\n", 2, 2, 2);
        assert_eq!(r.host(), "[::1]");
        // Copied (the header's is not lowercase): the copy wins.
        let r = info("/pexample.comhost:Example.COM\n", 2, 2, 13);
        assert_eq!(r.host(), "example.com");
        // Neither: empty.
        let r = info("/px-other:1\n", 2, 2, 2);
        assert_eq!(r.host(), "");
    }

    /// The connection's copy of its request: a box and the peer's address
    /// (the ends live in the box).
    #[test]
    fn request_info_is_seven_words() {
        assert_eq!(std::mem::size_of::<RequestInfo>(), 56);
    }
}
