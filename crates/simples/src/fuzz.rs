//! The `http_headers` fuzz target's checks (`fuzz/`): the framework's own
//! parsing of request input. hyper parses the request line and the header
//! block; these are the parsers of header values and paths written here.

use std::path::Component;

use http::{HeaderName, HeaderValue};

use crate::compress::{compressible, negotiate, Coding};
use crate::headers::{host_name, languages, qvalues};
use crate::router::{fixed_key, Pattern};
use crate::static_files::{etag_list_matches, parse_range, relative_path, RangeSpec};
use crate::ws::same_authority;

/// Runs every parser on `data` and checks what must hold for any input,
/// panicking if it does not.
///
/// Layout: byte 0 picks the file size for `Range` (bit 7 set: the next 8
/// bytes, big-endian, are the size; else `byte0 & 0x7f`, and `dotfiles` is
/// bit 6) and, bit 0, HTTP/1.0 instead of HTTP/1.1 for the WebSocket
/// handshake; the rest is text (lossily UTF-8). Two-argument parsers get
/// the text split at its first `|`; the handshake gets it as `name: value`
/// lines.
#[doc(hidden)]
pub fn http_headers(data: &[u8]) {
    let Some((&b0, mut rest)) = data.split_first() else { return };
    let size = if b0 & 0x80 != 0 && rest.len() >= 8 {
        let (n, r) = rest.split_at(8);
        rest = r;
        u64::from_be_bytes(n.try_into().expect("8 bytes"))
    } else {
        u64::from(b0 & 0x7f)
    };
    let text = String::from_utf8_lossy(rest);
    let (left, right) = text.split_once('|').unwrap_or((&text, ""));

    check_qvalues(&text);
    check_host(&text);
    check_range(&text, size);
    check_etags(left, right);
    check_static_path(&text, b0 & 0x40 != 0);
    check_route(&text);
    check_authority(left, right);
    check_handshake(&text, b0 & 1 != 0);
    let _ = compressible(&text);
}

/// `Accept-Language` / `Accept-Encoding`: q in 0..=1000 (thousandths),
/// tokens trimmed and without separators; languages without `*` or `q=0`,
/// most preferred first; the coding chosen is one the client accepts, with
/// no other accepted more.
fn check_qvalues(text: &str) {
    let list = qvalues(text);
    assert!(list.len() <= text.matches(',').count() + 1);
    for (token, q) in &list {
        assert!(*q <= 1000, "q {q} out of range");
        assert!(!token.is_empty() && token.trim() == *token && !token.contains([',', ';']), "token {token:?}");
    }
    let langs = languages(text);
    let accepted: Vec<&(&str, u16)> = list.iter().filter(|(t, q)| *q > 0 && *t != "*").collect();
    assert_eq!(langs.len(), accepted.len(), "languages {langs:?} from {list:?}");
    let unique = accepted.iter().all(|(t, _)| accepted.iter().filter(|(u, _)| u == t).count() == 1);
    if unique {
        let qs: Vec<u16> = langs.iter().map(|l| accepted.iter().find(|(t, _)| t == l).expect("listed").1).collect();
        assert!(qs.windows(2).all(|w| w[0] >= w[1]), "languages out of order: {langs:?} {qs:?}");
    }
    // The coding: RFC 9110 §12.5.3, the first entry naming it, else `*`.
    let q_of = |name: &str| {
        list.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).or_else(|| list.iter().find(|(t, _)| *t == "*")).map(|(_, q)| *q).unwrap_or(0)
    };
    let name = |c: Coding| match c {
        Coding::Brotli => "br",
        Coding::Gzip => "gzip",
        Coding::Deflate => "deflate",
    };
    let all = [Coding::Brotli, Coding::Gzip, Coding::Deflate];
    match negotiate(text) {
        Some(c) => {
            let q = q_of(name(c));
            assert!(q > 0, "{c:?} chosen at q=0 from {text:?}");
            assert!(all.iter().all(|&o| q_of(name(o)) <= q), "{c:?} chosen over a preferred coding in {text:?}");
        }
        None => assert!(all.iter().all(|&c| q_of(name(c)) == 0), "no coding chosen from {text:?}"),
    }
}

