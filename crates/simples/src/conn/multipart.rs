//! `multipart/form-data` bodies (fields and files) through `multer`, within
//! the body size limit.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::BodyStream;

use super::Conn;
use crate::error::{Error, ErrorKind, Result};

/// A `multipart/form-data` body: call [`next_field`](Multipart::next_field)
/// until it returns `None`.
pub struct Multipart {
    inner: multer::Multipart<'static>,
    limit: usize,
}

/// One part of a multipart body: a form field or a file.
pub struct Field {
    inner: multer::Field<'static>,
    limit: usize,
}

fn convert(e: multer::Error, limit: usize) -> Error {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            Error::too_large(limit)
        }
        e => Error::bad_request(format!("invalid multipart body: {e}")),
    }
}

impl Conn {
    /// The body as a `multipart/form-data` stream. `415` if the content
    /// type is not multipart (or has no boundary); reading a field past
    /// the body limit is `413`, a malformed body `400`.
    pub fn multipart(&mut self) -> Result<Multipart> {
        let boundary = self
            .header("content-type")
            .and_then(|ct| multer::parse_boundary(ct).ok())
            .ok_or_else(|| {
                Error::from_kind(ErrorKind::UnsupportedMediaType, "expected a multipart/form-data body with a boundary")
            })?;
        let body = self.take_body()?;
        let limit = self.body_limit();
        let stream = BodyStream::new(body).filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(e)),
            }
        });
        let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
        Ok(Multipart { inner: multer::Multipart::with_constraints(stream, boundary, constraints), limit })
    }
}

impl Multipart {
    /// The next part, or `None` at the end.
    pub async fn next_field(&mut self) -> Result<Option<Field>> {
        let limit = self.limit;
        match self.inner.next_field().await {
            Ok(f) => Ok(f.map(|inner| Field { inner, limit })),
            Err(e) => Err(convert(e, limit)),
        }
    }
}

impl Field {
    /// The field's name (`name="..."`).
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// The uploaded file's name (`filename="..."`), for file fields.
    pub fn file_name(&self) -> Option<&str> {
        self.inner.file_name()
    }

    /// The part's content type, if given.
    pub fn content_type(&self) -> Option<String> {
        self.inner.content_type().map(|m| m.to_string())
    }

    /// The next chunk of the part's content, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        let limit = self.limit;
        self.inner.chunk().await.map_err(|e| convert(e, limit))
    }

    /// The whole content of the part.
    pub async fn bytes(self) -> Result<Bytes> {
        let limit = self.limit;
        self.inner.bytes().await.map_err(|e| convert(e, limit))
    }

    /// The whole content as UTF-8 text (`400` if it is not).
    pub async fn text(self) -> Result<String> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.into()).map_err(|_| Error::bad_request("a multipart field is not valid UTF-8"))
    }
}
