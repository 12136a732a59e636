//! The crate's one error type.
//!
//! Every failure carries the HTTP status it should be answered with, so a
//! handler can use `?` on anything the framework returns and the client gets
//! a clear `4xx`/`5xx` with a reason (see [`Error::status`] and
//! [`Error::reason`]).

use std::fmt;

use http::StatusCode;

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, broadly; [`Error::status`] is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client's request is malformed (bad JSON, bad form, bad cookie
    /// header, bad multipart...): `400`.
    BadRequest,
    /// The request body is larger than the configured limit: `413`.
    PayloadTooLarge,
    /// The request body is not of the expected media type: `415`.
    UnsupportedMediaType,
    /// Nothing here: `404`.
    NotFound,
    /// An I/O failure (socket, file): `500` unless said otherwise.
    Io,
    /// TLS configuration (certificate or key) is unusable.
    Tls,
    /// A template failed to load or render: `500`.
    Template,
    /// A session store failed: `500`.
    Session,
    /// The server could not bind, or was used in the wrong state.
    Server,
    /// An application error with an explicit status, from [`Error::new`].
    Status,
}

/// The framework's error: a kind, the HTTP status to answer with and a
/// human-readable reason (sent in the default error page).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    status: StatusCode,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error answered with `status` (e.g. `Error::new(403, "not yours")`).
    /// An invalid status code becomes `500`.
    pub fn new(status: u16, reason: impl Into<String>) -> Error {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Error { kind: ErrorKind::Status, status, reason: reason.into(), source: None }
    }

    /// An error of `kind`, with the status that kind implies.
    pub fn from_kind(kind: ErrorKind, reason: impl Into<String>) -> Error {
        let status = match kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Error { kind, status, reason: reason.into(), source: None }
    }

    /// `400 Bad Request` with `reason`.
    pub fn bad_request(reason: impl Into<String>) -> Error {
        Error::from_kind(ErrorKind::BadRequest, reason)
    }

    /// `413 Payload Too Large` for a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Error {
        Error::from_kind(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// `404 Not Found` with `reason`.
    pub fn not_found(reason: impl Into<String>) -> Error {
        Error::from_kind(ErrorKind::NotFound, reason)
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason, shown in the default error page.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Io };
        Error::from_kind(kind, e.to_string()).with_source(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::bad_request(format!("invalid JSON: {e}")).with_source(e)
    }
}

impl From<minijinja::Error> for Error {
    fn from(e: minijinja::Error) -> Error {
        let reason = format!("template error: {e}");
        Error::from_kind(ErrorKind::Template, reason).with_source(e)
    }
}
