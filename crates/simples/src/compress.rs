//! Response compression (br, gzip, deflate) negotiated from
//! `Accept-Encoding` q-values, streamed through `async-compression`.
//!
//! A response is compressed only when: the host enables it, it is not a
//! `HEAD`, its status is not 1xx/204/206/304, it has no `Content-Encoding`
//! or `Content-Range`, its type is textual (text, JSON, JavaScript, XML,
//! SVG, wasm) and its body is a stream or at least [`MIN_SIZE`] bytes.
//!
//! ## Why not tower-http's `CompressionLayer`
//!
//! Measured on the same requests through `Server::service` without a
//! socket (`tests/tower_http_compare.rs`, a 73,940-byte HTML page, µs per
//! request, test profile): gzip 488 here / 440 tower-http, br 1512 /
//! 1670, deflate 475 / 463, with byte-identical sizes (3,999, 1,681 and
//! 3,987 B: both are `async-compression`, at the same levels); a 5-byte
//! body is left alone by both (2.8 / 5.1 µs with CORS on). Neither is
//! faster, so this one stays: it is a per-host option
//! (`HostOptions::compression`) applied inside the pipeline before the
//! access log (which then logs what was sent), it compresses only textual
//! types (tower-http: everything but images, gRPC and event streams, from
//! 32 bytes), weakens a strong `ETag` of a compressed response (RFC 9110
//! §8.8.1) and leaves ranges alone, and it needs no extra dependency.
//! tower-http's layer (with zstd) can wrap `Server::service()` instead.

use std::io;

use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZlibEncoder};
use async_compression::Level;
use futures_util::TryStreamExt as _;
use http::{header, HeaderValue, Method, StatusCode};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::body::Body;
use crate::head::Head;
use crate::headers::qvalues;
use crate::response::Response;

/// Bodies smaller than this are sent as they are.
pub const MIN_SIZE: u64 = 256;

/// A content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Brotli,
    Gzip,
    Deflate,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// The best coding the client accepts: highest q, ties broken in the
/// order br, gzip, deflate; `*` covers codings not listed; `q=0` refuses.
pub(crate) fn negotiate(accept: &str) -> Option<Coding> {
    let list = qvalues(accept);
    let q_of = |name: &str| -> Option<u16> {
        list.iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(name))
            .or_else(|| list.iter().find(|(t, _)| *t == "*"))
            .map(|(_, q)| *q)
    };
    let mut best: Option<(Coding, u16)> = None;
    for coding in [Coding::Brotli, Coding::Gzip, Coding::Deflate] {
        if let Some(q) = q_of(coding.name()).filter(|&q| q > 0) {
            if best.map_or(true, |(_, bq)| q > bq) {
                best = Some((coding, q));
            }
        }
    }
    best.map(|(c, _)| c)
}

pub(crate) fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml" | "application/wasm"
        )
}

/// Compresses `res` when the request and the response allow it.
pub(crate) fn maybe_compress(head: &Head, mut res: Response) -> Response {
    let status = res.status();
    if head.method == Method::HEAD
        || status.is_informational()
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED)
    {
        return res;
    }
    let h = res.headers();
    if h.contains_key(header::CONTENT_ENCODING) || h.contains_key(header::CONTENT_RANGE) {
        return res;
    }
    if !h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(compressible) {
        return res;
    }
    let declared = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.or(res.body().len()).is_some_and(|n| n < MIN_SIZE) {
        return res;
    }
    let Some(coding) = head.headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).and_then(negotiate)
    else {
        return res;
    };
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.name()));
    headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        if !etag.starts_with("W/") {
            if let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}")) {
                headers.insert(header::ETAG, weak);
            }
        }
    }
    let body = std::mem::take(res.body_mut());
    let reader = StreamReader::new(body.into_stream().map_err(io::Error::other));
    let compressed = match coding {
        Coding::Brotli => Body::stream(ReaderStream::new(BrotliEncoder::with_quality(reader, Level::Precise(4)))),
        Coding::Gzip => Body::stream(ReaderStream::new(GzipEncoder::with_quality(reader, Level::Default))),
        Coding::Deflate => Body::stream(ReaderStream::new(ZlibEncoder::with_quality(reader, Level::Default))),
    };
    *res.body_mut() = compressed;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate("gzip, deflate, br"), Some(Coding::Brotli));
        assert_eq!(negotiate("gzip;q=1, br;q=0.5"), Some(Coding::Gzip));
        assert_eq!(negotiate("deflate"), Some(Coding::Deflate));
        assert_eq!(negotiate("*;q=0.1, br;q=0"), Some(Coding::Gzip));
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate("gzip;q=0"), None);
    }
}
