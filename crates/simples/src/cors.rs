//! Cross-origin resource sharing, configured as in simpleS: a list of
//! allowed origins (`"*"` for any), methods, headers and credentials.
//!
//! ## Why not tower-http's `CorsLayer`
//!
//! On the same requests (`tests/tower_http_compare.rs`) both answer the
//! same `Access-Control-Allow-Origin`; a small response costs 2.8 µs here
//! with CORS and compression checks, 5.1 µs through tower-http's two
//! layers. tower-http has more (exposed headers, origin predicates,
//! private network access); this one is a per-host option
//! (`HostOptions::cors`) whose preflights are answered before routing and
//! middlewares, refuses a disallowed preflight with `403` and needs no
//! extra dependency, so it stays. Applications that need tower-http's
//! features wrap `Server::service()` in its layer.

use std::time::Duration;

use http::{header, HeaderValue, Method, StatusCode};

use crate::body::Body;
use crate::error::Error;
use crate::head::Head;
use crate::response::{default_error_page, Response};

/// CORS settings (`HostOptions::cors`).
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins, exactly as browsers send them
    /// (`"https://app.example.com"`), or `"*"` for any. Default: empty
    /// (no origin allowed).
    pub origins: Vec<String>,
    /// Methods allowed in preflights. Default: GET, HEAD, POST, PUT,
    /// PATCH, DELETE.
    pub methods: Vec<Method>,
    /// Request headers allowed in preflights; empty allows the ones the
    /// preflight asks for. Default: empty.
    pub headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (the origin is then
    /// echoed even for `"*"`). Default: `false`.
    pub credentials: bool,
    /// How long browsers may cache a preflight. Default: `None` (no
    /// `Access-Control-Max-Age`).
    pub max_age: Option<Duration>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            origins: Vec::new(),
            methods: vec![Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
            headers: Vec::new(),
            credentials: false,
            max_age: None,
        }
    }
}

impl Cors {
    /// Default settings allowing `origins` (`["*"]` for any).
    pub fn origins<I: IntoIterator<Item = S>, S: Into<String>>(origins: I) -> Cors {
        Cors { origins: origins.into_iter().map(Into::into).collect(), ..Cors::default() }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    fn allow_origin_value(&self, origin: &str) -> Option<HeaderValue> {
        let any = self.origins.iter().any(|o| o == "*");
        if any && !self.credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            HeaderValue::from_str(origin).ok()
        }
    }
}

/// Answers a preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`): `204` with the allowances, or `403`
/// for an origin or method that is not allowed.
pub(crate) fn preflight(cors: &Cors, head: &Head) -> Option<Response> {
    if head.method != Method::OPTIONS {
        return None;
    }
    let origin = head.headers.get(header::ORIGIN)?.to_str().ok()?;
    let method = head.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let method_ok = cors.methods.iter().any(|m| m.as_str().as_bytes() == method.as_bytes());
    if !cors.allows(origin) || !method_ok {
        let reason = if method_ok { "origin not allowed" } else { "method not allowed by CORS" };
        return Some(default_error_page(&Error::new(403, reason)));
    }
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    let methods: Vec<&str> = cors.methods.iter().map(Method::as_str).collect();
    if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let allowed_headers = if cors.headers.is_empty() {
        head.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned()
    } else {
        HeaderValue::from_str(&cors.headers.join(", ")).ok()
    };
    if let Some(v) = allowed_headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age.as_secs()));
    }
    Some(res)
}

/// Adds `Access-Control-Allow-Origin` (and credentials, `Vary: Origin`) to
/// a response for an allowed origin.
pub(crate) fn decorate(cors: &Cors, head: &Head, res: &mut Response) {
    let Some(origin) = head.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return;
    };
    if !cors.allows(origin) {
        return;
    }
    let Some(value) = cors.allow_origin_value(origin) else { return };
    let h = res.headers_mut();
    let echoed = value != "*";
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if cors.credentials {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if echoed {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
