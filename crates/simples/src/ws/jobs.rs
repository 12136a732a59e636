//! What both drivers of a connection (the tokio task of `driver.rs`, the
//! event loop of `looped.rs`) do the same way: a received message becomes
//! a [`Job`] for its handler (acknowledgements resolve at once), jobs wait
//! in [`Pending`] while a handler runs, and the outbox moves into the
//! protocol's output by bursts ([`pump`]).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::CatchUnwind;
use futures_util::FutureExt as _;
use simples_ws::Message;

use super::object::{self, Incoming};
use super::options::{Mode, WsOptions};
use super::outbox::{Out, HIGH_WATER};
use super::signal::Signal;
use super::state::WsConn;
use crate::handler::BoxFuture;

/// Moves queued items into the protocol of `to` while less than
/// `HIGH_WATER` bytes wait there (`waiting` tells how many do), handing
/// each burst to `deliver` (which empties it); `true` if the outbox still
/// holds items. `release`: free the outbox's buffer if it ends empty (the
/// connection has nothing else to do), under the same lock. Ending empty
/// with room in the protocol, it opens the direct path (`direct.rs`).
/// Inline: one call site per driver, on every message's path (LLVM once
/// stopped inlining it into the loop's `step` after an unrelated change,
/// and an echo's round trip took 78 more instructions, `bench/instructions
/// --echo`).
#[inline]
pub(crate) fn pump<T: ?Sized>(
    conn: &WsConn,
    batch: &mut VecDeque<Out>,
    to: &mut T,
    waiting: impl Fn(&mut T) -> usize,
    mut deliver: impl FnMut(&mut T, &mut VecDeque<Out>),
    release: bool,
) -> bool {
    loop {
        let waiting = waiting(to);
        let mut outbox = conn.inner.outbox();
        outbox.take(HIGH_WATER.saturating_sub(waiting), batch);
        if batch.is_empty() {
            if outbox.is_empty() && !outbox.is_closing() && waiting < HIGH_WATER {
                // Under the lock: a push after this closes it again.
                conn.inner.wake.open_direct();
            }
            if release {
                outbox.release_if_empty();
            }
            return !outbox.is_empty();
        }
        drop(outbox);
        deliver(to, batch);
        debug_assert!(batch.is_empty());
    }
}

/// A data message arrived: acknowledgements resolve at once, refusals are
/// answered at once, the rest is a job for its handler (with its size).
pub(crate) fn receive(conn: &WsConn, message: Message) -> Option<(Job, usize)> {
    let host = &conn.inner.host;
    let size = message.payload().len();
    let metrics = host.metrics();
    metrics.messages_in.increment(1);
    metrics.bytes_in.increment(size as u64);
    if host.options.mode == Mode::Plain {
        return Some((Job::Plain(message), size));
    }
    let parsed = match &message {
        Message::Text(text) => object::parse(text.as_str(), host.options.max_json_depth),
        _ => Err(object::Refusal {
            code: "binary",
            message: "object mode takes JSON text messages only".into(),
        }),
    };
    match parsed {
        Ok(Incoming::Ack { id, result }) => {
            conn.resolve(id, result);
            None
        }
        Ok(Incoming::Event { event, data, id }) => Some((Job::Event { event, data, id }, size)),
        Err(refusal) => {
            tracing::debug!(id = conn.id(), code = refusal.code, "object-mode message refused");
            let _ = conn.send_text(refusal.to_event());
            None
        }
    }
}

/// Received messages waiting for their handler, with their wire size.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) jobs: VecDeque<(Job, usize)>,
    pub(crate) bytes: usize,
}

impl Pending {
    /// Whether the connection may read more: at most
    /// `max_pending_messages`, or one maximum-size message's worth of
    /// bytes, wait for their handler.
    pub(crate) fn accepts_more(&self, options: &WsOptions) -> bool {
        self.jobs.len() < options.max_pending_messages.max(1) && self.bytes < options.max_message_size
    }

    pub(crate) fn push(&mut self, job: Job, size: usize) {
        self.bytes += size;
        self.jobs.push_back((job, size));
    }

    pub(crate) fn pop(&mut self) -> Option<Job> {
        let (job, size) = self.jobs.pop_front()?;
        self.bytes -= size;
        Some(job)
    }
}

/// A received message waiting for its handler.
pub(crate) enum Job {
    Plain(Message),
    Event { event: String, data: serde_json::Value, id: Option<u64> },
}

/// The handler future for a message whose turn came.
pub(crate) fn dispatch(conn: &WsConn, job: Job) -> Option<Handler> {
    let host = &conn.inner.host;
    let (event, data, id) = match job {
        Job::Plain(message) => {
            let handler = host.message_handler()?;
            // The handler's first, synchronous part may send (an echo
            // often sends before it returns its future): this task runs and
            // looks at its signal next, so that send needs no wake-up.
            let (handler, _) = conn.inner.wake.running(|| caught(|| handler(conn.clone(), message)));
            return Some(handler);
        }
        Job::Event { event, data, id } => (event, data, id),
    };
    let handler = host.event_handler(&event);
    let conn = conn.clone();
    Some(caught(|| Box::pin(async move {
        let result = match handler {
            Some(handler) => match AssertUnwindSafe(handler(conn.clone(), data)).catch_unwind().await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(event, "a WebSocket event handler panicked");
                    Err("the handler failed".to_string())
                }
            },
            None => Err(format!("no handler for event {event:?}")),
        };
        if let Some(id) = id {
            let _ = conn.send_text(object::ack_json(id, &result));
        } else if let Err(e) = result {
            tracing::debug!(event, error = %e, "event handler failed");
        }
    })))
}

/// Polls the connection's handler marked as running (`Signal::running`):
/// its `conn.send` queues without waking this task, which moves the
/// outbox into the protocol right after the handler returns (the loop's
/// `pump`). A handler that sent and now waits for something else leaves a
/// notification unseen: the task then wakes itself (rare), as a
/// notification from another thread meanwhile would have.
pub(crate) struct Running<'a> {
    /// `Some` (the branch's condition): `select!` builds the future
    /// before it looks at the condition.
    pub(crate) task: &'a mut Option<Handler>,
    pub(crate) wake: &'a Signal,
}

impl Future for Running<'_> {
    type Output = std::thread::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let task = this.task.as_mut().expect("guarded");
        let (poll, notified) = this.wake.running(|| Pin::new(task).poll(cx));
        if notified && poll.is_pending() {
            cx.waker().wake_by_ref();
        }
        poll
    }
}

/// A running handler: its panic is caught (and [`report`]ed) instead of
/// ending the connection's task. No second allocation around the
/// handler's own boxed future.
pub(crate) type Handler = CatchUnwind<AssertUnwindSafe<BoxFuture<'static, ()>>>;

/// The handler `start` returns, its panics caught: the ones of its
/// synchronous part too (what runs before it returns its future; on an
/// event loop's thread such a panic would unwind through the loop and end
/// every connection on it), reported as a panic of the future.
pub(crate) fn caught(start: impl FnOnce() -> BoxFuture<'static, ()>) -> Handler {
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(start)) {
        Ok(fut) => fut,
        Err(panic) => Box::pin(async move { std::panic::resume_unwind(panic) }),
    };
    AssertUnwindSafe(fut).catch_unwind()
}

/// Logs a handler's panic; the connection goes on.
pub(crate) fn report(done: std::thread::Result<()>) {
    if done.is_err() {
        tracing::error!("a WebSocket handler panicked; the connection goes on");
    }
}
