//! The access log: one line per response, from a format with
//! placeholders, emitted with `tracing::info!` (target `simples::access`).

use std::time::Duration;

use http::header;

use crate::head::Head;
use crate::response::Response;

/// An access log format (`HostOptions::log`).
///
/// Placeholders: `{ip}`, `{method}`, `{path}` (with the query), `{version}`,
/// `{status}`, `{bytes}` (`Content-Length`, or `-`), `{ms}` (time to the
/// response head, milliseconds with 3 decimals), `{host}`, `{referer}`,
/// `{user_agent}`. Anything else is copied as is.
#[derive(Debug, Clone)]
pub struct AccessLog {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Ip,
    Method,
    Path,
    Version,
    Status,
    Bytes,
    Ms,
    Host,
    Referer,
    UserAgent,
}

/// The default format.
pub const DEFAULT_LOG_FORMAT: &str = r#"{ip} "{method} {path} {version}" {status} {bytes} {ms}ms "{user_agent}""#;

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog::new(DEFAULT_LOG_FORMAT)
    }
}

impl AccessLog {
    /// A log with `format` (see the placeholders above). Default:
    /// [`DEFAULT_LOG_FORMAT`].
    pub fn new(format: &str) -> AccessLog {
        let mut parts = Vec::new();
        let mut rest = format;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 1..start + len];
            let part = match name {
                "ip" => Part::Ip,
                "method" => Part::Method,
                "path" => Part::Path,
                "version" => Part::Version,
                "status" => Part::Status,
                "bytes" => Part::Bytes,
                "ms" => Part::Ms,
                "host" => Part::Host,
                "referer" => Part::Referer,
                "user_agent" => Part::UserAgent,
                _ => {
                    parts.push(Part::Text(rest[..start + len + 1].to_string()));
                    rest = &rest[start + len + 1..];
                    continue;
                }
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            parts.push(part);
            rest = &rest[start + len + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        AccessLog { parts }
    }

    /// The line for one response.
    pub(crate) fn line(&self, head: &Head, res: &Response, elapsed: Duration) -> String {
        use std::fmt::Write as _;
        let header = |name: header::HeaderName| {
            head.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
        };
        let mut out = String::with_capacity(96);
        for part in &self.parts {
            let _ = match part {
                Part::Text(t) => write!(out, "{t}"),
                Part::Ip => write!(out, "{}", head.peer.ip()),
                Part::Method => write!(out, "{}", head.method),
                Part::Path => {
                    write!(out, "{}", head.uri.path_and_query().map_or("/", |p| p.as_str()))
                }
                Part::Version => write!(out, "{:?}", head.version),
                Part::Status => write!(out, "{}", res.status().as_u16()),
                Part::Bytes => match res.headers().get(header::CONTENT_LENGTH) {
                    Some(v) => write!(out, "{}", v.to_str().unwrap_or("-")),
                    None => match res.body().len() {
                        Some(n) => write!(out, "{n}"),
                        None => write!(out, "-"),
                    },
                },
                Part::Ms => write!(out, "{:.3}", elapsed.as_secs_f64() * 1000.0),
                Part::Host => write!(out, "{}", if head.host.is_empty() { "-" } else { &head.host }),
                Part::Referer => write!(out, "{}", header(header::REFERER)),
                Part::UserAgent => write!(out, "{}", header(header::USER_AGENT)),
            };
        }
        out
    }

    pub(crate) fn log(&self, head: &Head, res: &Response, elapsed: Duration) {
        let line = self.line(head, res, elapsed);
        tracing::info!(target: "simples::access", "{line}");
    }
}
