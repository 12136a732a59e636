//! The event loops that run a host's plain-TCP connections after their
//! 101 (`WsOptions::event_loop`, on by default): N threads, each running
//! `simples-ws`'s mio [`EventLoop`] without a listener, given connections
//! in turn. The handshake stays on hyper (`handshake.rs` hands the socket
//! over); TLS connections keep the tokio driver (`driver.rs`).
//!
//! Per connection a loop keeps its slab entry (the socket and the
//! [`Protocol`](simples_ws::Protocol)) and an [`Entry`] here: the `WsConn`, the running handler,
//! and the messages waiting for it; the connection's signal lists it back
//! on its loop (and the connection itself is its handlers' waker). No task, no timer, no tokio registration: the loop's
//! timers run the protocol's keepalive and timeouts.
//!
//! ```text
//!   other threads: conn.send / broadcast -> outbox -> Signal::list
//!                  -> lane.ready (once per connection) -> Handle::wake
//!   loop thread:   on_wake: adopt new connections; step each ready one
//!                  on_message: job -> its handler, polled at once
//!                  step: poll the handler (its waker: the connection),
//!                        next job, pump the outbox into the protocol
//!                        (written at the end of the loop iteration)
//!                  on_drained: pump more; on_close: clean up
//! ```
//!
//! The rules are those of the tokio driver, shared through `jobs.rs`:
//! one handler at a time per connection, in the order messages arrived;
//! acknowledgements resolve at once; reading pauses while
//! `max_pending_messages` wait; at most `HIGH_WATER` bytes move into the
//! protocol, the rest waits in the outbox until the loop reports the
//! output drained. Handlers run on the loop thread inside the server's
//! runtime (`tokio::spawn`, timers and I/O work in them); `on_close`
//! handlers are spawned as tasks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::future::Future;
use std::pin::Pin;

use simples_ws::event_loop::{CloseReason, ConnId, Ctx, EventHandler, EventLoop, Options};
use simples_ws::{CloseCode, CloseFrame, Message};

use super::channel::leave_all;
use super::direct;
use super::jobs::{caught, dispatch, pump, receive, report, Handler, Pending, Running};
use super::outbox::{Out, HIGH_WATER};
use super::signal::{Lister, SharedLister, Signal};
use super::state::{Adoption, ConnInner, Lane, Loops, Retired, WsConn, WsShared};
use crate::lifecycle::Together;

/// The loop the next connection of `shared` goes to (in turn), starting
/// the loops if [`start_with_server`] could not.
pub(crate) fn lane(shared: &WsShared) -> std::io::Result<Arc<Lane>> {
    shared.lane()
}

/// Starts the host's loops as the server starts, so that their threads
/// and descriptors exist from the start (not made by the first
/// connection, and a failure is reported before any client sees it): the
/// hosts started together with the same number of threads share one set
/// (a broadcast from one host to another's connections then stays on the
/// thread it was made on). On an error the first connection tries again
/// ([`lane`]), with loops of the host's own.
pub(crate) fn start_with_server(shared: &WsShared, together: &Together) {
    if !shared.options.event_loop {
        return;
    }
    let threads = thread_count(shared.options.event_loop_threads);
    let sets = together.get_or_make(LoopSets::default);
    let mut sets = lock(&sets.0);
    let loops = match sets.iter().find(|(n, _)| *n == threads) {
        Some((_, loops)) => loops.clone(),
        None => match start(threads) {
            Ok(loops) => {
                let loops = Arc::new(loops);
                sets.push((threads, loops.clone()));
                loops
            }
            Err(e) => {
                tracing::warn!(error = %e, "WebSocket event loops could not start; retried with the first connection");
                return;
            }
        },
    };
    loops.users.fetch_add(1, Ordering::SeqCst);
    *lock(&shared.loops) = Some(loops);
}

/// The loop sets of one server start, by thread count.
#[derive(Default)]
struct LoopSets(Mutex<Vec<(usize, Arc<Loops>)>>);

