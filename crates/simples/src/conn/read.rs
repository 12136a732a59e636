//! Reading the request body, always within a size limit (the host's
//! `body_limit`, or [`Conn::set_body_limit`]): a larger body is `413`,
//! undecodable content is `400`.

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::Conn;
use crate::body::RequestBody;
use crate::error::{Error, ErrorKind, Result};

impl Conn {
    /// Changes the body size limit for this request (default: the host's
    /// `body_limit`).
    pub fn set_body_limit(&mut self, limit: usize) -> &mut Self {
        self.body_limit = limit;
        self
    }

    /// The body size limit in force for this request.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Takes the body, after checking `Content-Length` against the limit.
    pub(super) fn take_body(&mut self) -> Result<RequestBody> {
        if let Some(len) = self.head.headers.get(header::CONTENT_LENGTH) {
            let len: u64 = len
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::bad_request("invalid Content-Length"))?;
            if len > self.body_limit as u64 {
                return Err(Error::too_large(self.body_limit));
            }
        }
        self.body.take().ok_or_else(|| Error::new(500, "the request body was already read"))
    }

    /// The whole body. `413` past the limit, `400` if the client fails to
    /// send it.
    pub async fn bytes(&mut self) -> Result<Bytes> {
        let body = self.take_body()?;
        let limit = self.body_limit;
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(Error::too_large(limit)),
            Err(e) => Err(Error::bad_request(format!("failed to read the request body: {e}"))),
        }
    }

    /// The body as UTF-8 text (`400` if it is not UTF-8).
    pub async fn text(&mut self) -> Result<String> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.into()).map_err(|_| Error::bad_request("the request body is not valid UTF-8"))
    }

    /// The body parsed as JSON into `T` (`400` with the parser's reason on
    /// bad JSON or a shape that does not fit `T`).
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.bytes().await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// The body parsed as an `application/x-www-form-urlencoded` form into
    /// `T` (e.g. a struct or `Vec<(String, String)>`; `400` on bad input).
    pub async fn form<T: DeserializeOwned>(&mut self) -> Result<T> {
        if let Some(ct) = self.header("content-type") {
            if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
                return Err(Error::from_kind(
                    ErrorKind::UnsupportedMediaType,
                    "expected an application/x-www-form-urlencoded body",
                ));
            }
        }
        let bytes = self.bytes().await?;
        serde_urlencoded::from_bytes(&bytes).map_err(|e| Error::bad_request(format!("invalid form: {e}")))
    }
}
