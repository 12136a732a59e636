//! Building the response: setters, then one terminal call that consumes the
//! [`Conn`] and returns the [`Response`].

use bytes::Bytes;
use futures_core::Stream;
use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;
use serde::Serialize;

use super::Conn;
use crate::body::{Body, BoxError};
use crate::error::Error;
use crate::headers::with_charset;
use crate::response::{IntoResponse, Response};

impl Conn {
    /// Sets the response status (default `200`). An invalid code is
    /// ignored.
    pub fn set_status(&mut self, code: u16) -> &mut Self {
        if let Ok(s) = StatusCode::from_u16(code) {
            self.status = s;
        }
        self
    }

    /// The response status set so far.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Sets (replaces) response header `name`. Invalid names or values are
    /// ignored (with a debug log).
    pub fn set_header(&mut self, name: &str, value: &str) -> &mut Self {
        if let Some((n, v)) = valid_header(name, value) {
            self.headers.insert(n, v);
        }
        self
    }

    /// Adds a value to response header `name` (keeping earlier ones).
    pub fn append_header(&mut self, name: &str, value: &str) -> &mut Self {
        if let Some((n, v)) = valid_header(name, value) {
            self.headers.append(n, v);
        }
        self
    }

    /// The response headers set so far.
    pub fn response_headers(&mut self) -> &mut http::HeaderMap {
        &mut self.headers
    }

    /// Sets the `Content-Type`: a full media type (`"text/csv"`) or a file
    /// extension (`"json"`, `"html"`, `"png"`).
    pub fn set_type(&mut self, kind: &str) -> &mut Self {
        let value = if kind.contains('/') { kind.to_string() } else { content_type_for_ext(kind) };
        self.set_header("content-type", &value)
    }

    /// Adds a `Set-Cookie` header (build one with
    /// `Cookie::build(("name", "value")).http_only(true)...`).
    pub fn set_cookie(&mut self, cookie: impl Into<cookie::Cookie<'static>>) -> &mut Self {
        let cookie = cookie.into().encoded().to_string();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            self.headers.append(header::SET_COOKIE, v);
        }
        self
    }

    /// Asks the client to delete cookie `name` (for path `/`).
    pub fn remove_cookie(&mut self, name: &str) -> &mut Self {
        let mut c = cookie::Cookie::build((name.to_string(), "")).path("/").build();
        c.make_removal();
        self.set_cookie(c)
    }

    /// Finishes with `body` (`&str`, `String`, `Vec<u8>`, `Bytes`, ...).
    /// The content type, if not set, is `text/plain; charset=utf-8` for
    /// text and `application/octet-stream` for bytes.
    pub fn send(mut self, body: impl Into<Body>) -> Response {
        let body = body.into();
        if !self.headers.contains_key(header::CONTENT_TYPE) && !body.is_empty() {
            let text = body.as_bytes().is_some_and(|b| std::str::from_utf8(b).is_ok());
            let ct = if text { "text/plain; charset=utf-8" } else { "application/octet-stream" };
            self.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        self.finish(body)
    }

    /// Finishes with no body.
    pub fn end(self) -> Response {
        self.finish(Body::empty())
    }

    /// Finishes with `html` as `text/html; charset=utf-8`.
    pub fn html(mut self, html: impl Into<Body>) -> Response {
        self.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        self.finish(html.into())
    }

    /// Finishes with `value` serialized as JSON (`application/json`).
    pub fn json_response<T: Serialize + ?Sized>(mut self, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.finish(bytes.into())
            }
            Err(e) => Error::new(500, format!("cannot serialize JSON: {e}")).into_response(),
        }
    }

    /// Finishes with a `302 Found` redirect to `location`.
    pub fn redirect(self, location: &str) -> Response {
        self.redirect_with(302, location)
    }

    /// Finishes with a redirect of status `code` (301, 302, 303, 307 or
    /// 308) to `location`.
    pub fn redirect_with(mut self, code: u16, location: &str) -> Response {
        match HeaderValue::from_str(location) {
            Ok(v) => {
                self.headers.insert(header::LOCATION, v);
                self.set_status(code);
                self.finish(Body::empty())
            }
            Err(_) => Error::new(500, "invalid redirect location").into_response(),
        }
    }

    /// Finishes with a streamed (chunked) body.
    pub fn stream<S, E>(self, stream: S) -> Response
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.finish(Body::stream(stream))
    }

    /// Finishes with template `name` rendered with `data` by the host's
    /// template engine, as `text/html; charset=utf-8` (unless a content
    /// type was set). `500` if the host has no engine or rendering fails.
    pub fn render<T: Serialize + ?Sized>(mut self, name: &str, data: &T) -> Response {
        let Some(engine) = self.context.templates.clone() else {
            return Error::new(500, "no template engine on this host").into_response();
        };
        let value = match serde_json::to_value(data) {
            Ok(v) => v,
            Err(e) => return Error::new(500, format!("cannot serialize template data: {e}")).into_response(),
        };
        match engine.render(name, &value) {
            Ok(text) => {
                if !self.headers.contains_key(header::CONTENT_TYPE) {
                    self.headers
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                }
                self.finish(text.into())
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "template rendering failed");
                e.into_response()
            }
        }
    }

    /// Builds the response from the status and headers set so far.
    fn finish(self, body: Body) -> Response {
        let mut res = Response::new(body);
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers;
        res
    }

    /// Adds the headers set so far to a response built elsewhere (keeping
    /// its status unless this connection's status was changed from 200).
    pub(crate) fn merge(self, mut res: Response) -> Response {
        if self.status != StatusCode::OK && res.status() == StatusCode::OK {
            *res.status_mut() = self.status;
        }
        let existing: Vec<HeaderName> = res.headers().keys().cloned().collect();
        let mut name = None;
        for (n, v) in self.headers {
            if let Some(n) = n {
                name = Some(n);
            }
            if let Some(n) = &name {
                if !existing.contains(n) || *n == header::SET_COOKIE {
                    res.headers_mut().append(n.clone(), v);
                }
            }
        }
        res
    }
}

/// The content type for a file extension (text types get `charset=utf-8`).
pub(crate) fn content_type_for_ext(ext: &str) -> String {
    let mime = mime_guess::from_ext(ext).first_or_octet_stream();
    with_charset(mime.essence_str())
}

/// `name: value` as a header; `None` (with a debug log) when the name or
/// the value is invalid.
fn valid_header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        (Ok(n), Ok(v)) => Some((n, v)),
        _ => {
            tracing::debug!(name, "ignoring an invalid response header");
            None
        }
    }
}
