//! The browser client, `simples.js` (plain JavaScript, no build step),
//! embedded in the binary and served by
//! [`Host::serve_client`](crate::Host::serve_client).

use http::{header, HeaderValue};

use crate::host::Host;
use crate::response::Response;

/// The source of `simples.js`.
pub const SIMPLES_JS: &str = include_str!("../../assets/simples.js");

impl Host {
    /// Serves the browser client at `path` (usually `/simples.js`).
    pub fn serve_client(&mut self, path: &str) -> &mut Self {
        self.get(path, |_conn| async move {
            let mut res = Response::new(SIMPLES_JS.into());
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        })
    }
}
