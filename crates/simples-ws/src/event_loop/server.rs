//! The loop: accept, read, dispatch, cork, close.

use super::conn::{self, Conn, ConnState, Stamp, DEAD, DRAIN, PAUSED, PENDING, READ_PAUSED, SHRINK, SHUTDOWN, TERMINAL};
use super::{uninit, Accept, CloseReason, ConnId, EventHandler, Options};
use crate::handshake::server::parse_request;
use crate::handshake::{HandshakeError, HandshakeErrorKind, ServerPolicy};
use crate::message::Message;
use crate::proto::{Config, Protocol, Role, TransportAction};
use bytes::{Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// The loop-wide buffer that reads between frames land in.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Pause before retrying `accept` after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// How long a connection must stay idle before its buffers are released.
const SHRINK_DELAY: Duration = Duration::from_secs(1);
/// Largest slab index: `ConnId` keeps it in 32 bits, tokens above are ours.
const MAX_CONNS: usize = u32::MAX as usize;

/// Stops or wakes a running [`EventLoop`] from any thread.
#[derive(Clone, Debug)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    /// Set by [`Handle::wake`], swapped back by the loop before it calls
    /// [`EventHandler::on_wake`]: several wakes give one call.
    woken: Arc<AtomicBool>,
    /// Set by [`Handle::shutdown`]: `run` shuts down gracefully, with this
    /// deadline, before it returns.
    pub(super) graceful: Arc<Mutex<Option<Duration>>>,
    waker: Arc<Waker>,
}

impl Handle {
    /// Makes [`EventLoop::run`] return after the current iteration;
    /// connections still open stay in the loop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Makes the loop call [`EventHandler::on_wake`] once, soon: in its
    /// next iteration, or in the current one if it has not yet passed that
    /// point (after the readiness events, before the end-of-iteration
    /// writes). Wakes that come before the loop gets there give one call;
    /// a wake during `on_wake` gives another call. Callable from any thread
    /// and from the loop's own callbacks; no allocation, and at most one
    /// system call (an `eventfd` write) per batch of coalesced wakes.
    pub fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Makes [`EventLoop::run`] stop gracefully: it runs
    /// [`EventLoop::shutdown`] with `timeout`, then returns.
    pub fn shutdown(&self, timeout: Duration) {
        *self.graceful.lock().unwrap_or_else(|e| e.into_inner()) = Some(timeout);
        self.stop();
    }
}

/// The event loop: a listening socket (none for [`EventLoop::unbound`]) and
/// every connection it accepted or adopted ([`Ctx::adopt`]), driven from
/// one thread (see the module documentation).
pub struct EventLoop<H> {
    poll: Poll,
    events: Events,
    /// `None` once [`EventLoop::shutdown`] closed it.
    pub(super) listener: Option<TcpListener>,
    /// The address listened on (`None`: [`EventLoop::unbound`]).
    addr: Option<SocketAddr>,
    pub(super) core: Core,
    handle: Handle,
    pub(super) accepting: Accepting,
    _handler: PhantomData<fn(H)>,
}

/// The listener's state after `accept` failed.
#[derive(Default)]
pub(super) struct Accepting {
    /// When to retry `accept` (edge-triggered: the listener's backlog
    /// raises no new edge by itself).
    retry: Option<Instant>,
    /// `accept` failed and has not succeeded since (the failure was logged).
    failing: bool,
}

/// Everything the handlers may touch through [`Ctx`].
pub(super) struct Core {
    pub(super) conns: Slab<Conn>,
    next_gen: u32,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Connections to flush and re-arm at the end of the iteration.
    pub(super) dirty: Vec<usize>,
    /// Connections that went idle holding buffers, released at the next
    /// sweep (see `SHRINK_DELAY`) if still idle; each listed once (`SHRINK`).
    shrink: Vec<(usize, u32)>,
    /// When the shrink list is swept next.
    shrink_at: Instant,
    scratch: Box<[u8]>,
    pub(super) options: Options,
    /// `options.config`, shared by every connection (not copied into each).
    config: Arc<Config>,
    pub(super) registry: Registry,
    /// The iteration's time.
    pub(super) now: Instant,
    /// When the loop started (for [`Stamp`]s).
    epoch: Instant,
    /// [`EventLoop::shutdown`] started: connections adopted from now on are
    /// closed with 1001 at once.
    pub(super) shutting_down: bool,
    /// The iteration's [`EventHandler::before_writes`] has run (see
    /// [`Ctx::writing`]).
    pub(super) writing: bool,
}

