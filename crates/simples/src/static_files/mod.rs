//! Static files: a directory served under a path prefix, with no way out
//! of it.
//!
//! The request's tail is split on `/` *before* percent-decoding, and each
//! decoded segment is refused (`400`) when it is `..`, contains `/`, `\` or
//! NUL, or is not UTF-8; hidden names (leading `.`) are `404` unless
//! allowed. The resulting path is then canonicalized (resolving symlinks)
//! and must still lie inside the canonical root, or it is `404`. `send.rs`
//! sends a file with `ETag`, `Last-Modified`, `304`, `206` and `416`.
//!
//! Why not tower-http's `ServeDir`: it follows symlinks out of the root
//! (a canonicalize-and-prefix check would be needed around it anyway), it
//! only gained `ETag`s very recently (tower-rs/tower-http#691), and it
//! would bring tower into a framework that is not tower-based; this module
//! is small and does all of it (plus the rules above).

mod send;

use std::path::{Path, PathBuf};

use http::{header, HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::response::{IntoResponse, Response};

pub(crate) use send::{etag_list_matches, parse_range, RangeSpec};

/// Options of a served directory.
#[derive(Debug, Clone)]
pub struct StaticOptions {
    /// File served for a directory. Default: `Some("index.html")`.
    pub index: Option<String>,
    /// Serve names starting with `.` (e.g. `.env`). Default: `false`.
    pub dotfiles: bool,
    /// `Cache-Control: max-age` in seconds. Default: `None` (no header).
    pub max_age: Option<u64>,
}

impl Default for StaticOptions {
    fn default() -> Self {
        StaticOptions { index: Some("index.html".into()), dotfiles: false, max_age: None }
    }
}

/// A directory being served.
pub(crate) struct StaticDir {
    root: PathBuf,
    /// The canonical root when it could be computed at registration.
    canonical: Option<PathBuf>,
    options: StaticOptions,
}

impl StaticDir {
    pub(crate) fn new(root: PathBuf, options: StaticOptions) -> StaticDir {
        let canonical = std::fs::canonicalize(&root).ok();
        StaticDir { root, canonical, options }
    }

    /// Answers a request whose route captured the tail (`*`).
    pub(crate) async fn serve(&self, conn: Conn) -> Response {
        match self.resolve(&conn).await {
            Ok(Resolved::File(path)) => {
                let mut res = conn.file(&path).await;
                if let Some(age) = self.options.max_age {
                    if res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED {
                        res.headers_mut().insert(
                            header::CACHE_CONTROL,
                            HeaderValue::from_str(&format!("max-age={age}")).expect("valid header"),
                        );
                    }
                }
                res
            }
            Ok(Resolved::Redirect(location)) => conn.redirect_with(301, &location),
            Err(e) => e.into_response(),
        }
    }

    async fn resolve(&self, conn: &Conn) -> Result<Resolved> {
        let tail = conn.params.tail_raw.as_deref().unwrap_or("");
        let relative = relative_path(tail, self.options.dotfiles)?;
        // All file-system checks in one trip to the blocking pool.
        let (root, canonical) = (self.root.clone(), self.canonical.clone());
        let index = self.options.index.clone();
        let located = tokio::task::spawn_blocking(move || locate(&root, canonical, &relative, index.as_deref()))
            .await
            .map_err(|_| Error::new(500, "file lookup failed"))??;
        match located {
            Located::File(path) => Ok(Resolved::File(path)),
            Located::Dir(index) => {
                if !conn.path().ends_with('/') {
                    let query = conn.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
                    return Ok(Resolved::Redirect(format!("{}/{query}", conn.path())));
                }
                index.map(Resolved::File).ok_or_else(not_found)
            }
        }
    }
}

enum Located {
    File(PathBuf),
    /// A directory, with its index file when it has one.
    Dir(Option<PathBuf>),
}

/// Finds `relative` under `root` (blocking): canonicalizes it (following
/// symlinks) and refuses anything that ends up outside the canonical root.
fn locate(root: &Path, canonical: Option<PathBuf>, relative: &Path, index: Option<&str>) -> Result<Located> {
    let root = match canonical {
        Some(c) => c,
        None => std::fs::canonicalize(root).map_err(|_| not_found())?,
    };
    let path = inside(&root, &root.join(relative))?;
    let meta = std::fs::metadata(&path).map_err(|_| not_found())?;
    if !meta.is_dir() {
        return Ok(Located::File(path));
    }
    let index = match index {
        Some(name) => inside(&root, &path.join(name)).ok().filter(|p| p.is_file()),
        None => None,
    };
    Ok(Located::Dir(index))
}

enum Resolved {
    File(PathBuf),
    Redirect(String),
}

fn not_found() -> Error {
    Error::not_found("no such file")
}

/// The path below the served directory named by a request's raw tail:
/// only plain names (see the module docs), so it cannot leave the root
/// before symlinks are considered.
pub(crate) fn relative_path(tail: &str, dotfiles: bool) -> Result<PathBuf> {
    let mut relative = PathBuf::new();
    for seg in tail.split('/') {
        if seg.is_empty() {
            continue;
        }
        let name = decode_segment(seg)?;
        if name == "." {
            continue;
        }
        if name.starts_with('.') && !dotfiles {
            return Err(not_found());
        }
        relative.push(name);
    }
    Ok(relative)
}

/// Percent-decodes one path segment, refusing anything that could step out
/// of the directory or is not a plain name.
fn decode_segment(seg: &str) -> Result<String> {
    let bytes: Vec<u8> = percent_decode_str(seg).collect();
    let name = String::from_utf8(bytes).map_err(|_| Error::bad_request("path is not valid UTF-8"))?;
    if name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(Error::bad_request("forbidden path segment"));
    }
    Ok(name)
}

/// Canonicalizes `path` (following symlinks) and checks it stays in `root`.
fn inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(path).map_err(|_| not_found())?;
    if canonical.starts_with(root) {
        Ok(canonical)
    } else {
        tracing::debug!(path = %path.display(), "refusing a path that leaves the served directory");
        Err(not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert!(decode_segment("..").is_err());
        assert!(decode_segment("%2e%2e").is_err());
        assert!(decode_segment("%2E%2E").is_err());
        assert!(decode_segment("a%2fb").is_err());
        assert!(decode_segment("a%5cb").is_err());
        assert!(decode_segment("a%00").is_err());
        assert!(decode_segment("%ff").is_err());
        assert_eq!(decode_segment("a%20b.txt").unwrap(), "a b.txt");
    }
}
