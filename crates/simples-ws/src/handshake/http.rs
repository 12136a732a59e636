//! Small HTTP/1.1 helpers shared by the server and client handshakes:
//! owned header storage, token/value validation for headers we *write*,
//! reason phrases, and the head-size bound applied before `httparse` runs.
//!
//! Parsing itself is always done by `httparse`; nothing here parses a
//! request line or header block by hand.

use std::borrow::Cow;

use super::error::{HandshakeError, HandshakeErrorKind};

/// Owned header fields in arrival order: (name as sent, value bytes with
/// surrounding optional whitespace removed).
pub(crate) type Headers = Vec<(String, Vec<u8>)>;

/// Optional whitespace (RFC 7230 §3.2.3): SP / HTAB.
pub(crate) fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Copies `httparse` headers into owned storage, trimming OWS from values
/// (RFC 7230 §3.2.4: leading/trailing whitespace is not part of the value).
pub(crate) fn own_headers(parsed: &[httparse::Header<'_>]) -> Headers {
    parsed
        .iter()
        .map(|h| (h.name.to_owned(), trim_ows(h.value).to_vec()))
        .collect()
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// All values of header `name` (case-insensitive), in order.
pub(crate) fn values<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// How many times a header that must appear at most once is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Single<'a> {
    /// Not present.
    Missing,
    /// Present exactly once, with this (trimmed) value.
    One(&'a [u8]),
    /// Present more than once.
    Many,
}

/// Looks up a header that must appear at most once. Empty values are
/// ignored when `skip_empty` is set.
pub(crate) fn single<'a>(headers: &'a Headers, name: &'a str, skip_empty: bool) -> Single<'a> {
    let mut found = values(headers, name).filter(|v| !(skip_empty && v.is_empty()));
    match (found.next(), found.next()) {
        (None, _) => Single::Missing,
        (Some(v), None) => Single::One(v),
        (Some(_), Some(_)) => Single::Many,
    }
}

/// All UTF-8 values of header `name`; non-UTF-8 values are skipped.
pub(crate) fn str_values<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> {
    values(headers, name).filter_map(|v| std::str::from_utf8(v).ok())
}

/// The first value of header `name`, if present and valid UTF-8.
pub(crate) fn first_str<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Whether any `name` header contains `token` in its comma list.
pub(crate) fn any_has_token(headers: &Headers, name: &str, token: &str) -> bool {
    str_values(headers, name).any(|v| header_has_token(v, token))
}

/// The slice of `buf` handed to `httparse`: one byte more than the limit, so
/// that an over-long head is detected even while still incomplete.
pub(crate) fn bounded(buf: &[u8], max_head_size: usize) -> &[u8] {
    &buf[..buf.len().min(max_head_size.saturating_add(1))]
}

/// `tchar` (RFC 7230 §3.2.6).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty `token` (RFC 7230 §3.2.6).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Checks a header we are about to write. The name must be a token
/// (RFC 7230 §3.2); the value must not contain CR, LF or NUL, which would
/// allow header injection / response splitting.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), HandshakeError> {
    if !is_token(name) {
        return Err(invalid(format!(
            "header name {name:?} is not a valid token"
        )));
    }
    check_value(name, value)
}

/// Checks a header value we are about to write (no CR, LF or NUL).
pub(crate) fn check_value(name: &str, value: &str) -> Result<(), HandshakeError> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(invalid(format!(
            "value of header {name} contains CR, LF or NUL"
        )));
    }
    Ok(())
}

/// Rejects application-supplied headers that the handshake writes itself.
pub(crate) fn check_not_reserved(name: &str, reserved: &[&str]) -> Result<(), HandshakeError> {
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(invalid(format!(
            "header {name} is set by the handshake and cannot be overridden"
        )));
    }
    Ok(())
}

fn invalid(reason: String) -> HandshakeError {
    HandshakeError::new(HandshakeErrorKind::InvalidHeader, Cow::Owned(reason))
}

/// Appends `name: value\r\n` to `out` (validated by the caller).
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Returns whether a comma-separated header value contains `token`,
/// compared ASCII case-insensitively, ignoring optional whitespace around
/// list elements (RFC 7230 §7 `#rule`).
///
/// `header_has_token("keep-alive, Upgrade", "upgrade") == true`. An empty
/// `token` never matches.
pub fn header_has_token(value: &str, token: &str) -> bool {
    let token = token.trim_matches(is_ows);
    !token.is_empty()
        && value
            .split(',')
            .any(|item| item.trim_matches(is_ows).eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_ows_only() {
        assert_eq!(trim_ows(b" \ta b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn header_checks() {
        assert!(check_header("Set-Cookie", "a=1; Path=/").is_ok());
        assert!(check_header("Bad Name", "x").is_err());
        assert!(check_header("", "x").is_err());
        assert!(check_header("X-A", "a\r\nEvil: 1").is_err());
        assert!(check_header("X-A", "a\nb").is_err());
        assert!(check_header("X-A\r\n", "a").is_err());
        assert!(check_not_reserved("upgrade", &["Upgrade"]).is_err());
        assert!(check_not_reserved("X-Up", &["Upgrade"]).is_ok());
    }

    #[test]
    fn bounded_window() {
        assert_eq!(bounded(b"abcdef", 3), b"abcd");
        assert_eq!(bounded(b"ab", 3), b"ab");
        assert_eq!(bounded(b"ab", usize::MAX), b"ab");
    }
}