/// What a [`EventHandler`] callback can do: send to, close or inspect any
/// connection of the loop. Sends are queued and written at the end of the
/// loop iteration, one vectored write per connection.
pub struct Ctx<'a> {
    pub(super) core: &'a mut Core,
}

impl<H: EventHandler> EventLoop<H> {
    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr, options: Options) -> io::Result<EventLoop<H>> {
        let listener = if options.reuse_port { bind_reuse_port(addr)? } else { TcpListener::bind(addr)? };
        EventLoop::new(Some(listener), options)
    }

    /// A loop without a listening socket: its connections come only from
    /// [`Ctx::adopt`] (connections whose handshake was done elsewhere,
    /// handed over through [`Handle::wake`] and [`EventHandler::on_wake`];
    /// see "Adopting connections" in the module docs).
    /// [`EventLoop::local_addr`] fails on it with `NotConnected`.
    pub fn unbound(options: Options) -> io::Result<EventLoop<H>> {
        EventLoop::new(None, options)
    }

    fn new(mut listener: Option<TcpListener>, options: Options) -> io::Result<EventLoop<H>> {
        let poll = Poll::new()?;
        let addr = match &mut listener {
            Some(l) => {
                poll.registry().register(l, LISTENER, Interest::READABLE)?;
                Some(l.local_addr()?)
            }
            None => None,
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(options.events.max(1)),
            listener,
            addr,
            core: Core {
                conns: Slab::new(),
                next_gen: 0,
                timers: BinaryHeap::new(),
                dirty: Vec::new(),
                shrink: Vec::new(),
                shrink_at: Instant::now(),
                scratch: vec![0u8; SCRATCH_SIZE].into_boxed_slice(),
                config: Arc::new(options.config.clone()),
                options,
                registry,
                now: Instant::now(),
                epoch: Instant::now(),
                shutting_down: false,
                writing: false,
            },
            handle: Handle { stop: Arc::default(), woken: Arc::default(), graceful: Arc::default(), waker },
            accepting: Accepting::default(),
            _handler: PhantomData,
        })
    }

    /// The address listened on; an error of kind `NotConnected` for an
    /// [`EventLoop::unbound`] loop.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.addr.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "an unbound event loop listens on no address"))
    }

    /// A handle that stops or wakes [`EventLoop::run`] from another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Connections in the slab (handshaking, open and closing).
    pub fn connections(&self) -> usize {
        self.core.conns.len()
    }

    /// Runs until [`Handle::stop`]; connections still open stay in the
    /// loop (call `run` or [`EventLoop::run_once`] again to go on). After
    /// [`Handle::shutdown`], shuts down gracefully first
    /// ([`EventLoop::shutdown`]).
    pub fn run(&mut self, mut handler: H) -> io::Result<()> {
        while !self.handle.stop.swap(false, Ordering::AcqRel) {
            self.run_once(&mut handler, None)?;
        }
        let graceful = self.handle.graceful.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(timeout) = graceful {
            self.shutdown(&mut handler, timeout)?;
        }
        Ok(())
    }

    /// One iteration: waits for events (at most `timeout`, or until the
    /// next timer; `None`: no limit), handles them and writes everything
    /// queued. For embedding the loop, and for tests.
    pub fn run_once(&mut self, handler: &mut H, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let mut wait = timeout;
        let sweep = (!self.core.shrink.is_empty()).then_some(self.core.shrink_at);
        let next = self.core.timers.peek().map(|Reverse((d, _, _))| *d).into_iter().chain(self.accepting.retry).chain(sweep).min();
        if let Some(d) = next {
            let until = d.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let EventLoop { events, listener, core, accepting, handle, .. } = self;
        core.now = Instant::now();
        core.writing = false;
        core.fire_timers(handler);
        if accepting.retry.is_some_and(|t| t <= core.now) {
            accepting.retry = None;
            if let Some(listener) = listener {
                core.accept_all(listener, accepting);
            }
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => {
                    if let Some(listener) = listener {
                        core.accept_all(listener, accepting);
                    }
                }
                WAKER => {}
                Token(key) => {
                    let read_closed = ev.is_read_closed() || ev.is_error();
                    if ev.is_readable() || read_closed {
                        core.on_readable(handler, key, read_closed);
                    }
                    if ev.is_writable() {
                        core.mark(key);
                    }
                }
            }
        }
        if handle.woken.load(Ordering::Acquire) && handle.woken.swap(false, Ordering::AcqRel) {
            // Cleared before the call: a wake during `on_wake` gives another.
            handler.on_wake(&mut Ctx { core });
        }
        handler.before_writes(&mut Ctx { core });
        core.writing = true;
        core.settle_dirty(handler);
        core.sweep_idle();
        Ok(())
    }
}

