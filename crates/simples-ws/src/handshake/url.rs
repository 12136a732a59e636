//! `ws://` and `wss://` URLs (RFC 6455 §3).
//!
//! [`parse_ws_url`] splits a WebSocket URL into what the client handshake
//! and the transport need: whether to use TLS, the host and port to connect
//! to, and the request-target (`path?query`) to put in the `GET` line.
//!
//! Deliberately strict and small: no userinfo, no fragments (RFC 6455 §3),
//! ASCII host names only (use punycode for IDNs), IPv6 literals in brackets.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use super::error::{HandshakeError, HandshakeErrorKind};

/// A parsed WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    /// `true` for `wss://` (TLS), `false` for `ws://`.
    pub secure: bool,
    /// Host name or IP address; IPv6 addresses are stored without brackets.
    /// Lower-cased (host names are case-insensitive, RFC 3986 §3.2.2).
    pub host: String,
    /// Port; `80` for `ws://` and `443` for `wss://` when not given
    /// (RFC 6455 §3).
    pub port: u16,
    /// The resource name: path plus optional `?query`; `/` when the URL has
    /// no path (RFC 6455 §3). Characters not allowed in a request-target
    /// (space, non-ASCII, double quote, `<`, `>`, backslash, `^`, backtick,
    /// `{`, `|`, `}`) are percent-encoded.
    pub path_and_query: String,
}

impl WsUrl {
    /// The default port for the scheme: 443 for `wss`, 80 for `ws`.
    pub fn default_port(&self) -> u16 {
        if self.secure {
            443
        } else {
            80
        }
    }

    /// The value of the `Host` header (RFC 6455 §4.1 item 4): the host
    /// (bracketed if IPv6) followed by `:port` only when the port is not the
    /// scheme's default.
    pub fn host_header(&self) -> String {
        let mut out = self.bracketed_host();
        if self.port != self.default_port() {
            // Writing to a String cannot fail.
            let _ = write!(out, ":{}", self.port);
        }
        out
    }

