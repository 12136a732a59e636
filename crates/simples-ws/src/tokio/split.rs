//! A connection split into a cloneable [`Sender`] and a [`Receiver`].
//!
//! The protocol state machine sits behind a short-held `std` mutex (never
//! held across an await). Senders encode their messages straight into its
//! output queue; one writer task per connection writes whatever has
//! accumulated with one vectored write, so concurrent senders are batched.
//! The queue is bounded in bytes: when it holds more than `max_queued`,
//! `send` waits for the writer to drain it and `try_send` fails, so a slow
//! peer costs bounded memory and never blocks a broadcaster.
//! The [`Receiver`] reads into the protocol as the unsplit driver does
//! (the lock is held for the one non-blocking read, never while waiting)
//! and answers pings and close frames through the same queue.
//!
//! Both halves follow [`Protocol::transport_action`]: the writer task
//! writes, shuts the write side down or gives up as it says; the receiver
//! reads (and discards) until the peer's end of stream as it says, and
//! returns once the writer is done.
//!
//! The wake-up hand-offs (a sender queues output and wakes the writer; the
//! writer drains and wakes waiting senders; a sender's close wakes the
//! parked receiver, whose timer must run) are modelled, with every
//! interleaving explored, in `tests/model_split.rs`.

use super::io::{poll_discard, poll_read_proto, shrink_waiting, write_chunks, Timer};
use super::Error;
use crate::close::CloseCode;
use crate::message::Message;
use crate::proto::{PreparedFrame, Protocol, ProtocolError, TransportAction};
use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::sync::Notify;

struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the writer task: output was queued or a handle was dropped.
    wake_writer: Notify,
    /// Wakes senders waiting for room in the queue.
    drained: Notify,
    /// Live `Sender`s plus the `Receiver`.
    handles: AtomicUsize,
    max_queued: usize,
}

struct Inner {
    proto: Protocol,
    /// The writer failed or finished: nothing more can be sent.
    write_closed: Option<io::ErrorKind>,
    /// The receiver's waker while it waits: woken when a sender starts the
    /// closing handshake (its timer must run) and when the writer finishes.
    receiver: Option<Waker>,
}

impl Inner {
    fn park_receiver(&mut self, waker: &Waker) {
        match &self.receiver {
            Some(w) if w.will_wake(waker) => {}
            _ => self.receiver = Some(waker.clone()),
        }
    }

    fn wake_receiver(&mut self) {
        if let Some(w) = self.receiver.take() {
            w.wake();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the protocol in a
        // state worse than failed; keep serving the other handles.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) fn split<S>(io: S, proto: Protocol, max_queued: usize) -> (Sender, Receiver<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner { proto, write_closed: None, receiver: None }),
        wake_writer: Notify::new(),
        drained: Notify::new(),
        handles: AtomicUsize::new(2),
        max_queued: max_queued.max(1),
    });
    tokio::spawn(writer(w, shared.clone()));
    let sender = Sender { shared: shared.clone() };
    let receiver = Receiver { io: r, shared, timer: Timer::default(), terminal: None, finished: false };
    (sender, receiver)
}

/// The writer task: writes whatever is queued, shuts the write side down
/// or gives up when [`Protocol::transport_action`] says so, and exits when
/// every handle is gone.
async fn writer<W: AsyncWrite + Unpin>(mut w: W, shared: Arc<Shared>) {
    loop {
        let notified = shared.wake_writer.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (chunks, close) = {
            let mut inner = shared.lock();
            let action = inner.proto.transport_action();
            let chunks = inner.proto.output().take_all();
            if action == TransportAction::CloseNow {
                (Vec::new(), true)
            } else {
                let close = chunks.is_empty() && (action.shuts_down() || shared.handles.load(Ordering::Acquire) == 0);
                (chunks, close)
            }
        };
        if !chunks.is_empty() {
            if let Err(e) = write_or_give_up(&mut w, chunks, &shared).await {
                tracing::debug!(error = %e, "WebSocket write failed");
                finish_writer(&shared, e.kind());
                return;
            }
            shared.drained.notify_waiters();
            continue;
        }
        if close {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
            finish_writer(&shared, io::ErrorKind::BrokenPipe);
            return;
        }
        notified.await;
    }
}

