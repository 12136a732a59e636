//! The bodies: the response [`Body`] (empty, one buffer (the fast path) or
//! a stream) and the request body a `Conn` reads ([`RequestBody`]: hyper's,
//! or any other for a server used as a `tower::Service`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Frame, SizeHint};

/// A boxed error produced by a body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// A response body. Build one from `&'static str`, `String`, `Vec<u8>`,
/// [`Bytes`] (all sent with a `Content-Length`) or with [`Body::stream`]
/// (sent chunked).
pub struct Body {
    inner: Inner,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Stream(BoxStream),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body { inner: Inner::Empty }
    }

    /// A body made of the chunks of `stream`; an `Err` item aborts the
    /// response (the connection is closed).
    pub fn stream<S, E>(stream: S) -> Body
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        use futures_util::StreamExt as _;
        Body { inner: Inner::Stream(Box::pin(stream.map(|r| r.map_err(Into::into)))) }
    }

    /// The exact length, when known (empty and full bodies).
    pub fn len(&self) -> Option<u64> {
        match &self.inner {
            Inner::Empty => Some(0),
            Inner::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream(_) => None,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The whole body when it is one buffer (not a stream).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Empty => Some(&[]),
            Inner::Full(b) => Some(b.as_deref().unwrap_or(&[])),
            Inner::Stream(_) => None,
        }
    }

    /// Turns the body into a stream of chunks (used to compress it).
    pub(crate) fn into_stream(self) -> BoxStream {
        match self.inner {
            Inner::Empty => Box::pin(futures_util::stream::empty()),
            Inner::Full(b) => Box::pin(futures_util::stream::iter(b.map(Ok))),
            Inner::Stream(s) => s,
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Empty => f.write_str("Body::Empty"),
            Inner::Full(b) => write!(f, "Body::Full({} bytes)", b.as_ref().map_or(0, |b| b.len())),
            Inner::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        if b.is_empty() {
            Body::empty()
        } else {
            Body { inner: Inner::Full(Some(b)) }
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Bytes::from_static(s).into()
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Bytes::from(s).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Bytes::from(v).into()
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Body {
        Body::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(s) => s.as_mut().poll_next(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(b) => b.is_none(),
            Inner::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.len() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

type BoxedRequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The body of a request, as a `Conn` reads it: hyper's own (no
/// allocation), or any other `http_body::Body` boxed (a server mounted as a
/// `tower::Service` under axum or another router). Wrapped so that `Conn`
/// stays `Sync` although such bodies need not be: the body is only ever
/// reached through `&mut`.
pub(crate) enum RequestBody {
    Hyper(hyper::body::Incoming),
    Boxed(sync_wrapper::SyncWrapper<BoxedRequestBody>),
}

impl RequestBody {
    /// Any body; hyper's is kept as it is.
    pub(crate) fn new<B>(body: B) -> RequestBody
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        if let Some(incoming) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<hyper::body::Incoming>>() {
            return RequestBody::Hyper(incoming.take().expect("just set"));
        }
        let body = slot.expect("not taken");
        use http_body_util::BodyExt as _;
        RequestBody::Boxed(sync_wrapper::SyncWrapper::new(body.map_err(Into::into).boxed_unsync()))
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            RequestBody::Boxed(b) => Pin::new(b.get_mut()).poll_frame(cx),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            // Not reachable through `&self` (the wrapper is what keeps it
            // `Sync`); the readers go by `Content-Length` and the limit.
            RequestBody::Boxed(_) => SizeHint::default(),
        }
    }
}