impl Core {
    /// Accepts every pending connection. On an error such as EMFILE (out
    /// of file descriptors), logs once per episode and retries after
    /// `ACCEPT_BACKOFF`; open connections are served meanwhile.
    fn accept_all(&mut self, listener: &TcpListener, state: &mut Accepting) {
        loop {
            let res = listener.accept();
            match &res {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                    if !std::mem::replace(&mut state.failing, true) {
                        tracing::warn!(error = %e, "accept failed; serving the open connections, retrying every 10 ms");
                    }
                    state.retry = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                _ if std::mem::take(&mut state.failing) => tracing::info!("accepting connections again"),
                _ => {}
            }
            match res {
                Ok((stream, _)) => self.add(stream),
                _ => return, // WouldBlock: the backlog is empty
            }
        }
    }

    fn add(&mut self, stream: TcpStream) {
        let deadline = self.now.max(Instant::now()) + self.options.handshake_timeout;
        let _ = self.insert(stream, ConnState::Handshaking { buf: BytesMut::new() }, 0, Some(deadline));
    }

    /// Registers `stream` (readable and writable, edge-triggered) and puts
    /// it in the slab with `state` and `flags`, its timer armed at
    /// `deadline`. On an error the stream is dropped (closed).
    pub(super) fn insert(&mut self, mut stream: TcpStream, state: ConnState, flags: u8, deadline: Option<Instant>) -> io::Result<ConnId> {
        if self.conns.vacant_key() >= MAX_CONNS {
            return Err(io::Error::other("the event loop holds its maximum number of connections"));
        }
        if self.options.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let key = self.conns.vacant_key();
        self.registry.register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)?;
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let armed = deadline.map(|d| Stamp::new(self.epoch, d));
        self.conns.insert(Conn { stream, gen, flags, armed, state });
        if let Some(d) = deadline {
            self.timers.push(Reverse((d, key, gen)));
        }
        Ok(ConnId { key: key as u32, gen })
    }

    /// Adds a connection to the end-of-iteration list.
    pub(super) fn mark(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.has(PENDING) {
                c.flags |= PENDING;
                self.dirty.push(key);
            }
        }
    }

    fn fire_timers<H: EventHandler>(&mut self, handler: &mut H) {
        let now = self.now;
        while let Some(&Reverse((deadline, key, gen))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(key) else { continue };
            if c.gen != gen || c.armed != Some(Stamp::new(self.epoch, deadline)) {
                continue; // stale entry
            }
            c.armed = None;
            match &mut c.state {
                ConnState::Handshaking { .. } => {
                    let e = HandshakeError::new(HandshakeErrorKind::BadRequest, "request head timed out");
                    c.state = ConnState::Rejecting { out: Bytes::from(e.to_response()) };
                }
                ConnState::Rejecting { .. } => c.flags |= DEAD,
                ConnState::Open(p) => {
                    p.handle_timeout(now);
                    self.dispatch(handler, key);
                }
            }
            self.mark(key);
        }
    }

    /// The socket of `key` is readable (or reported the peer's end);
    /// `read_closed`: read until the socket is empty (see "Reading
    /// (edge-triggered)" in the module docs).
    fn on_readable<H: EventHandler>(&mut self, handler: &mut H, key: usize, read_closed: bool) {
        if self.conns.get(key).is_some_and(|c| c.has(PAUSED | READ_PAUSED)) {
            // Back-pressure (`settle` reads it again once its output
            // drains), or the application paused it (`Ctx::pause_reading`).
            return;
        }
        self.mark(key);
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            if c.has(DEAD | READ_PAUSED) {
                // READ_PAUSED: set by a handler during this read's messages.
                return;
            }
            let terminal = c.has(TERMINAL);
            if let ConnState::Open(p) = &mut c.state {
                let high = self.options.read_high_water;
                if !terminal && p.output().len() > high {
                    // Write now rather than at the end of the iteration; stop
                    // reading only if the socket does not take it.
                    match conn::write_output(&mut c.stream, p.output()) {
                        Err(e) => {
                            self.fail_io(handler, key, e);
                            return;
                        }
                        Ok(_) if p.output().len() > high => {
                            c.flags |= PAUSED;
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }
            let (res, step) = match &mut c.state {
                ConnState::Handshaking { buf } => {
                    let res = read_scratch(&mut c.stream, &mut self.scratch, |b| buf.extend_from_slice(b));
                    (res, Step::Handshake)
                }
                // The closing transport is drained in `settle`.
                ConnState::Rejecting { .. } => return,
                ConnState::Open(_) if terminal => return,
                ConnState::Open(p) if p.is_between_frames() => {
                    // `receive` reports the bytes; the end of stream below.
                    (read_scratch(&mut c.stream, &mut self.scratch, |b| p.receive(b)), Step::Frames)
                }
                ConnState::Open(p) => {
                    // All the room `read_buf` offers (the rest of the frame,
                    // up to 1 MiB): nothing to initialise, so no reason to
                    // ask for less than the socket may hold.
                    let res = uninit::read_into(&c.stream, p.read_buf());
                    if let Ok((n, _)) = res {
                        if n > 0 {
                            p.notify_received(n);
                        }
                    }
                    (res, Step::Frames)
                }
            };
            let (n, asked) = match res {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail_io(handler, key, e);
                    return;
                }
            };
            match step {
                Step::Handshake if n == 0 => {
                    // The client left before completing its request.
                    c.flags |= DEAD;
                    return;
                }
                Step::Handshake => self.handshake(handler, key),
                Step::Frames => {
                    if n == 0 {
                        if let ConnState::Open(p) = &mut c.state {
                            p.notify_received(0);
                        }
                    }
                    self.dispatch(handler, key);
                }
            }
            if n == 0 || (n < asked && !read_closed) {
                // See "Reading (edge-triggered)" in the module docs.
                return;
            }
        }
    }

    /// Tries to parse the request head read so far; accepts or rejects.
    fn handshake<H: EventHandler>(&mut self, handler: &mut H, key: usize) {
        let c = &mut self.conns[key];
        let ConnState::Handshaking { buf } = &mut c.state else { return };
        let id = ConnId { key: key as u32, gen: c.gen };
        let (request, consumed) = match parse_request(buf, &self.options.handshake) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                c.state = ConnState::Rejecting { out: Bytes::from(e.to_response()) };
                return;
            }
        };
        let buf = std::mem::take(buf);
        let decision: Result<Accept, HandshakeError> = handler.on_open(&mut Ctx { core: self }, id, &request);
        let options = &self.options;
        let c = &mut self.conns[key];
        let accept = match decision {
            Ok(a) => a,
            Err(e) => {
                c.state = ConnState::Rejecting { out: Bytes::from(e.to_response()) };
                return;
            }
        };
        // The one decision (RFC 6455 §4.2.2); `parse_request` applied the
        // rule already. permessage-deflate is not negotiated in the loop.
        let policy = ServerPolicy { protocols: options.protocols.clone(), ..ServerPolicy::default() };
        let response = policy.decide(&request).and_then(|mut decision| {
            if let Some(p) = &accept.protocol {
                decision.set_protocol(Some(p))?;
            }
            accept.headers.iter().try_for_each(|(n, v)| decision.add_header(n, v))?;
            Ok(decision.response_bytes())
        });
        match response {
            Ok(response) => {
                let config = accept.config.map_or_else(|| self.config.clone(), Arc::new);
                let mut proto = Protocol::new(Role::Server, config);
                // The 101 leaves with the first frames, in one write.
                proto.output().push_shared(Bytes::from(response));
                proto.receive(&buf[consumed..]);
                c.state = ConnState::Open(proto);
                // The handshake timer entry goes stale: `settle` arms the
                // protocol's own timers, if any.
                c.armed = None;
                self.dispatch(handler, key);
                self.write_now(key);
            }
            Err(e) => {
                c.state = ConnState::Rejecting { out: Bytes::from(e.to_response()) };
                // on_open said yes: it is owed its on_close.
                c.flags |= TERMINAL;
                handler.on_close(&mut Ctx { core: self }, id, CloseReason::Handshake(e));
            }
        }
    }

    /// Hands every complete message of `key` to the handler.
    fn dispatch<H: EventHandler>(&mut self, handler: &mut H, key: usize) {
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            let id = ConnId { key: key as u32, gen: c.gen };
            let paused = c.has(READ_PAUSED);
            let Some(p) = c.live_proto() else { return };
            if paused && p.transport_action() == TransportAction::KeepOpen {
                // `Ctx::pause_reading`: held until resumed (an ending
                // connection still reports its end).
                return;
            }
            let reason = match p.poll_message() {
                Ok(Some(Message::Close(frame))) => CloseReason::Closed(frame),
                Ok(Some(msg)) => {
                    handler.on_message(&mut Ctx { core: self }, id, msg);
                    continue;
                }
                Ok(None) if p.transport_action() != TransportAction::KeepOpen => CloseReason::Closed(None),
                Ok(None) => return,
                Err(e) => CloseReason::Failed(e),
            };
            c.flags |= TERMINAL;
            self.mark(key);
            handler.on_close(&mut Ctx { core: self }, id, reason);
            return;
        }
    }

    /// A socket error: the connection is over.
    fn fail_io<H: EventHandler>(&mut self, handler: &mut H, key: usize, e: io::Error) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let owed = matches!(c.state, ConnState::Open(_)) && !c.has(TERMINAL);
        c.flags |= DEAD | TERMINAL;
        let id = ConnId { key: key as u32, gen: c.gen };
        self.mark(key);
        if owed {
            handler.on_close(&mut Ctx { core: self }, id, CloseReason::Io(e));
        }
    }

    /// The end of an iteration: every dirty connection is written,
    /// re-armed, shrunk or closed.
    pub(super) fn settle_dirty<H: EventHandler>(&mut self, handler: &mut H) {
        // Handlers called from here (on_close) may dirty more connections.
        while let Some(key) = self.dirty.pop() {
            self.settle(handler, key);
        }
    }

    fn settle<H: EventHandler>(&mut self, handler: &mut H, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        c.flags &= !PENDING;
        if c.has(DEAD) {
            self.remove(key);
            return;
        }
        let flags = &mut c.flags;
        let p = match &mut c.state {
            ConnState::Handshaking { .. } => return,
            ConnState::Rejecting { out } => {
                match conn::write_bytes(&mut c.stream, out) {
                    Ok(false) => {
                        if c.armed.is_none() {
                            // Bounded like the handshake.
                            let d = self.now + self.options.handshake_timeout;
                            c.armed = Some(Stamp::new(self.epoch, d));
                            self.timers.push(Reverse((d, key, c.gen)));
                        }
                    }
                    Ok(true) => {
                        let _ = c.stream.shutdown(Shutdown::Write);
                        self.remove(key);
                    }
                    Err(_) => self.remove(key),
                }
                return;
            }
            ConnState::Open(p) => p,
        };
        let flushed = match conn::write_output(&mut c.stream, p.output()) {
            Ok(f) => f,
            Err(e) => {
                self.fail_io(handler, key, e);
                self.remove(key);
                return;
            }
        };
        let low = self.options.read_low_water.min(self.options.read_high_water);
        let resume = *flags & PAUSED != 0 && p.output().len() <= low;
        if resume {
            *flags &= !PAUSED;
        }
        // `Ctx::notify_drained`: one call, for a live connection.
        let drained = *flags & (DRAIN | TERMINAL) == DRAIN && p.output().len() <= low;
        if drained {
            *flags &= !DRAIN;
        }
        if *flags & TERMINAL != 0 {
            // Closing the transport as the protocol says (RFC 6455 §7.1.1).
            loop {
                let action = p.transport_action();
                let done = match action {
                    // The peer neither read our close nor closed: give up.
                    TransportAction::CloseNow => true,
                    TransportAction::Close => flushed,
                    _ => false,
                };
                if done {
                    // Closing the socket sends the FIN after the output
                    // written (a `shutdown` first would only cost a
                    // system call per connection).
                    self.remove(key);
                    return;
                }
                if flushed && action.shuts_down() && *flags & SHUTDOWN == 0 {
                    let _ = c.stream.shutdown(Shutdown::Write);
                    *flags |= SHUTDOWN;
                }
                if action.reads_until_eof() && conn::drain(&mut c.stream, &mut self.scratch) {
                    p.notify_received(0);
                    continue;
                }
                break;
            }
        }
        if p.needs_clock() {
            if let Some(d) = p.poll_timeout(self.now) {
                let stamp = Stamp::new(self.epoch, d);
                if c.armed.map_or(true, |a| stamp.before(a)) {
                    c.armed = Some(stamp);
                    self.timers.push(Reverse((d, key, c.gen)));
                }
            }
        }
        if flushed && p.is_between_frames() && *flags & SHRINK == 0 {
            // Idle for now: release its buffers at the next sweep unless
            // it is busy again by then. Freeing them after every write
            // would cost a malloc and free per message, and glibc trims
            // (madvise) the heap when a burst's buffers are all freed.
            *flags |= SHRINK;
            self.shrink.push((key, c.gen));
        }
        let id = ConnId { key: key as u32, gen: c.gen };
        if resume {
            // What arrived while paused raised no edge that was acted on:
            // deliver what the protocol holds (an adopted connection's
            // leftover bytes, messages held by `Ctx::pause_reading`), then
            // read until the socket is empty.
            self.mark(key);
            self.dispatch(handler, key);
            self.on_readable(handler, key, true);
        }
        if drained && self.live_conn(id).is_some() {
            handler.on_drained(&mut Ctx { core: self }, id);
        }
    }

    /// Releases the buffers of connections that stayed idle since they
    /// were listed, once per `SHRINK_DELAY`.
    fn sweep_idle(&mut self) {
        if self.shrink.is_empty() || self.now < self.shrink_at {
            return;
        }
        for (key, gen) in std::mem::take(&mut self.shrink) {
            let Some(c) = self.conns.get_mut(key) else { continue };
            if c.gen != gen {
                continue;
            }
            c.flags &= !SHRINK;
            if let ConnState::Open(p) = &mut c.state {
                if p.output().is_empty() && p.is_between_frames() {
                    // All of them, the small encoding buffer too: 32 bytes
                    // of malloc per idle connection that has sent a
                    // message; a busy one pays one malloc a second for it.
                    p.release_buffers();
                }
            }
        }
        self.shrink_at = self.now + SHRINK_DELAY;
    }

    /// Writes the 101 response (and what on_open's messages queued) right
    /// away, so its buffers are freed before the next connection's
    /// handshake allocates: with hundreds of handshakes per iteration,
    /// holding them to the end would raise the heap's high-water mark,
    /// which idle connections then pay for.
    fn write_now(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if c.flags & (TERMINAL | DEAD) != 0 {
            return;
        }
        if let ConnState::Open(p) = &mut c.state {
            if let Ok(true) = conn::write_output(&mut c.stream, p.output()) {
                if p.is_between_frames() {
                    p.shrink_buffers();
                }
            }
        }
    }

    /// Frees the slot and closes the socket. Closing the descriptor (never
    /// duplicated) takes it out of the epoll set, so no `deregister`
    /// (`epoll_ctl`) is made for it: one system call less per connection.
    /// Its events already taken by this iteration's `epoll_wait` may still
    /// reach a connection that reuses the slot; they are spurious readiness,
    /// which edge-triggered reading treats as a read that finds nothing.
    pub(super) fn remove(&mut self, key: usize) {
        self.conns.try_remove(key);
    }

    /// The connection `id` names, if it is still there and not over for
    /// the application.
    pub(super) fn live_conn(&mut self, id: ConnId) -> Option<&mut Conn> {
        let c = self.conns.get_mut(id.key as usize)?;
        (c.gen == id.gen && c.flags & (TERMINAL | DEAD) == 0).then_some(c)
    }

    pub(super) fn live(&mut self, id: ConnId) -> Option<(&mut Protocol, &mut u8)> {
        let c = self.live_conn(id)?;
        match &mut c.state {
            ConnState::Open(p) => Some((p, &mut c.flags)),
            _ => None,
        }
    }
}

/// A listener with `SO_REUSEPORT`, as `TcpListener::bind` makes it
/// otherwise (`SO_REUSEADDR`, non-blocking, a backlog of 1024).
#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
fn bind_reuse_port(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin")))))]
fn bind_reuse_port(_: SocketAddr) -> io::Result<TcpListener> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "SO_REUSEPORT is not available on this system"))
}

enum Step {
    Handshake,
    Frames,
}

/// Reads into the scratch buffer and hands the bytes to `f`; returns
/// `(read, asked)`.
fn read_scratch(stream: &mut TcpStream, scratch: &mut [u8], f: impl FnOnce(&[u8])) -> io::Result<(usize, usize)> {
    let n = stream.read(scratch)?;
    f(&scratch[..n]);
    Ok((n, scratch.len()))
}
