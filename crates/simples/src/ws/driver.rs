//! The task that runs one connection: moves the outbox into the protocol,
//! reads messages and runs their handlers one at a time, and cleans up.
//!
//! ```text
//!   loop:
//!     outbox --(while < HIGH_WATER bytes wait in the protocol)--> protocol
//!     next pending message -> its handler (one at a time, in order)
//!     wait for: outbox wake-up (or forced shutdown) | handler done |
//!               the connection (a message, room to write, the end)
//! ```
//!
//! Acknowledgements are resolved as they arrive, not queued behind the
//! running handler, so a handler may await `WsConn::request`. Reading stops
//! while `max_pending_messages` (or `max_message_size` bytes of messages)
//! wait for their handler: the client is then slowed by TCP flow control,
//! and memory stays bounded.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use simples_ws::tokio::{Drive, WebSocket};
use simples_ws::{CloseFrame, Message, Role};
use tokio::io::{AsyncRead, AsyncWrite};

use super::channel::leave_all;
use super::jobs::{caught, dispatch, pump, receive, report, Handler, Job, Pending, Running};
use super::outbox::{Out, HIGH_WATER};
use super::signal::Signal;
use super::state::WsConn;

/// The connection over `io` (the upgraded transport; `leftover`: bytes
/// read past the handshake), with the negotiated extension: what
/// [`run`] takes.
pub(crate) fn socket<S>(
    io: S,
    leftover: &[u8],
    extension: Option<Box<simples_ws::deflate::DeflateExtension>>,
    conn: &WsConn,
) -> WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = WebSocket::from_raw(io, Role::Server, conn.inner.host.config.clone(), leftover);
    if let Some(ext) = extension {
        ws.protocol_mut().set_extension(ext);
    }
    ws
}

/// Runs `conn` over `ws` until it ends. (The connection is built by
/// [`socket`], outside this future: its arguments would stay in it for the
/// connection's life.)
#[allow(clippy::manual_async_fn)] // on purpose: see the comment inside
pub(crate) fn run<S>(mut ws: WebSocket<S>, conn: WsConn) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Not an `async fn`: its arguments would be copied into locals of the
    // future, holding the connection twice; the block uses them in place.
    async move {
        let host = conn.inner.host.clone();
        host.register(&conn);
        let (on_open, on_close) = host.lifecycle_handlers();
        let generation = host.force.load(Ordering::SeqCst);
        let mut pending = Pending::default();
        let mut task: Option<Handler> = on_open.map(|open| caught(|| open(conn.clone())));
        let mut batch = VecDeque::new();

        let close_frame: Option<CloseFrame> = loop {
            // Whatever the notification announced (a forced shutdown, queued
            // items) is looked at below; a later one sets it again.
            conn.inner.wake.take();
            if host.force.load(Ordering::SeqCst) != generation {
                break None;
            }
            let backlog = pump_into(&mut ws, &conn, &mut batch);
            if task.is_none() {
                // Polled first by the `select!` below (a first poll here
                // would save no turn: its reply waits for the next `pump`).
                if let Some(job) = pending.pop() {
                    task = dispatch(&conn, job);
                }
            }
            // Stop reading while handlers lag: at most `max_pending_messages`
            // or one maximum-size message's worth of bytes wait.
            let read = pending.accepts_more(&host.options);
            let low_water = backlog.then_some(HIGH_WATER / 2);
            // A message for its handler at once (started after the
            // `select!`, whose futures would otherwise share the task's
            // memory with the handler's first poll).
            let fresh = tokio::select! {
                biased;
                _ = conn.inner.wake.wait() => None,
                done = Running { task: &mut task, wake: &conn.inner.wake }, if task.is_some() => {
                    task = None;
                    report(done);
                    None
                }
                step = ws.drive(read, low_water) => match step {
                    Ok(Drive::Writable) => None,
                    Ok(Drive::Message(Message::Close(frame))) => break frame,
                    Ok(Drive::Message(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        match receive(&conn, m) {
                            // Straight to its handler when none runs or
                            // waits: the queue is not even allocated.
                            Some((job, _)) if task.is_none() && pending.jobs.is_empty() => Some(job),
                            Some((job, size)) => {
                                pending.push(job, size);
                                None
                            }
                            None => None,
                        }
                    }
                    Ok(Drive::Message(_)) => None,
                    Err(e) => {
                        tracing::debug!(id = conn.id(), error = %e, "WebSocket connection ended");
                        break None;
                    }
                },
                // Polled only when every branch above waits (biased).
                () = go_idle(&conn, &mut batch, &mut pending) => None,
            }
            // (Moved out before the `await`: the task's future would keep
            // room for a job across it.)
            .map(|job| start(&conn, job, &mut task));
            if let Some(first) = fresh {
                first.await;
            }
        };

        // Ended: refuse new messages, leave the registry and the channels, fail
        // the waiting requests, then tell the application.
        conn.inner.outbox().finish();
        drop(task);
        drop(ws);
        host.unregister(&conn);
        host.metrics().closed(close_frame.as_ref().map(|f| f.code.0));
        leave_all(&host, &conn);
        conn.end_requests();
        if let Some(close) = on_close {
            report(caught(|| close(conn.clone(), close_frame)).await);
        }
    }
}