    /// `host:port` for `TcpStream::connect`, with IPv6 hosts bracketed
    /// (`[::1]:9001`).
    pub fn addr(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

fn bad(reason: impl Into<Cow<'static, str>>) -> HandshakeError {
    HandshakeError::new(HandshakeErrorKind::BadUrl, reason)
}

/// Parses a `ws://` or `wss://` URL (RFC 6455 §3).
///
/// The scheme is case-insensitive; default ports are 80 (`ws`) and 443
/// (`wss`); IPv6 literals are written `[::1]:9001`. Rejected with
/// [`HandshakeErrorKind::BadUrl`]: other schemes, userinfo (`user@host`),
/// fragments (`#…`), an empty or invalid host, a port that is not a number
/// in `1..=65535`, and control characters anywhere.
pub fn parse_ws_url(s: &str) -> Result<WsUrl, HandshakeError> {
    if s.chars().any(char::is_control) {
        return Err(bad("URL contains control characters"));
    }
    // RFC 6455 §3: "ws" and "wss" schemes only; schemes are case-insensitive
    // (RFC 3986 §3.1).
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| bad("URL must start with ws:// or wss://"))?;
    let secure = if scheme.eq_ignore_ascii_case("ws") {
        false
    } else if scheme.eq_ignore_ascii_case("wss") {
        true
    } else {
        return Err(bad("URL scheme must be ws or wss"));
    };
    // RFC 6455 §3: "Fragment identifiers are meaningless in the context of
    // WebSocket URIs and MUST NOT be used on these URIs."
    if rest.contains('#') {
        return Err(bad("URL must not contain a fragment ('#')"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(bad("URL must not contain userinfo (user@host)"));
    }

    let (host, port) = if let Some(after_bracket) = authority.strip_prefix('[') {
        // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]".
        let (literal, after) = after_bracket
            .split_once(']')
            .ok_or_else(|| bad("unterminated IPv6 address in URL"))?;
        let addr: Ipv6Addr = literal
            .parse()
            .map_err(|_| bad("invalid IPv6 address in URL"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("unexpected characters after IPv6 address in URL"))?,
            ),
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(bad("URL has an empty host"));
        }
        if !host.bytes().all(is_reg_name_byte) {
            return Err(bad("URL host contains invalid characters"));
        }
        (host.to_ascii_lowercase(), port)
    };

    let port = match port {
        // RFC 3986 §3.2.3: an empty port means the scheme's default.
        None | Some("") => {
            if secure {
                443
            } else {
                80
            }
        }
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(bad("URL port must be between 1 and 65535")),
        },
        Some(_) => return Err(bad("URL port is not a number")),
    };

    // RFC 6455 §3: resource name is "/" if the path is empty, plus "?" and
    // the query if present.
    let mut resource = String::with_capacity(path_and_query.len() + 1);
    if !path_and_query.starts_with('/') {
        resource.push('/');
    }
    encode_target(path_and_query, &mut resource);
    Ok(WsUrl {
        secure,
        host,
        port,
        path_and_query: resource,
    })
}

/// `reg-name` bytes (RFC 3986 §3.2.2): unreserved / pct-encoded /
/// sub-delims.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// Bytes allowed verbatim in a path or query (RFC 3986 §3.3, §3.4):
/// pchar / "/" / "?" plus "%" of existing escapes.
fn is_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// Appends `s` to `out`, percent-encoding bytes not allowed in a
/// request-target (space, non-ASCII, double quote, `<`, `>`, backslash,
/// `^`, backtick, `{`, `|`, `}`).
fn encode_target(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if is_target_byte(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Whether a [`WsUrl`] (whose fields are public, so possibly built by hand)
/// is safe to put in a request: host without forbidden characters and a
/// path that starts with `/` and needs no escaping.
pub(crate) fn check_url(url: &WsUrl) -> Result<(), HandshakeError> {
    let host_ok = !url.host.is_empty()
        && (url.host.parse::<Ipv6Addr>().is_ok() || url.host.bytes().all(is_reg_name_byte));
    if !host_ok {
        return Err(bad("URL host is empty or contains invalid characters"));
    }
    if !url.path_and_query.starts_with('/') || !url.path_and_query.bytes().all(is_target_byte) {
        return Err(bad(
            "URL path must start with '/' and contain only request-target characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> WsUrl {
        parse_ws_url(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[track_caller]
    fn rejects(s: &str, needle: &str) {
        match parse_ws_url(s) {
            Err(e) => {
                assert_eq!(e.kind(), &HandshakeErrorKind::BadUrl);
                assert!(e.reason().contains(needle), "{s}: {}", e.reason());
            }
            Ok(u) => panic!("{s} should be rejected, got {u:?}"),
        }
    }

    #[test]
    fn basic_forms() {
        let u = url("ws://example.com/chat?room=1");
        assert_eq!(
            u,
            WsUrl {
                secure: false,
                host: "example.com".into(),
                port: 80,
                path_and_query: "/chat?room=1".into()
            }
        );
        assert_eq!(u.host_header(), "example.com");
        assert_eq!(u.addr(), "example.com:80");

        let u = url("WSS://Example.COM");
        assert!(u.secure);
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 443);
        assert_eq!(u.path_and_query, "/");
        assert_eq!(u.host_header(), "example.com");

        let u = url("ws://localhost:9001?x=1");
        assert_eq!(u.port, 9001);
        assert_eq!(u.path_and_query, "/?x=1");
        assert_eq!(u.host_header(), "localhost:9001");
        assert_eq!(u.addr(), "localhost:9001");

        // Explicit default ports are not repeated in Host.
        assert_eq!(url("wss://a.b:443/").host_header(), "a.b");
        assert_eq!(url("ws://a.b:443/").host_header(), "a.b:443");
        assert_eq!(url("wss://a.b:80/").host_header(), "a.b:80");
        // Empty port means the default (RFC 3986 §3.2.3).
        assert_eq!(url("ws://a.b:/x").port, 80);
        assert_eq!(url("ws://127.0.0.1:8080/").addr(), "127.0.0.1:8080");
    }

    #[test]
    fn ipv6() {
        let u = url("ws://[::1]:9001/x");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 9001);
        assert_eq!(u.addr(), "[::1]:9001");
        assert_eq!(u.host_header(), "[::1]:9001");
        let u = url("wss://[2001:DB8::1]");
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.host_header(), "[2001:db8::1]");
        assert_eq!(u.addr(), "[2001:db8::1]:443");
        rejects("ws://[::1/x", "unterminated");
        rejects("ws://[nope]/", "IPv6");
        rejects("ws://[::1]x/", "after IPv6");
        rejects("ws://::1/", "empty host");
    }

    #[test]
    fn path_encoding() {
        assert_eq!(
            url("ws://h/a b/ü?q=\"x\"").path_and_query,
            "/a%20b/%C3%BC?q=%22x%22"
        );
        assert_eq!(url("ws://h/a%20b").path_and_query, "/a%20b");
    }

    #[test]
    fn rejections() {
        rejects("http://example.com/", "scheme");
        rejects("example.com", "ws://");
        rejects("ws:/example.com", "ws://");
        rejects("ws://user:pw@example.com/", "userinfo");
        rejects("ws://example.com/#frag", "fragment");
        rejects("ws://example.com/a?b#c", "fragment");
        rejects("ws:///path", "empty host");
        rejects("ws://", "empty host");
        rejects("ws://:80/", "empty host");
        rejects("ws://h:0/", "port");
        rejects("ws://h:65536/", "port");
        rejects("ws://h:+80/", "port");
        rejects("ws://h:8x/", "port");
        rejects("ws://h:99999999999999999999/", "port");
        rejects("ws://exa mple.com/", "host");
        rejects("ws://exämple.com/", "host");
        rejects("ws://h/a\r\nX: 1", "control");
    }

    #[test]
    fn check_url_catches_hand_built_values() {
        let mut u = url("ws://h/x");
        assert!(check_url(&u).is_ok());
        u.path_and_query = "/x\r\nEvil: 1".into();
        assert!(check_url(&u).is_err());
        u.path_and_query = "x".into();
        assert!(check_url(&u).is_err());
        u.path_and_query = "/".into();
        u.host = "a b".into();
        assert!(check_url(&u).is_err());
        u.host = "::1".into();
        assert!(check_url(&u).is_ok());
    }
}
