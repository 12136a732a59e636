//! Small header helpers: q-value lists (`Accept-Language`,
//! `Accept-Encoding`), the `Host` header, media types with a charset.

/// Parses a q-value list (`a;q=0.5, b, c;q=0`) into `(token, q)` pairs in
/// their original order. `q` is in thousandths (`1000` = 1.0); a malformed
/// q reads as `0` (the element is ignored), a missing one as `1000`.
pub(crate) fn qvalues(header: &str) -> Vec<(&str, u16)> {
    let mut out = Vec::new();
    for element in header.split(',') {
        let mut parts = element.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            continue;
        }
        let mut q = 1000;
        for param in parts {
            let param = param.trim();
            if let Some(v) = param.strip_prefix("q=").or_else(|| param.strip_prefix("Q=")) {
                q = parse_q(v.trim()).unwrap_or(0);
            }
        }
        out.push((token, q));
    }
    out
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110
/// §12.4.2), in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The decoded `(name, value)` pairs of a query string (none when it is
/// malformed).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

/// The cookies of every `Cookie` header, percent-decoded, or why they are
/// malformed.
pub(crate) fn cookies(headers: &http::HeaderMap) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::COOKIE) {
        let text = value.to_str().map_err(|_| "Cookie header is not text".to_string())?;
        for c in cookie::Cookie::split_parse_encoded(text) {
            let c = c.map_err(|e| format!("malformed Cookie header: {e}"))?;
            out.push((c.name().to_string(), c.value().to_string()));
        }
    }
    Ok(out)
}

/// The languages of an `Accept-Language` header, most preferred first
/// (stable for equal q), without those at `q=0` and without `*`.
pub(crate) fn languages(header: &str) -> Vec<String> {
    let mut langs: Vec<(&str, u16)> =
        qvalues(header).into_iter().filter(|(t, q)| *q > 0 && *t != "*").collect();
    langs.sort_by_key(|l| std::cmp::Reverse(l.1));
    langs.into_iter().map(|(t, _)| t.to_string()).collect()
}

/// Normalizes a `Host` header (or URI authority): drops the port and a
/// trailing dot, lowercases. `[::1]:8080` becomes `[::1]`.
pub(crate) fn host_name(host: &str) -> String {
    host_name_part(host).to_ascii_lowercase()
}

/// The part of `host` that [`host_name`] lowercases (a slice of it).
pub(crate) fn host_name_part(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.')
}

/// Adds `; charset=utf-8` to textual media types.
pub(crate) fn with_charset(essence: &str) -> String {
    let textual = essence.starts_with("text/")
        || matches!(essence, "application/javascript" | "application/json" | "image/svg+xml" | "application/xml");
    if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(qvalues("gzip;q=0.5, br, x;q=0"), vec![("gzip", 500), ("br", 1000), ("x", 0)]);
        assert_eq!(qvalues("a;q=1.000, b;q=0.001, c;q=2"), vec![("a", 1000), ("b", 1), ("c", 0)]);
    }

    #[test]
    fn language_order() {
        assert_eq!(languages("fr;q=0.8, en-US, de;q=0, *;q=0.1, ro;q=0.9"), ["en-US", "ro", "fr"]);
    }

    #[test]
    fn hosts() {
        assert_eq!(host_name("Example.COM:8080"), "example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:80"), "[::1]");
    }
}