/// Moves the outbox into the protocol ([`pump`]); `true` if the outbox
/// still holds items.
fn pump_into<S>(ws: &mut WebSocket<S>, conn: &WsConn, batch: &mut VecDeque<Out>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pump(
        conn,
        batch,
        ws.protocol_mut(),
        |proto| proto.output().len(),
        |proto, batch| {
            // One allocation for the burst: the output's buffer is released
            // whenever the connection waits with nothing to write, and would
            // otherwise grow by doubling (a realloc and a copy) every few
            // frames.
            proto.output().reserve_for(batch.iter().map(Out::size));
            for out in batch.drain(..) {
                let result = match out {
                    Out::Message(m) => proto.send(m),
                    Out::Frame(f) => proto.send_prepared(&f),
                    Out::Close(code, reason) => proto.close(code, &reason),
                };
                if let Err(e) = result {
                    // Closing or failed: the driver loop sees the end.
                    tracing::debug!(id = conn.id(), error = %e, "queued message not sent");
                }
            }
        },
        // Released when the task waits (`go_idle`).
        false,
    )
}

/// The connection waits (for the peer, a wake-up or its handler): frees
/// the capacity its queues kept from the last burst, as the protocol frees
/// its buffers, so that an idle connection holds none (a burst then costs
/// an allocation or two again). Never resolves. (A poll function, not an
/// `async fn`: the driver holds just the three references.)
fn go_idle<'a>(conn: &'a WsConn, batch: &'a mut VecDeque<Out>, pending: &'a mut Pending) -> impl Future<Output = ()> + 'a {
    std::future::poll_fn(move |_| {
        if batch.capacity() > 0 {
            *batch = VecDeque::new();
        }
        if pending.jobs.is_empty() && pending.jobs.capacity() > 0 {
            pending.jobs = VecDeque::new();
        }
        conn.inner.outbox().release_if_empty();
        Poll::Pending
    })
}

/// Polls the handler just started (if any) once, at once: most finish
/// there (an echo; it is then dropped and [`report`]ed), so the next turn
/// of the loop moves the reply out and waits, instead of a turn to see the
/// handler finish first. Polled with this task's waker (a handler that
/// waits is woken as from the `select!`); never waits itself.
struct FirstPoll<'a>(&'a mut Option<Handler>, &'a Signal);

/// Starts the handler of a message whose turn came (see [`FirstPoll`]).
fn start<'a>(conn: &'a WsConn, job: Job, task: &'a mut Option<Handler>) -> FirstPoll<'a> {
    *task = dispatch(conn, job);
    FirstPoll(task, &conn.inner.wake)
}

impl Future for FirstPoll<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let FirstPoll(task, wake) = &mut *self;
        if task.is_some() {
            if let Poll::Ready(done) = Pin::new(&mut Running { task, wake }).poll(cx) {
                **task = None;
                report(done);
            }
        }
        Poll::Ready(())
    }
}