/// `event_loop_threads` as a count (`0`: one per core).
fn thread_count(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Hands an upgraded plain-TCP connection to `lane` (from [`lane`]).
/// `leftover`: bytes read past the handshake.
pub(crate) fn adopt(
    lane: &Lane,
    mut adoption: Adoption,
    leftover: &[u8],
    extension: Option<Box<simples_ws::deflate::DeflateExtension>>,
) {
    if let Some(ext) = extension {
        adoption.protocol.set_extension(ext);
    }
    adoption.protocol.receive(leftover);
    let mut queue = lock(&lane.adopt);
    if lane.stopped.load(Ordering::Acquire) {
        // The loop has ended (stopped, or failed): nothing would take it.
        drop(queue);
        tracing::debug!(id = adoption.id, "WebSocket connection refused: its event loop has ended");
        adoption.host.end_upgrade();
        return;
    }
    queue.push(adoption);
    drop(queue);
    lane.handle.wake();
}

/// The lane's retirer, a task of the runtime for the lane's life: frees
/// the request heads its loop replaced (see `Adoption`) each time the loop
/// says there are some (`Lane::retire`), until the lane stops. On a
/// runtime thread, like the thread that made them; and nothing of it is
/// made by the loop's thread: a task or list made there and freed here
/// would put the loop's blocks in this thread's cache, to come back as its
/// short-lived allocations among the connections' blocks (measured: 1.25
/// MB of holes in the loop's arena for 10,000 idle connections with a task
/// per batch). The heads are moved into a list made here, so the lane's
/// own list stays where it was made, for reuse.
async fn retirer(lane: Arc<Lane>) {
    loop {
        lane.retire.notified().await;
        let retired: Vec<Retired> = lock(&lane.retired).drain(..).collect();
        drop(retired);
        if lane.stopped.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Stops `lane`'s loop and its retirer.
fn stop_lane(lane: &Lane) {
    lane.handle.stop();
    lane.stopped.store(true, Ordering::Release);
    lane.retire.notify_one();
}

/// The host stopped (its connections ended, or were dropped at the
/// shutdown deadline): the last host of its loop set stops the loops and
/// waits for their threads.
pub(crate) async fn stop(shared: &WsShared) {
    let Some(loops) = lock(&shared.loops).take() else {
        return;
    };
    if loops.users.fetch_sub(1, Ordering::SeqCst) != 1 {
        return;
    }
    for lane in &loops.lanes {
        stop_lane(lane);
    }
    let threads = std::mem::take(&mut *lock(&loops.threads));
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

impl WsShared {
    /// The host's loops, starting them if needed; never while the host
    /// stops (an upgrade still in flight after `stop` took the loops
    /// would start a set nobody stops: its connection runs as a task,
    /// closed at once since the host is stopping).
    fn loops(&self) -> std::io::Result<Arc<Loops>> {
        let mut slot = lock(&self.loops);
        Ok(match &*slot {
            Some(loops) => loops.clone(),
            None if self.stopping.load(Ordering::SeqCst) => {
                return Err(std::io::Error::other("the host is stopping"));
            }
            None => {
                let loops = Arc::new(start(thread_count(self.options.event_loop_threads))?);
                loops.users.store(1, Ordering::SeqCst);
                *slot = Some(loops.clone());
                loops
            }
        })
    }

    /// The next loop in turn that still runs, starting the loops if
    /// needed; an error when every loop has ended (the connection then
    /// runs as a task).
    fn lane(&self) -> std::io::Result<Arc<Lane>> {
        let loops = self.loops()?;
        let first = loops.next.fetch_add(1, Ordering::Relaxed);
        (0..loops.lanes.len())
            .map(|k| &loops.lanes[(first + k) % loops.lanes.len()])
            .find(|lane| !lane.stopped.load(Ordering::Acquire))
            .cloned()
            .ok_or_else(|| std::io::Error::other("every WebSocket event loop has ended"))
    }
}

/// Starts `threads` loops, each entering the current tokio runtime. No
/// host uses them yet (`Loops::users`).
fn start(threads: usize) -> std::io::Result<Loops> {
    let mut started = Loops {
        lanes: Vec::new(),
        next: AtomicUsize::new(0),
        threads: Mutex::new(Vec::new()),
        users: AtomicUsize::new(0),
    };
    match start_into(threads, &mut started) {
        Ok(()) => Ok(started),
        Err(e) => {
            // The loops already running would otherwise run forever.
            for lane in &started.lanes {
                stop_lane(lane);
            }
            Err(e)
        }
    }
}

/// Starts the loops one by one into `loops` (see [`start`]).
fn start_into(threads: usize, loops: &mut Loops) -> std::io::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    // The loops log where the thread that started them logs (a test's or
    // an application's scoped subscriber included).
    let dispatch = tracing::dispatcher::get_default(tracing::Dispatch::clone);
    for i in 0..threads {
        let options = Options {
            // The framework bounds what it moves into the protocol itself
            // (`HIGH_WATER`, the outbox limits and the slow policy): the
            // loop's own limit would drop or close behind its back.
            max_queued: usize::MAX,
            // Pump more from the outbox once the output is under half of
            // what a pump fills it to (as the tokio driver's low water).
            read_low_water: HIGH_WATER / 2,
            ..Options::default()
        };
        let mut lp: EventLoop<LoopHandler> = EventLoop::unbound(options)?;
        let number = direct::lane_number();
        let lane = Arc::new(Lane {
            handle: lp.handle(),
            number,
            adopt: Mutex::default(),
            ready: Mutex::default(),
            retired: Mutex::default(),
            retire: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
        });
        let handler = LoopHandler {
            lister: Arc::new(Box::new(lane.clone())),
            lane: lane.clone(),
            entries: Vec::new(),
            ready: Vec::new(),
            adopting: Vec::new(),
            retired: Vec::new(),
            batch: VecDeque::new(),
            runtime: runtime.clone(),
        };
        let rt = runtime.clone();
        let dispatch = dispatch.clone();
        let (running, started) = std::sync::mpsc::sync_channel(1);
        let join = std::thread::Builder::new().name(format!("simples-ws-loop-{i}")).spawn(move || {
            let _entered = rt.enter();
            let _logging = tracing::dispatcher::set_default(&dispatch);
            direct::enter(number);
            let _ = running.send(());
            // Returns on `Handle::stop`, or an error of the poll itself
            // (logged); the handler's `Drop` then ends what is left.
            if let Err(e) = lp.run(handler) {
                tracing::error!(error = %e, "a WebSocket event loop failed");
            }
        })?;
        // Running (and named) when `start` returns: the server's threads
        // are all there once it has started.
        let _ = started.recv();
        runtime.spawn(retirer(lane.clone()));
        loops.lanes.push(lane);
        lock(&loops.threads).push(join);
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a loop connection's wake-ups list it (`Signal::list`, once at
/// a time).
impl Lister for Arc<Lane> {
    fn list(&self, id: ConnId) {
        lock(&self.ready).push(id);
        self.handle.wake();
    }
}

/// A loop connection's handlers' waker: lists it on its loop, as its
/// outbox's notifications do.
impl Wake for ConnInner {
    fn wake(self: Arc<Self>) {
        self.wake.list();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake.list();
    }
}

/// A connection of the loop, as the framework sees it.
struct Entry {
    conn: WsConn,
    task: Option<Handler>,
    /// Messages waiting for the running handler; allocated by the first.
    pending: Option<Box<Pending>>,
    /// `WsShared::force` when the connection started (its low bits: the
    /// counter only ever grows by one at a time).
    generation: u32,
    /// Reading paused while handlers lag.
    paused: bool,
    /// What only some connections have, in one box made only for them (8
    /// bytes per connection, not 16 for two).
    rare: Option<Box<EntryRare>>,
}

/// See `Entry::rare`.
struct EntryRare {
    /// The connection's span (id, peer, host, path), entered while its
    /// handlers run; only when some subscriber wants it.
    span: Option<tracing::Span>,
    /// The admission slot (with connection limits only), released with
    /// the connection.
    slot: Option<super::admission::Slot>,
}

impl Entry {
    /// Whether this is connection `id` (not one before it in the slot):
    /// its id on the loop is its signal's (not kept here too: the entry
    /// would take 56 bytes, not 48; the lookups that ask touch the
    /// signal's cache line next anyway).
    #[inline]
    fn is(&self, id: ConnId) -> bool {
        self.conn.inner.wake.loop_id() == Some(id)
    }

    /// The connection's span, if it has one.
    fn span(&self) -> Option<tracing::Span> {
        self.rare.as_ref().and_then(|r| r.span.clone())
    }
}

/// The loop's [`EventHandler`]: the framework's connections of one lane.
struct LoopHandler {
    lane: Arc<Lane>,
    /// The lane as its connections' signals list on it (`Lister for
    /// Arc<Lane>`), made once.
    lister: SharedLister,
    /// By `ConnId::index` (dense: the loop reuses its slots).
    entries: Vec<Option<Entry>>,
    /// Scratch lists, filled from the lane's under its lock.
    ready: Vec<ConnId>,
    adopting: Vec<Adoption>,
    /// The batch's replaced request heads, handed to the lane's retirer
    /// after it.
    retired: Vec<Retired>,
    batch: VecDeque<Out>,
    runtime: tokio::runtime::Handle,
}

impl LoopHandler {
    fn entry(&mut self, id: ConnId) -> Option<&mut Entry> {
        self.entries.get_mut(id.index())?.as_mut().filter(|e| e.is(id))
    }

    /// A connection handed over by `adopt` joins the loop and opens.
    fn open(&mut self, ctx: &mut Ctx<'_>, adoption: Adoption) {
        let Adoption { stream, protocol, host, id: conn_id, mut request, slot } = adoption;
        let id = match ctx.adopt(stream, protocol) {
            Ok(id) => id,
            Err(e) => {
                tracing::debug!(id = conn_id, error = %e, "WebSocket connection could not join its event loop");
                host.end_upgrade();
                self.retired.push(Retired { _request: request });
                return;
            }
        };
        // Made on this thread, away from the handshake's freed buffers (see
        // `Adoption`).
        let kept = request.rehome();
        self.retired.push(Retired { _request: request });
        let conn = WsConn::new(conn_id, host.clone(), kept, Signal::fixed(self.lister.clone(), self.lane.number, id));
        host.register(&conn);
        let (on_open, _) = host.lifecycle_handlers();
        let generation = host.force.load(Ordering::SeqCst) as u32;
        let span = tracing::info_span!("ws", id = conn.id(), peer = %conn.peer_addr(), host = %conn.host_name(), path = %conn.path());
        let span = (!span.is_disabled()).then_some(span);
        let task = {
            let _in = span.as_ref().map(tracing::Span::enter);
            on_open.map(|open| caught(|| open(conn.clone())))
        };
        let index = id.index();
        if self.entries.len() <= index {
            self.entries.resize_with(index + 1, || None);
        }
        let rare = (span.is_some() || slot.is_some()).then(|| Box::new(EntryRare { span, slot }));
        self.entries[index] = Some(Entry { conn, task, pending: None, generation, paused: false, rare });
        self.step(ctx, id);
    }

    /// Everything a wake-up may call for: the handler, the next message,
    /// the outbox, a forced stop.
    fn step(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        let Some(entry) = self.entries.get_mut(id.index()).and_then(Option::as_mut).filter(|e| e.is(id)) else {
            return;
        };
        // A wake-up from now on lists the connection again.
        entry.conn.inner.wake.unlist();
        let conn = entry.conn.clone();
        let host = &conn.inner.host;
        let span = entry.span();
        let _in = span.as_ref().map(tracing::Span::enter);
        // The handler, then the messages that waited for it, in order;
        // polled with a waker made from the connection (the first time).
        let mut waker = None;
        loop {
            if entry.task.is_some() {
                let waker = waker.get_or_insert_with(|| Waker::from(conn.inner.clone()));
                let mut cx = Context::from_waker(waker);
                let mut running = Running { task: &mut entry.task, wake: &conn.inner.wake };
                if let Poll::Ready(done) = Pin::new(&mut running).poll(&mut cx) {
                    entry.task = None;
                    report(done);
                } else {
                    break;
                }
            }
            match entry.pending.as_mut().and_then(|p| p.pop()) {
                Some(job) => entry.task = dispatch(&conn, job),
                None => break,
            }
        }
        if entry.pending.as_ref().is_some_and(|p| p.jobs.is_empty()) {
            entry.pending = None;
        }
        // Frames listed for this connection on the direct path go out
        // before anything its outbox holds (pumped below).
        if direct::listed(id) {
            self.write_direct(ctx);
        }
        let Some(entry) = self.entries.get_mut(id.index()).and_then(Option::as_mut) else {
            return;
        };
        if entry.paused && !entry.pending.as_ref().is_some_and(|p| !p.accepts_more(&host.options)) {
            entry.paused = false;
            ctx.pause_reading(id, false);
        }
        // Notifications from here on wake the connection again (through
        // `Signal::list`), and what they announce is pumped below.
        conn.inner.wake.take();
        if host.force.load(Ordering::SeqCst) as u32 != entry.generation {
            // Dropped at the shutdown deadline: over for the application
            // now; the loop ends the transport.
            ctx.close(id, CloseCode::GOING_AWAY, "server shutting down");
            if let Some(entry) = self.entries[id.index()].take() {
                self.finish(entry, None);
            }
            return;
        }
        let idle = entry.task.is_none();
        let backlog = pump(
            &conn,
            &mut self.batch,
            ctx,
            |ctx| ctx.queued(id).unwrap_or(0),
            |ctx, batch| {
                for out in batch.drain(..) {
                    match out {
                        Out::Message(m) => {
                            ctx.send(id, m);
                        }
                        Out::Frame(f) => {
                            ctx.send_prepared(id, &f);
                        }
                        Out::Close(code, reason) => {
                            ctx.close(id, code, &reason);
                        }
                    }
                }
            },
            idle,
        );
        if backlog {
            ctx.notify_drained(id);
        }
        if self.batch.capacity() > 64 {
            self.batch = VecDeque::new();
        }
    }

    /// Writes the frames broadcasts on this thread listed on the direct
    /// path (`direct.rs`) into their connections' outputs, each
    /// connection's in one go, and reopens each path unless something
    /// closed it meanwhile or the output is over `HIGH_WATER` (then closed
    /// until the output drains and the pump finds the outbox empty). Once
    /// per iteration (`before_writes`), before the pump of a connection
    /// with frames listed (`step`), and after callbacks that come after
    /// `before_writes` (`on_drained`, `on_close`, and `on_message` then:
    /// `Ctx::writing`).
    fn write_direct(&mut self, ctx: &mut Ctx<'_>) {
        if !direct::pending() {
            return;
        }
        let entries = &self.entries;
        direct::drain(|id, frames| {
            let Some(entry) = entries.get(id.index()).and_then(Option::as_ref).filter(|e| e.is(id)) else {
                return;
            };
            // Sent at once when nothing waited: the outputs of a burst to
            // 1,000 connections outgrow the cache before the iteration's
            // writes (the kernel's copy from them was 3% of the time,
            // uWebSockets.js's 1%).
            match ctx.send_batch(id, frames) {
                Some(left) if left < HIGH_WATER => entry.conn.inner.wake.reopen_direct(),
                Some(_) => {
                    entry.conn.inner.wake.close_direct();
                    ctx.notify_drained(id);
                }
                // Closing: nothing more goes out this way.
                None => entry.conn.inner.wake.close_direct(),
            }
        });
    }

    /// The connection ended (its loop said so, or a forced stop): refuse
    /// new messages, leave the registry and the channels, fail the waiting
    /// requests, then tell the application (as the tokio driver does).
    fn finish(&self, entry: Entry, frame: Option<CloseFrame>) {
        let Entry { conn, task, pending, rare, .. } = entry;
        let slot = rare.and_then(|r| r.slot);
        conn.inner.outbox().finish();
        drop(task);
        drop(pending);
        let host = conn.inner.host.clone();
        host.unregister(&conn);
        host.metrics().closed(frame.as_ref().map(|f| f.code.0));
        leave_all(&host, &conn);
        conn.end_requests();
        let (_, on_close) = host.lifecycle_handlers();
        if let Some(close) = on_close {
            self.runtime.spawn(async move {
                report(caught(|| close(conn, frame)).await);
                drop(slot);
            });
        }
    }
}

impl Drop for LoopHandler {
    /// The loop stopped: connections still in it end for the application,
    /// and connections on their way to it are given up.
    fn drop(&mut self) {
        for entry in std::mem::take(&mut self.entries).into_iter().flatten() {
            self.finish(entry, None);
        }
        // Frames listed on the direct path that no loop will write now.
        direct::drain(|_, _| {});
        // Taken first: the adoptions (the application's request data
        // among them) are dropped with no lock held. Marked ended under
        // the same lock: `adopt` refuses from now on, and `lane` skips this
        // loop (it may have ended on an error of its poll, before any stop).
        let adopting = {
            let mut queue = lock(&self.lane.adopt);
            self.lane.stopped.store(true, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        self.lane.retire.notify_one();
        for adoption in adopting {
            adoption.host.end_upgrade();
        }
    }
}

impl EventHandler for LoopHandler {
    fn on_wake(&mut self, ctx: &mut Ctx<'_>) {
        // Drained into the loop's own list, not swapped with it: each list
        // stays with the thread that grows it (a buffer made by one thread
        // and freed by another leaves holes in the loop's malloc arena).
        self.adopting.extend(lock(&self.lane.adopt).drain(..));
        let mut adopting = std::mem::take(&mut self.adopting);
        for adoption in adopting.drain(..) {
            self.open(ctx, adoption);
        }
        self.adopting = adopting;
        if !self.retired.is_empty() {
            // For the lane's retirer to free (no allocation here).
            lock(&self.lane.retired).extend(self.retired.drain(..));
            self.lane.retire.notify_one();
        }
        self.ready.extend(lock(&self.lane.ready).drain(..));
        let mut ready = std::mem::take(&mut self.ready);
        for id in ready.drain(..) {
            self.step(ctx, id);
        }
        self.ready = ready;
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if !msg.is_data() {
            return;
        }
        let Some(entry) = self.entry(id) else {
            return;
        };
        let conn = entry.conn.clone();
        let span = entry.span();
        let _in = span.as_ref().map(tracing::Span::enter);
        // (`None`: an acknowledgement, or a refusal already queued.)
        if let Some((job, size)) = receive(&conn, msg) {
            if entry.task.is_none() && entry.pending.is_none() {
                // Straight to its handler (polled by `step`): no queue.
                entry.task = dispatch(&conn, job);
            } else {
                let pending = entry.pending.get_or_insert_with(Box::default);
                pending.push(job, size);
                if !pending.accepts_more(&conn.inner.host.options) && !entry.paused {
                    entry.paused = true;
                    ctx.pause_reading(id, true);
                }
            }
        }
        self.step(ctx, id);
        if ctx.writing() {
            // Read again after `before_writes` (just adopted, or resumed):
            // what its handler broadcast goes now, not at the next event.
            self.write_direct(ctx);
        }
    }

    fn on_drained(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        self.step(ctx, id);
        // After `before_writes`: what its handler broadcast.
        self.write_direct(ctx);
    }

    fn before_writes(&mut self, ctx: &mut Ctx<'_>) {
        self.write_direct(ctx);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        let Some(entry) = self.entries.get_mut(id.index()).and_then(|e| e.take_if(|e| e.is(id))) else {
            return;
        };
        let frame = match reason {
            CloseReason::Closed(frame) => frame,
            other => {
                tracing::debug!(id = entry.conn.id(), reason = ?other, "WebSocket connection ended");
                None
            }
        };
        self.finish(entry, frame);
        // What leaving the channels broadcast (presence): `on_close` may
        // come after `before_writes`.
        self.write_direct(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (2026-12-05, review): an upgrade still in flight after
    /// the host's stop took its loops started a new set of loop threads
    /// that nothing stopped.
    #[tokio::test]
    async fn a_stopping_host_starts_no_loops() {
        let host = crate::ws::WsHost::new("/t", crate::ws::WsOptions::default());
        host.shared.stopping.store(true, Ordering::SeqCst);
        assert!(host.shared.lane().is_err());
        assert!(lock(&host.shared.loops).is_none(), "loops started for a stopping host");
        host.shared.stopping.store(false, Ordering::SeqCst);
        assert!(host.shared.lane().is_ok());
        stop(&host.shared).await;
    }

    /// A loop that ended without a stop (as on an error of its poll) is
    /// marked by its handler's end: no connection is sent there any more,
    /// and one already on its way is refused (its upgrade ended, its
    /// socket closed) rather than left in a queue nobody reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loop_that_ended_gets_no_more_connections() {
        let options = crate::ws::WsOptions { event_loop_threads: 2, ..crate::ws::WsOptions::default() };
        let host = crate::ws::WsHost::new("/t", options);
        let loops = host.shared.loops().unwrap();
        let dead = loops.lanes[0].clone();
        // Its loop returns, as `run` does on a poll error (no `stop_lane`).
        dead.handle.stop();
        let thread = lock(&loops.threads).remove(0);
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
        assert!(dead.stopped.load(Ordering::Acquire), "the ended loop is not marked");
        for _ in 0..4 {
            assert!(!Arc::ptr_eq(&host.shared.lane().unwrap(), &dead), "a connection sent to the ended loop");
        }
        // One that picked it just before: refused, its upgrade ended.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        assert!(host.shared.begin_upgrade());
        let adoption = Adoption {
            stream,
            protocol: simples_ws::Protocol::new(simples_ws::Role::Server, host.shared.config.clone()),
            host: host.shared.clone(),
            id: 1,
            request: crate::ws::request::RequestInfo::for_tests("/t", [2, 2, 2]),
            slot: None,
        };
        adopt(&dead, adoption, &[], None);
        assert_eq!(host.shared.upgrading.load(Ordering::SeqCst), 0);
        assert!(lock(&dead.adopt).is_empty());
        client.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(std::io::Read::read(&mut &client, &mut [0u8; 1]).unwrap(), 0, "the refused socket is closed");
        stop(&host.shared).await;
    }

    /// One per connection of a loop (the handler's table): the span and
    /// the admission slot share one box (64 bytes with a box each), the
    /// loop's id is the signal's (56 with a copy here).
    #[test]
    fn an_entry_is_six_words() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 48);
    }

    /// The connection's shared state: 184 bytes with the `Arc`'s counts,
    /// so malloc's 192-byte chunk (224 before the signal's lister was a
    /// thin pointer and the ended flags were the outbox's, 208 before the
    /// request's ends moved into its text).
    #[test]
    fn a_connection_fits_a_192_byte_chunk() {
        assert_eq!(std::mem::size_of::<ConnInner>() + 16, 184);
    }

    /// The ids of two connections that held the same slot of a real loop,
    /// one after the other (the first closed before the second came).
    fn ids_sharing_a_slot() -> (ConnId, ConnId) {
        use std::io::Write;
        use std::time::Duration;

        #[derive(Default)]
        struct Ids {
            opened: Vec<ConnId>,
            closed: usize,
        }
        impl EventHandler for Ids {
            fn on_open(
                &mut self,
                _: &mut Ctx<'_>,
                id: ConnId,
                _: &simples_ws::event_loop::Request,
            ) -> Result<simples_ws::event_loop::Accept, simples_ws::handshake::HandshakeError> {
                self.opened.push(id);
                Ok(simples_ws::event_loop::Accept::default())
            }
            fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
            fn on_close(&mut self, _: &mut Ctx<'_>, _: ConnId, _: CloseReason) {
                self.closed += 1;
            }
        }
        let mut lp = EventLoop::<Ids>::bind(([127, 0, 0, 1], 0).into(), Options::default()).unwrap();
        let addr = lp.local_addr().unwrap();
        let mut ids = Ids::default();
        let mut run_until = |ids: &mut Ids, done: &dyn Fn(&Ids) -> bool| {
            for _ in 0..500 {
                if done(ids) {
                    return;
                }
                lp.run_once(ids, Some(Duration::from_millis(10))).unwrap();
            }
            panic!("the loop did not get there in 5 s");
        };
        for n in 1..=2 {
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client
                .write_all(
                    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                )
                .unwrap();
            run_until(&mut ids, &|ids| ids.opened.len() == n);
            drop(client);
            run_until(&mut ids, &|ids| ids.closed == n);
        }
        let (old, new) = (ids.opened[0], ids.opened[1]);
        assert_eq!(old.index(), new.index(), "the second connection took another slot");
        (old, new)
    }

    /// Regression (2026-12-05, found by mutating `Entry::is` to always
    /// true: no test failed): a wake-up or a direct-path listing made for
    /// a connection that has since closed names a slot a newer connection
    /// may hold; the entry must not answer to the old id, or the loop
    /// steps (and unlists, reopens the direct path of) the wrong one.
    #[test]
    fn an_entry_answers_to_its_own_id_only_not_to_an_earlier_one_of_its_slot() {
        struct Nobody;
        impl Lister for Nobody {
            fn list(&self, _: ConnId) {}
        }
        let (old, new) = ids_sharing_a_slot();
        let lister: SharedLister = Arc::new(Box::new(Nobody));
        let host = super::super::WsHost::new("/t", super::super::WsOptions::default());
        let request = super::super::request::RequestInfo::for_tests("/t", [2, 2, 2]);
        let conn = WsConn::new(1, host.shared.clone(), request, Signal::fixed(lister, direct::lane_number(), new));
        let entry = Entry { conn, task: None, pending: None, generation: 0, paused: false, rare: None };
        assert!(entry.is(new));
        assert!(!entry.is(old), "the entry of {new:?} answered to {old:?}");
    }
}
