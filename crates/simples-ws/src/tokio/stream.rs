//! [`WebSocket`]: one connection driven from one task.

use super::io::{poll_discard, poll_read_proto, poll_write_output, shrink_waiting, Timer};
use super::Error;
use crate::close::CloseCode;
use crate::message::Message;
use crate::proto::{Config, PreparedFrame, Protocol, Role, TransportAction};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// Output bytes above which [`WebSocket::feed`] writes before returning.
pub(super) const FEED_HIGH_WATER: usize = 128 * 1024;

/// What [`WebSocket::drive`] returned for.
#[derive(Debug)]
pub enum Drive {
    /// The next message (as [`WebSocket::recv`] returns it).
    Message(Message),
    /// The output queue is at or below the requested low-water mark.
    Writable,
}

/// A WebSocket connection over any `AsyncRead + AsyncWrite` transport.
///
/// [`recv`](WebSocket::recv) answers pings, echoes close frames, runs the
/// keepalive and idle timers and writes anything queued, so receive in a
/// loop. It is cancel-safe: dropping its future (e.g. in `select!`) loses
/// nothing. For sending from other tasks, [`split`](WebSocket::split) the
/// connection.
pub struct WebSocket<S> {
    io: S,
    proto: Protocol,
    timer: Timer,
    /// What `recv` returns once the transport is closed properly.
    /// Boxed: set only once the connection ends, and a `Result<Message,
    /// Error>` is 48 B every idle connection would carry.
    terminal: Option<Box<Result<Message, Error>>>,
    shutdown_done: bool,
    finished: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport whose opening handshake is done. `leftover` holds
    /// bytes read past the handshake (they belong to the first frames).
    /// `config` may be an `Arc<Config>` shared by many connections.
    pub fn from_raw(io: S, role: Role, config: impl Into<std::sync::Arc<Config>>, leftover: &[u8]) -> Self {
        let mut proto = Protocol::new(role, config);
        proto.receive(leftover);
        WebSocket { io, proto, timer: Timer::default(), terminal: None, shutdown_done: false, finished: false }
    }

    /// The protocol state machine (state, role, config, buffered output).
    pub fn protocol(&self) -> &Protocol {
        &self.proto
    }