/// `Host`: lowercase, no trailing dot, no longer than the input; for a
/// well-formed host, the port is ignored and normalizing twice changes
/// nothing.
fn check_host(text: &str) {
    let name = host_name(text);
    assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
    assert!(!name.ends_with('.'), "{name:?}");
    assert!(name.len() <= text.len());
    let well_formed = |h: &str| {
        let (host, port) = if h.starts_with('[') {
            match h.find(']') {
                Some(end) => (&h[..=end], &h[end + 1..]),
                None => return false,
            }
        } else {
            match h.rsplit_once(':') {
                Some((host, _)) => (host, &h[host.len()..]),
                None => (h, ""),
            }
        };
        let port_ok = port.is_empty() || (port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit()));
        let host_ok = if host.starts_with('[') {
            host.len() > 2 && host[1..host.len() - 1].bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        } else {
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        port_ok && host_ok
    };
    if well_formed(text) {
        assert_eq!(host_name(&name), name, "normalizing {text:?} twice");
        let bare = host_name(text.rsplit_once(':').filter(|(_, p)| !p.contains(']')).map_or(text, |(h, _)| h));
        assert_eq!(name, bare, "the port of {text:?} changed the name");
    }
}

/// `Range` against a file of `size` bytes: a satisfiable range lies inside
/// the file (so the `206` body and its `Content-Range` are right); a
/// well-formed single range agrees with RFC 9110 §14.1.2.
fn check_range(text: &str, size: u64) {
    let got = parse_range(text, size);
    if let RangeSpec::One(s, e) = got {
        assert!(s <= e && e < size, "range {s}-{e} of a {size}-byte file from {text:?}");
    }
    // The model, for `bytes=<digits>-<digits>` with nothing else.
    let Some(spec) = text.strip_prefix("bytes=") else { return };
    let Some((a, b)) = spec.split_once('-') else { return };
    let digits = |s: &str| !s.is_empty() && s.len() < 20 && s.bytes().all(|c| c.is_ascii_digit());
    let expected = match (a.is_empty(), b.is_empty()) {
        (true, false) if digits(b) => {
            let n: u64 = b.parse().unwrap();
            if n == 0 || size == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::One(size - n.min(size), size - 1)
            }
        }
        (false, _) if digits(a) && (b.is_empty() || digits(b)) => {
            let first: u64 = a.parse().unwrap();
            let last: Option<u64> = (!b.is_empty()).then(|| b.parse().unwrap());
            if last.is_some_and(|l| l < first) {
                RangeSpec::Ignore
            } else if first >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::One(first, last.unwrap_or(u64::MAX).min(size - 1))
            }
        }
        _ => return,
    };
    assert_eq!(got, expected, "Range {text:?} of a {size}-byte file");
}

/// `If-Match` / `If-None-Match`: `*` matches; a strong match is a weak one;
/// a list naming the tag matches it.
fn check_etags(list: &str, etag: &str) {
    for tag in [etag, "\"5f3a-1c\""] {
        let strong = etag_list_matches(list, tag, false);
        let weak = etag_list_matches(list, tag, true);
        assert!(!strong || weak, "strong but not weak: {list:?} {tag:?}");
        if list.trim() == "*" {
            assert!(strong);
        }
        let bare = tag.strip_prefix("W/").unwrap_or(tag);
        if list.split(',').any(|t| t.trim() == bare) {
            assert!(strong, "{list:?} names {bare:?}");
        }
        if list.split(',').any(|t| t.trim().strip_prefix("W/") == Some(bare)) {
            assert!(weak, "{list:?} names W/{bare:?}");
        }
    }
}

