//! The browser client, `simples.js` (plain JavaScript, no build step), and
//! its TypeScript declarations, `simples.d.ts`, embedded in the binary and
//! served by [`Host::serve_client`](crate::Host::serve_client).

use http::{header, HeaderValue};

use crate::host::Host;
use crate::response::Response;

/// The source of `simples.js`.
pub const SIMPLES_JS: &str = include_str!("../../assets/simples.js");

/// The TypeScript declarations of `simples.js` (`simples.d.ts`).
pub const SIMPLES_D_TS: &str = include_str!("../../assets/simples.d.ts");

/// `text/plain` rather than `application/typescript`: that name is not
/// registered (tools such as Deno go by the `.d.ts` extension for
/// `text/plain`), browsers display text/plain instead of downloading it, and
/// the compression middleware compresses `text/*`.
const D_TS_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Host {
    /// Serves the browser client at `path` (usually `/simples.js`) and its
    /// TypeScript declarations beside it: at `path` with `.d.ts` in place of
    /// a final `.js` (`/simples.d.ts`), or with `.d.ts` appended to a path
    /// without one. Both with `Cache-Control: no-cache` (revalidated, so a
    /// new server version is picked up at once).
    pub fn serve_client(&mut self, path: &str) -> &mut Self {
        let d_ts = format!("{}.d.ts", path.strip_suffix(".js").unwrap_or(path));
        self.get(path, |_conn| async move { asset(SIMPLES_JS, "text/javascript; charset=utf-8") });
        self.get(&d_ts, |_conn| async move { asset(SIMPLES_D_TS, D_TS_CONTENT_TYPE) })
    }
}

/// An embedded file with its content type and the client's caching header.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = Response::new(body.into());
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
