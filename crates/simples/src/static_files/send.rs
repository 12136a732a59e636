//! Sending one file: content type, `ETag` (size and modification time),
//! `Last-Modified`, the preconditions of RFC 9110 §13.2.2 (`412`, `304`)
//! and single byte ranges (`206`, `416`; multi-range requests get the whole
//! file). Used by [`Conn::file`] (defined here, so that `conn` needs nothing
//! of this module) and by `StaticDir`.

use std::io::SeekFrom;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use std::io::Read as _;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use crate::body::Body;
use crate::conn::Conn;
use crate::error::Error;
use crate::head::Head;
use crate::headers::with_charset;
use crate::response::{IntoResponse, Response};

impl Conn {
    /// Finishes with the file at `path`, with its content type, `ETag`,
    /// `Last-Modified`, conditional requests (`304`) and ranges (`206`,
    /// `416`). `404` if it is missing or not a regular file. The path is
    /// used as given: never pass an unchecked client path (use
    /// `Host::serve_dir` for that).
    pub async fn file(self, path: impl AsRef<Path>) -> Response {
        let path = path.as_ref().to_path_buf();
        let res = send_file(&self.head, &path).await;
        self.merge(res)
    }
}

/// Files up to this size are read whole into one buffer; larger ones are
/// streamed.
const WHOLE_READ_MAX: u64 = 64 * 1024;

/// A file opened, with its metadata and, when small, its content.
struct Opened {
    file: std::fs::File,
    meta: std::fs::Metadata,
    whole: Option<Bytes>,
}

/// Opens `path` (blocking): a regular file, read whole when small.
fn open(path: &Path) -> std::io::Result<Opened> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    let whole = if meta.len() <= WHOLE_READ_MAX {
        let mut buf = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut buf)?;
        Some(Bytes::from(buf))
    } else {
        None
    };
    Ok(Opened { file, meta, whole })
}

/// Sends the file at `path` for the request `head`.
pub(super) async fn send_file(head: &Head, path: &Path) -> Response {
    let owned = path.to_path_buf();
    let opened = match tokio::task::spawn_blocking(move || open(&owned)).await {
        Ok(Ok(o)) => o,
        _ => return Error::not_found("no such file").into_response(),
    };
    let size = opened.meta.len();
    let modified = opened.meta.modified().ok();
    let nanos = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let etag = format!("\"{nanos:x}-{size:x}\"");
    let last_modified = modified.map(httpdate::fmt_http_date);

    let mut headers = HeaderMap::new();
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&with_charset(mime.essence_str())).expect("mime"));
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("etag"));
    if let Some(lm) = &last_modified {
        headers.insert(header::LAST_MODIFIED, HeaderValue::from_str(lm).expect("date"));
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    if let Some(status) = precondition(head, &etag, modified) {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = status;
        if status == StatusCode::NOT_MODIFIED {
            headers.remove(header::CONTENT_TYPE);
            *res.headers_mut() = headers;
        }
        return res;
    }

    let mut status = StatusCode::OK;
    let (mut start, mut len) = (0, size);
    let get = head.method == Method::GET || head.method == Method::HEAD;
    if let Some(range) = head.headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| get) {
        if if_range_holds(head, &etag, modified) {
            match parse_range(range, size) {
                RangeSpec::One(s, e) => {
                    status = StatusCode::PARTIAL_CONTENT;
                    (start, len) = (s, e - s + 1);
                    let cr = format!("bytes {s}-{e}/{size}");
                    headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("range"));
                }
                RangeSpec::Unsatisfiable => {
                    let mut res = Response::new(Body::empty());
                    *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                    let cr = format!("bytes */{size}");
                    res.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("range"));
                    return res;
                }
                RangeSpec::Ignore => {}
            }
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));

    let body = if head.method == Method::HEAD || len == 0 {
        Body::empty()
    } else if let Some(whole) = opened.whole {
        // The file may have grown since its metadata was read: clamp.
        let end = ((start + len) as usize).min(whole.len());
        Body::from(whole.slice((start as usize).min(end)..end))
    } else {
        let mut file = tokio::fs::File::from_std(opened.file);
        if start > 0 {
            if let Err(e) = file.seek(SeekFrom::Start(start)).await {
                return Error::from(e).into_response();
            }
        }
        Body::stream(ReaderStream::with_capacity(file.take(len), 64 * 1024))
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// The conditional-request outcome, if any: `412` or `304`.
fn precondition(head: &Head, etag: &str, modified: Option<SystemTime>) -> Option<StatusCode> {
    let h = &head.headers;
    let text = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let mtime_secs = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs());
    let date_secs = |v: &str| httpdate::parse_http_date(v).ok()?.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    if let Some(im) = text(header::IF_MATCH) {
        if !etag_list_matches(im, etag, false) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let (Some(ius), Some(m)) = (text(header::IF_UNMODIFIED_SINCE).and_then(date_secs), mtime_secs) {
        if m > ius {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    let get = head.method == Method::GET || head.method == Method::HEAD;
    if let Some(inm) = text(header::IF_NONE_MATCH) {
        if etag_list_matches(inm, etag, true) {
            return Some(if get { StatusCode::NOT_MODIFIED } else { StatusCode::PRECONDITION_FAILED });
        }
    } else if let (true, Some(ims), Some(m)) = (get, text(header::IF_MODIFIED_SINCE).and_then(date_secs), mtime_secs) {
        if m <= ims {
            return Some(StatusCode::NOT_MODIFIED);
        }
    }
    None
}

/// Whether a list of entity tags (or `*`) matches `etag`; weak comparison
/// ignores `W/` prefixes.
pub(crate) fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|tag| {
        let (is_weak, bare) = match tag.strip_prefix("W/") {
            Some(t) => (true, t),
            None => (false, tag),
        };
        let ours = etag.strip_prefix("W/").unwrap_or(etag);
        (weak || !is_weak) && bare == ours
    })
}

/// `If-Range` absent, or naming the current version (strong ETag or exact
/// date): the range applies.
fn if_range_holds(head: &Head, etag: &str, modified: Option<SystemTime>) -> bool {
    let Some(v) = head.headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let v = v.trim();
    if v.starts_with('"') {
        return v == etag;
    }
    match (httpdate::parse_http_date(v).ok(), modified) {
        (Some(d), Some(m)) => {
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            secs(d) == secs(m)
        }
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// One satisfiable range, inclusive bounds.
    One(u64, u64),
    /// Syntactically valid but no range overlaps the file: `416`.
    Unsatisfiable,
    /// Malformed, several ranges or another unit: send the whole file.
    Ignore,
}

pub(crate) fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeSpec::Ignore,
        (true, false) => match num(b) {
            // Suffix range: the last n bytes.
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::One(size.saturating_sub(n), size - 1),
            None => RangeSpec::Ignore,
        },
        (false, _) => {
            let Some(start) = num(a) else { return RangeSpec::Ignore };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeSpec::Ignore,
                }
            };
            if start >= size {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::One(start, end.map_or(size - 1, |e| e.min(size - 1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::One(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::One(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::One(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), RangeSpec::One(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeSpec::One(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
    }

    #[test]
    fn etags() {
        assert!(etag_list_matches("\"a\", \"b\"", "\"b\"", false));
        assert!(etag_list_matches("W/\"b\"", "\"b\"", true));
        assert!(!etag_list_matches("W/\"b\"", "\"b\"", false));
        assert!(etag_list_matches("*", "\"b\"", false));
    }
}