/// Static files: what a request's tail resolves to is a relative path of
/// plain names (no `..`, no root, no hidden name unless allowed), one per
/// non-empty, non-`.` segment.
fn check_static_path(tail: &str, dotfiles: bool) {
    let Ok(path) = relative_path(tail, dotfiles) else { return };
    assert!(path.is_relative(), "{path:?} from {tail:?}");
    let mut names = 0;
    for c in path.components() {
        let Component::Normal(name) = c else { panic!("component {c:?} in {path:?} from {tail:?}") };
        let name = name.to_str().expect("UTF-8");
        assert!(dotfiles || !name.starts_with('.'), "hidden {name:?} from {tail:?}");
        assert!(!name.contains(['/', '\\', '\0']));
        names += 1;
    }
    assert!(names <= tail.split('/').filter(|s| !s.is_empty()).count());
}

/// Routing: the fixed-route key keeps the path's segments (a decoded `/`
/// cannot join two); a tail capture is its raw text decoded; captures are
/// per segment.
fn check_route(path: &str) {
    if let Some(key) = fixed_key(path) {
        assert_eq!(key.matches('/').count(), path.matches('/').count(), "{key:?} from {path:?}");
        if !path.contains('%') {
            assert_eq!(key, path);
        }
    }
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    if let Some(params) = Pattern::parse("/files/*").matches(&raw) {
        let tail = params.tail_raw.as_deref().expect("a tail");
        assert_eq!(tail, raw[1..].join("/"));
        let decoded = percent_encoding::percent_decode_str(tail).decode_utf8_lossy();
        assert_eq!(params.get("*"), Some(&*decoded));
    }
    if let Some(params) = Pattern::parse("/a/:x/:y").matches(&raw) {
        assert_eq!(raw.len(), 3);
        assert_eq!(params.iter().count(), 2);
    }
}

/// `Origin` against `Host`: the comparison is symmetric, reflexive, and
/// the scheme's default port is implied.
fn check_authority(a: &str, b: &str) {
    for secure in [false, true] {
        assert_eq!(same_authority(a, b, secure), same_authority(b, a, secure));
        assert!(same_authority(a, a, secure));
    }
    let plain = !a.is_empty() && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
    if plain {
        assert!(same_authority(a, &format!("{a}:80"), false));
        assert!(same_authority(a, &format!("{a}:443"), true));
        assert!(!same_authority(a, &format!("{a}:1"), false));
    }
}

/// The WebSocket handshake rule as the framework applies it (simples-ws's
/// `Offer::from_head` on hyper's request, plain GETs answered 426): a
/// refusal is always the client's error (4xx, never 5xx); an accepted key is
/// 16 bytes in base64.
fn check_handshake(text: &str, http10: bool) {
    use simples_ws::handshake::{NonUpgrade, Offer};
    let mut request = http::Request::new(());
    *request.version_mut() = if http10 { http::Version::HTTP_10 } else { http::Version::HTTP_11 };
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
        else {
            continue;
        };
        request.headers_mut().append(name, value);
    }
    match Offer::from_head(&request, NonUpgrade::UpgradeRequired) {
        Ok(offer) => {
            use base64::Engine as _;
            assert!(!http10);
            let bytes = base64::engine::general_purpose::STANDARD.decode(offer.key()).expect("base64 key");
            assert_eq!(bytes.len(), 16);
        }
        Err(e) => assert!((400..500).contains(&e.status()), "handshake refused with {}: {e:?}", e.status()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_pass() {
        let seeds: [&[u8]; 8] = [
            b"\x05gzip;q=0.5, br;q=1.0, *;q=0",
            b"\x64bytes=10-20",
            b"\x64bytes=-5",
            b"\x00Example.COM:8080",
            b"\x00\"a\", W/\"b\"|\"b\"",
            b"\x00/a/%2e%2e/b",
            b"\x40.well-known/x",
            b"\x00host: example.com\nupgrade: websocket\nconnection: Upgrade\nsec-websocket-version: 13\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        ];
        for seed in seeds {
            super::http_headers(seed);
        }
    }
}