    /// Mutable access to the protocol state machine (e.g. to install an
    /// extension).
    pub fn protocol_mut(&mut self) -> &mut Protocol {
        &mut self.proto
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Receives the next message.
    ///
    /// Returns data, ping and pong messages as they come. When the closing
    /// handshake ends (the peer's close frame, or the answer to ours), it
    /// first finishes closing the transport as RFC 6455 §7.1.1 wants (the
    /// server closes TCP first, the client waits for that) and then returns
    /// `Message::Close`; later calls return [`Error::Closed`]. Protocol
    /// violations fail the connection with the right close code and return
    /// [`Error::Protocol`].
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](WebSocket::recv) as a poll function.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        self.poll_drive(cx, true, None).map(|step| match step? {
            Drive::Message(m) => Ok(m),
            Drive::Writable => unreachable!("no low-water mark was given"),
        })
    }

    /// Whether the connection is over (`recv` only returns `Error::Closed`).
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes waiting in the output queue (for the `Sink`).
    pub(super) fn queued_output(&mut self) -> usize {
        self.proto.output().len()
    }

    /// Runs the connection as [`recv`](WebSocket::recv) does (writes what
    /// is queued, answers pings, runs the timers) for a driver that also
    /// feeds the connection from a queue of its own:
    ///
    /// * with `read == false` no message is handed out and nothing is read
    ///   (the peer is held back by TCP flow control while the caller is
    ///   busy), but output is still written and the timers still run;
    /// * with `low_water == Some(n)`, returns [`Drive::Writable`] as soon as
    ///   at most `n` bytes wait in the output queue, so the caller can queue
    ///   more without ever holding more than it chose.
    ///
    /// Cancel-safe, like `recv`.
    ///
    /// (Not an `async fn`: its future is the poll function alone, 24 bytes
    /// in the caller's future, where an `async fn` would hold its arguments
    /// and the closure's borrows of them besides: 40 bytes more in each
    /// framework connection's driver.)
    pub fn drive(&mut self, read: bool, low_water: Option<usize>) -> impl Future<Output = Result<Drive, Error>> + '_ {
        poll_fn(move |cx| self.poll_drive(cx, read, low_water))
    }

    /// Queues a message and writes everything queued.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.check_open()?;
        self.proto.send(message)?;
        self.flush().await
    }

    /// Queues a message without waiting for the write, unless more than
    /// 128 KiB are already queued. Queued bytes go out with the next
    /// `recv`, `send` or `flush`, so a burst of replies leaves in one write.
    pub async fn feed(&mut self, message: Message) -> Result<(), Error> {
        self.check_open()?;
        self.proto.send(message)?;
        if self.proto.output().len() > FEED_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a pre-encoded frame (server only; see [`PreparedFrame`]) and
    /// writes everything queued.
    pub async fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<(), Error> {
        self.check_open()?;
        self.proto.send_prepared(frame)?;
        self.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let Self { io, proto, .. } = self;
        poll_fn(|cx| poll_write_output(io, proto.output(), cx)).await.map_err(Error::Io)
    }

    /// Starts the closing handshake and writes the close frame. Keep
    /// calling [`recv`](WebSocket::recv) until it returns `Message::Close`
    /// (the peer's answer) or an error (e.g. the close timeout).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.check_open()?;
        self.proto.close(code, reason)?;
        self.flush().await
    }

    pub(super) fn check_open(&self) -> Result<(), Error> {
        if self.finished || self.terminal.is_some() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(super) fn poll_drive(&mut self, cx: &mut Context<'_>, read: bool, low_water: Option<usize>) -> Poll<Result<Drive, Error>> {
        if self.finished {
            return Poll::Ready(Err(Error::Closed));
        }
        loop {
            if self.terminal.is_some() {
                return self.poll_close_transport(cx).map(|r| r.map(Drive::Message));
            }
            let step = if read { self.proto.poll_message() } else { Ok(None) };
            match step {
                Ok(Some(Message::Close(frame))) => {
                    self.terminal = Some(Box::new(Ok(Message::Close(frame))));
                    continue;
                }
                Ok(Some(msg)) => return Poll::Ready(Ok(Drive::Message(msg))),
                Ok(None) => {}
                Err(e) => {
                    self.terminal = Some(Box::new(Err(Error::Protocol(e))));
                    continue;
                }
            }
            if self.proto.transport_action() != TransportAction::KeepOpen {
                // Closed by a timeout with no message to report.
                self.terminal = Some(Box::new(Err(Error::Closed)));
                continue;
            }
            // Every buffered message was handed out: write what was queued
            // meanwhile (replies, pongs) in one go before waiting for input,
            // and never let a full socket stop the read side.
            let flushed = match self.poll_flush_output(cx) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => false,
            };
            if low_water.is_some_and(|n| self.proto.output().len() <= n) {
                return Poll::Ready(Ok(Drive::Writable));
            }
            let input = if read { poll_read_proto(&mut self.io, &mut self.proto, cx) } else { Poll::Pending };
            match input {
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(e)) => {
                    self.finished = true;
                    return Poll::Ready(Err(Error::Io(e)));
                }
                Poll::Pending => {}
            }
            if self.timer.poll(&mut self.proto, cx).is_ready() {
                continue;
            }
            if flushed && read {
                // Waiting for the peer with nothing buffered: hold no memory.
                shrink_waiting(&mut self.proto);
            }
            return Poll::Pending;
        }
    }

    /// Writes queued output; a write error ends the connection.
    pub(super) fn poll_flush_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match poll_write_output(&mut self.io, self.proto.output(), cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                self.finished = true;
                Poll::Ready(Err(Error::Io(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// After the closing handshake or a failure: follows
    /// [`Protocol::transport_action`] until the transport is closed, then
    /// hands out the terminal result.
    fn poll_close_transport(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        loop {
            let action = self.proto.transport_action();
            let flushed = match action {
                TransportAction::CloseNow => true,
                _ => match self.poll_flush_output(cx) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => false,
                },
            };
            if flushed && action.shuts_down() && !self.shutdown_done {
                match Pin::new(&mut self.io).poll_shutdown(cx) {
                    Poll::Ready(_) => self.shutdown_done = true,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if action == TransportAction::CloseNow && !self.shutdown_done {
                // The transport is the caller's to drop: end the stream now,
                // best effort (the output that could not leave is dropped).
                let _ = Pin::new(&mut self.io).poll_shutdown(cx);
                self.shutdown_done = true;
            }
            let done = match action {
                TransportAction::CloseNow => true,
                TransportAction::Close => flushed,
                _ => false,
            };
            if done {
                self.finished = true;
                return Poll::Ready(self.terminal.take().map_or(Err(Error::Closed), |t| *t));
            }
            if action.reads_until_eof() {
                match poll_discard(&mut self.io, cx) {
                    Poll::Ready(Ok(true)) | Poll::Ready(Err(_)) => {
                        self.proto.notify_received(0);
                        continue;
                    }
                    Poll::Ready(Ok(false)) | Poll::Pending => {}
                }
            }
            if self.timer.poll(&mut self.proto, cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> WebSocket<S> {
    /// Splits the connection into a cloneable [`super::Sender`] and a
    /// [`super::Receiver`], spawning a writer task on the current tokio
    /// runtime. At most `max_queued` bytes wait in the send queue; senders
    /// wait (or `try_send` fails) beyond that.
    pub fn split(self, max_queued: usize) -> (super::Sender, super::Receiver<S>) {
        super::split::split(self.io, self.proto, max_queued)
    }
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").field("proto", &self.proto).finish_non_exhaustive()
    }
}
