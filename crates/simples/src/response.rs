//! Responses: the [`Response`] type and what a handler may return
//! ([`IntoResponse`]).
//!
//! An [`Error`] returned by a handler becomes a bodiless response that
//! carries the error in its extensions; the host then renders it with its
//! error route for that status (see `Host::error`).

use http::{header, HeaderValue, StatusCode};

use crate::body::Body;
use crate::error::Error;

/// The HTTP response type handlers produce.
pub type Response = http::Response<Body>;

/// Something a handler can return.
pub trait IntoResponse {
    /// Converts into a response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = self.status();
        res.extensions_mut().insert(Pending(std::sync::Arc::new(self)));
        res
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let reason = self.canonical_reason().unwrap_or("error");
        Error::new(self.as_u16(), reason).into_response()
    }
}

impl<T: IntoResponse, E: Into<Error>> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into().into_response(),
        }
    }
}

/// An error response whose page the host has not rendered yet.
#[derive(Clone)]
pub(crate) struct Pending(pub(crate) std::sync::Arc<Error>);

/// Takes the not-yet-rendered error out of `res`, if any.
pub(crate) fn take_pending(res: &mut Response) -> Option<std::sync::Arc<Error>> {
    res.extensions_mut().remove::<Pending>().map(|p| p.0)
}

/// The default error page: `"<code> <reason phrase>: <reason>"` as text.
pub(crate) fn default_error_page(error: &Error) -> Response {
    let status = error.status();
    let phrase = status.canonical_reason().unwrap_or("Error");
    let text = if error.reason().is_empty() || error.reason() == phrase {
        format!("{} {}\n", status.as_u16(), phrase)
    } else {
        format!("{} {}: {}\n", status.as_u16(), phrase, error.reason())
    };
    let mut res = Response::new(Body::from(text));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res
}

fn with_type(body: Body, content_type: &'static str) -> Response {
    let mut res = Response::new(body);
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        with_type(self.into(), "text/plain; charset=utf-8")
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_type(self.into(), "text/plain; charset=utf-8")
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_type(self.into(), "application/octet-stream")
    }
}

impl IntoResponse for bytes::Bytes {
    fn into_response(self) -> Response {
        with_type(self.into(), "application/octet-stream")
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut res = self.1.into_response();
        *res.status_mut() = self.0;
        res
    }
}