/// Writes `chunks`, unless the protocol says to close now meanwhile (the
/// close timeout expired on a peer that reads nothing): then gives up.
async fn write_or_give_up<W: AsyncWrite + Unpin>(w: &mut W, chunks: Vec<bytes::Bytes>, shared: &Shared) -> io::Result<()> {
    let write = write_chunks(w, chunks);
    tokio::pin!(write);
    loop {
        let notified = shared.wake_writer.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.lock().proto.transport_action() == TransportAction::CloseNow {
            return Err(io::ErrorKind::TimedOut.into());
        }
        tokio::select! {
            res = &mut write => return res,
            () = &mut notified => {}
        }
    }
}

/// The writer is done: nothing more can be sent; wakes everyone waiting.
fn finish_writer(shared: &Shared, kind: io::ErrorKind) {
    let mut inner = shared.lock();
    inner.write_closed = Some(kind);
    inner.wake_receiver();
    drop(inner);
    shared.drained.notify_waiters();
}

/// The sending half: cloneable, bounded, usable from any task.
pub struct Sender {
    shared: Arc<Shared>,
}

/// Why [`Sender::try_send`] did not queue a message.
#[derive(Debug)]
pub enum TrySendError {
    /// The queue holds `max_queued` bytes or more (a slow peer).
    Full(Message),
    /// The connection can no longer send.
    Closed(Error),
}

impl Sender {
    /// Queues a message, waiting while the queue is full.
    pub async fn send(&self, message: Message) -> Result<(), Error> {
        let mut message = Some(message);
        self.wait_for_room(|proto| proto.send(message.take().expect("sent once"))).await
    }

    /// Queues a pre-encoded frame (server only), waiting while the queue is
    /// full. The frame's bytes are shared, not copied, when large.
    pub async fn send_prepared(&self, frame: &PreparedFrame) -> Result<(), Error> {
        self.wait_for_room(|proto| proto.send_prepared(frame)).await
    }

    /// Queues a message unless the queue is full; never waits.
    pub fn try_send(&self, message: Message) -> Result<(), TrySendError> {
        let mut inner = self.shared.lock();
        if let Err(e) = check_writable(&inner) {
            return Err(TrySendError::Closed(e));
        }
        if inner.proto.output().len() >= self.shared.max_queued {
            return Err(TrySendError::Full(message));
        }
        inner.proto.send(message).map_err(|e| TrySendError::Closed(Error::Protocol(e)))?;
        drop(inner);
        self.shared.wake_writer.notify_one();
        Ok(())
    }

    /// Queues a pre-encoded frame unless the queue is full; never waits.
    /// `Ok(false)` means the queue was full and nothing was queued.
    pub fn try_send_prepared(&self, frame: &PreparedFrame) -> Result<bool, Error> {
        let mut inner = self.shared.lock();
        check_writable(&inner)?;
        if inner.proto.output().len() >= self.shared.max_queued {
            return Ok(false);
        }
        inner.proto.send_prepared(frame)?;
        drop(inner);
        self.shared.wake_writer.notify_one();
        Ok(true)
    }

    /// Starts the closing handshake. The [`Receiver`] returns the peer's
    /// answer as `Message::Close`.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.wait_for_room(|proto| proto.close(code, reason)).await?;
        // The receiver runs the close timer: wake it if it is waiting.
        self.shared.lock().wake_receiver();
        Ok(())
    }

    /// Bytes waiting in the send queue.
    pub fn queued(&self) -> usize {
        self.shared.lock().proto.output().len()
    }

    /// True once nothing more can be sent.
    pub fn is_closed(&self) -> bool {
        check_writable(&self.shared.lock()).is_err()
    }

    async fn wait_for_room(&self, mut f: impl FnMut(&mut Protocol) -> Result<(), ProtocolError>) -> Result<(), Error> {
        loop {
            let notified = self.shared.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.shared.lock();
                check_writable(&inner)?;
                if inner.proto.output().len() < self.shared.max_queued {
                    f(&mut inner.proto)?;
                    drop(inner);
                    self.shared.wake_writer.notify_one();
                    return Ok(());
                }
            }
            notified.await;
        }
    }
}

