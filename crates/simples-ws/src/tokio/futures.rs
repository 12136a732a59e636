//! The `futures` traits, so the tokio driver works with `StreamExt`,
//! `SinkExt`, `forward`, `select_all` and the rest of the ecosystem:
//!
//! - [`WebSocket`] is a `Stream<Item = Result<Message, Error>>` (what
//!   [`recv`](WebSocket::recv) returns, the peer's `Message::Close` last,
//!   then `None`) and a `Sink<Message>` (`start_send` queues in the
//!   protocol, `poll_ready` writes first when more than 128 KiB wait, as
//!   [`feed`](WebSocket::feed) does; `poll_flush` writes everything;
//!   `poll_close` starts the closing handshake with 1000 and writes it —
//!   keep polling the stream until it ends to complete the handshake).
//! - [`Receiver`] is the same `Stream`.
//!
//! Polling the stream is cancel-safe as `recv` is: a message is handed out
//! only in the poll that returns it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::stream::FEED_HIGH_WATER;
use super::{Error, Receiver, WebSocket};
use crate::close::CloseCode;
use crate::message::Message;
use crate::proto::State;

/// `recv`'s result as a stream item: the end (`Error::Closed` once the
/// connection is over) becomes `None`.
fn item(result: Poll<Result<Message, Error>>, finished: bool) -> Poll<Option<Result<Message, Error>>> {
    match result {
        Poll::Ready(Err(Error::Closed)) if finished => Poll::Ready(None),
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Pending,
    }
}

/// `Stream` for what receives messages, a whole connection or its
/// receiving half: the same `poll_recv`, the same end.
macro_rules! receiving_stream {
    ($($t:ident),*) => {$(
        impl<S: AsyncRead + AsyncWrite + Unpin> Stream for $t<S> {
            type Item = Result<Message, Error>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                let this = self.get_mut();
                let step = this.poll_recv(cx);
                item(step, this.is_finished())
            }
        }
    )*};
}

receiving_stream!(WebSocket, Receiver);

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.check_open()?;
        if this.queued_output() > FEED_HIGH_WATER {
            return this.poll_flush_output(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        this.check_open()?;
        this.protocol_mut().send(message)?;
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_output(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !this.is_finished() && this.protocol().state() == State::Open {
            this.protocol_mut().close(CloseCode::NORMAL, "")?;
        }
        if this.is_finished() {
            return Poll::Ready(Ok(()));
        }
        this.poll_flush_output(cx)
    }
}