fn check_writable(inner: &Inner) -> Result<(), Error> {
    if let Some(kind) = inner.write_closed {
        return Err(if kind == io::ErrorKind::BrokenPipe { Error::Closed } else { Error::Io(kind.into()) });
    }
    Ok(())
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Sender { shared: self.shared.clone() }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.wake_writer.notify_one();
        }
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The receiving half. [`recv`](Receiver::recv) is cancel-safe and must be
/// polled for pings to be answered and timers to run.
pub struct Receiver<S> {
    io: ReadHalf<S>,
    shared: Arc<Shared>,
    timer: Timer,
    /// Boxed: set only once the connection ends, and a `Result<Message,
    /// Error>` is 48 B every idle connection would carry.
    terminal: Option<Box<Result<Message, Error>>>,
    finished: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Receiver<S> {
    /// Receives the next message; see [`super::WebSocket::recv`] for the
    /// closing behaviour.
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        if self.finished {
            return Poll::Ready(Err(Error::Closed));
        }
        loop {
            if self.terminal.is_some() {
                return self.poll_finish(cx);
            }
            let (step, wake) = {
                let mut inner = self.shared.lock();
                let step = match inner.proto.poll_message() {
                    Ok(Some(m)) => Step::Message(m),
                    Err(e) => Step::End(Err(Error::Protocol(e))),
                    // Closed by a timeout with no message to report.
                    Ok(None) if inner.proto.transport_action() != TransportAction::KeepOpen => Step::End(Err(Error::Closed)),
                    Ok(None) => match poll_read_proto(&mut self.io, &mut inner.proto, cx) {
                        Poll::Ready(Ok(_)) => Step::Read,
                        Poll::Ready(Err(e)) => {
                            self.finished = true;
                            return Poll::Ready(Err(Error::Io(e)));
                        }
                        Poll::Pending => Step::Wait,
                    },
                };
                (step, !inner.proto.output().is_empty())
            };
            if wake {
                self.shared.wake_writer.notify_one();
            }
            match step {
                Step::Message(Message::Close(frame)) => {
                    self.terminal = Some(Box::new(Ok(Message::Close(frame))));
                    continue;
                }
                Step::Message(msg) => return Poll::Ready(Ok(msg)),
                Step::End(end) => {
                    self.terminal = Some(Box::new(end));
                    continue;
                }
                // Bytes (or the end of stream) arrived: parse them.
                Step::Read => continue,
                Step::Wait => {}
            }
            let fired = {
                let mut inner = self.shared.lock();
                // Parked before the timer is polled, under the same lock a
                // sender's `close` takes: a close started after this point
                // wakes us, one started before arms the timer right here.
                inner.park_receiver(cx.waker());
                self.timer.poll(&mut inner.proto, cx).is_ready()
            };
            if fired {
                self.shared.wake_writer.notify_one();
                continue;
            }
            // Waiting with nothing buffered: hold no receive memory.
            shrink_waiting(&mut self.shared.lock().proto);
            return Poll::Pending;
        }
    }

    /// Whether the connection is over (`recv` only returns `Error::Closed`).
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Follows [`Protocol::transport_action`] as the unsplit driver does:
    /// reads (and discards) until the peer's end of stream while it says
    /// so, and returns once the writer task has done its part (written the
    /// output and shut the write side down) or the protocol gave up.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        loop {
            let (action, write_closed) = {
                let mut inner = self.shared.lock();
                inner.park_receiver(cx.waker());
                (inner.proto.transport_action(), inner.write_closed.is_some())
            };
            // The writer acts on the same action.
            self.shared.wake_writer.notify_one();
            let done = match action {
                TransportAction::CloseNow => true,
                TransportAction::Close => write_closed,
                _ => false,
            };
            if done {
                self.finished = true;
                return Poll::Ready(self.terminal.take().map_or(Err(Error::Closed), |t| *t));
            }
            if action.reads_until_eof() {
                if let Poll::Ready(res) = poll_discard(&mut self.io, cx) {
                    if matches!(res, Ok(true) | Err(_)) {
                        self.shared.lock().proto.notify_received(0);
                        continue;
                    }
                }
            }
            let mut inner = self.shared.lock();
            if self.timer.poll(&mut inner.proto, cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }
}

/// What one look at the protocol (under the lock) gave the receiver.
enum Step {
    Message(Message),
    /// The connection ended for the application with this result.
    End(Result<Message, Error>),
    /// A read brought bytes or the end of stream.
    Read,
    /// Nothing to read now.
    Wait,
}

impl<S> Drop for Receiver<S> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.wake_writer.notify_one();
        }
    }
}

impl<S> std::fmt::Debug for Receiver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}
