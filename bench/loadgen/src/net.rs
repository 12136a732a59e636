//! One thread, one epoll (mio), thousands of client connections.
//!
//! A connection goes Queued -> Connecting -> Handshake -> Open and is freed
//! when the server closes TCP. Reads go into one shared scratch buffer and
//! frames are handed to the scenario straight from it; only a partial frame
//! at the end of a read is copied into the connection's own buffer. Writes
//! are queued per connection by [`Out`] and flushed once per poll round, so
//! replies to a batch of messages leave in one `write`.

use crate::codec::{self, Assembler, Event, Header};
use crate::util::Rng;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Why a run failed. `kind` is one word for the RESULT line.
#[derive(Debug)]
pub struct Fail {
    pub kind: &'static str,
    pub detail: String,
}

pub fn fail<T>(kind: &'static str, detail: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        kind,
        detail: detail.into(),
    })
}

pub type Res = Result<(), Fail>;

/// What a scenario does with connection events. Every callback may queue
/// frames on any connection through `out`.
pub trait Handler {
    /// The handshake completed.
    fn on_open(&mut self, out: &mut Out, id: usize, now: Instant) -> Res;
    /// A complete text or binary message.
    fn on_message(
        &mut self,
        out: &mut Out,
        id: usize,
        opcode: u8,
        data: &[u8],
        now: Instant,
    ) -> Res;
    /// The server sent a close frame.
    fn on_close(&mut self, _out: &mut Out, id: usize, code: Option<u16>, _now: Instant) -> Res {
        fail(
            "closed",
            format!("server sent a close frame (code {code:?}) on connection {id}"),
        )
    }
    /// The server closed or reset TCP; the connection is freed after this.
    fn on_eof(&mut self, id: usize, reset: bool, _now: Instant) -> Res {
        fail(
            "closed",
            format!(
                "server {} connection {id}",
                if reset { "reset" } else { "closed" }
            ),
        )
    }
    /// Called after every poll round (at least every 5 ms). `Ok(true)` ends the run.
    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail>;
    /// A failure on connection `id` (connect, handshake, protocol, or an
    /// error returned by one of the callbacks above for it): `Some(reset)`
    /// to drop just that connection (with RST if `reset`, else FIN) and go
    /// on (the scenario counts it), `None` (the default) to end the run
    /// with it.
    fn on_conn_error(&mut self, _id: usize, _fail: &Fail, _now: Instant) -> Option<bool> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St {
    Free,
    Queued,
    Connecting,
    Handshake,
    Open,
}

struct Conn {
    sock: Option<TcpStream>,
    st: St,
    path: usize,
    /// Unprocessed bytes: a partial frame (or the handshake answer).
    buf: Vec<u8>,
    /// Total bytes the frame at the start of `buf` needs, when known.
    need: usize,
    /// The last frame was large: read straight into `buf` (no copy out of
    /// the scratch buffer).
    big: bool,
    asm: Assembler,
    close_received: bool,
}

/// The write side of every connection, plus the mask-key PRNG.
pub struct Out {
    w: Vec<WBuf>,
    dirty: Vec<usize>,
    pub rng: Rng,
    pub stats: Stats,
}

/// System calls and messages over the whole run, to see how well reads and
/// writes are batched.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub msgs_in: u64,
}

#[derive(Default)]
struct WBuf {
    buf: Vec<u8>,
    pos: usize,
    blocked: bool,
    dirty: bool,
    close_sent: bool,
    live: bool,
}

impl Out {
    fn touch(&mut self, id: usize) -> Option<&mut WBuf> {
        let w = &mut self.w[id];
        if !w.live {
            return None;
        }
        if !w.dirty {
            w.dirty = true;
            self.dirty.push(id);
        }
        Some(w)
    }

    /// Queues a masked message frame (text or binary) on connection `id`.
    pub fn send(&mut self, id: usize, opcode: u8, payload: &[u8]) {
        let key = self.rng.mask_key();
        if let Some(w) = self.touch(id) {
            codec::encode(&mut w.buf, opcode, payload, key);
        }
    }

    /// Queues a close frame; the server answers with its own and closes TCP.
    pub fn close(&mut self, id: usize, code: u16) {
        let key = self.rng.mask_key();
        if let Some(w) = self.touch(id) {
            if !w.close_sent {
                w.close_sent = true;
                codec::encode_close(&mut w.buf, code, key);
            }
        }
    }

    pub fn close_sent(&self, id: usize) -> bool {
        self.w[id].close_sent
    }

    fn raw(&mut self, id: usize, bytes: &[u8]) {
        if let Some(w) = self.touch(id) {
            w.buf.extend_from_slice(bytes);
        }
    }
}

pub struct Net {
    poll: Poll,
    addr: SocketAddr,
    /// One handshake request per (address, path): `Host` names the address.
    requests: Vec<(SocketAddr, String, Vec<u8>)>,
    conns: Vec<Conn>,
    pub out: Out,
    free: Vec<usize>,
    queue: VecDeque<usize>,
    /// Connections in Connecting or Handshake.
    in_progress: usize,
    /// Most connections allowed in Connecting/Handshake at once, so that a
    /// burst of thousands does not overflow the server's listen backlog.
    pub max_in_progress: usize,
    open: usize,
    scratch: Vec<u8>,
}

const SCRATCH: usize = 256 * 1024;
/// Frames at least this large are read straight into the connection's buffer.
const BIG: usize = 64 * 1024;

impl Net {
    pub fn new(addr: SocketAddr, seed: u64) -> io::Result<Net> {
        Ok(Net {
            poll: Poll::new()?,
            addr,
            requests: Vec::new(),
            conns: Vec::new(),
            out: Out {
                w: Vec::new(),
                dirty: Vec::new(),
                rng: Rng::new(seed),
                stats: Stats::default(),
            },
            free: Vec::new(),
            queue: VecDeque::new(),
            in_progress: 0,
            max_in_progress: 256,
            open: 0,
            scratch: vec![0; SCRATCH],
        })
    }

    /// Starts (or queues) a connection to `path` on the `--addr` server;
    /// returns its id. Ids of freed connections are reused.
    pub fn connect(&mut self, path: &str) -> usize {
        self.connect_to(self.addr, path)
    }

    /// Starts (or queues) a connection to `path` on `addr`.
    pub fn connect_to(&mut self, addr: SocketAddr, path: &str) -> usize {
        let path_idx = match self
            .requests
            .iter()
            .position(|(a, p, _)| *a == addr && p == path)
        {
            Some(i) => i,
            None => {
                self.requests.push((
                    addr,
                    path.to_string(),
                    codec::request(&addr.to_string(), path),
                ));
                self.requests.len() - 1
            }
        };
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.conns.push(Conn {
                    sock: None,
                    st: St::Free,
                    path: 0,
                    buf: Vec::new(),
                    need: 0,
                    big: false,
                    asm: Assembler::default(),
                    close_received: false,
                });
                self.out.w.push(WBuf::default());
                self.conns.len() - 1
            }
        };
        let c = &mut self.conns[id];
        c.st = St::Queued;
        c.path = path_idx;
        c.buf = Vec::new();
        c.need = 0;
        c.big = false;
        c.asm = Assembler::default();
        c.close_received = false;
        self.out.w[id] = WBuf::default();
        self.queue.push_back(id);
        id
    }

    pub fn state(&self, id: usize) -> St {
        self.conns[id].st
    }

    /// Connections with a completed handshake.
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Connections not yet freed (queued, connecting, handshaking or open).
    pub fn live_count(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    fn start_queued<H: Handler>(&mut self, h: &mut H) -> Res {
        while self.in_progress < self.max_in_progress {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let addr = self.requests[self.conns[id].path].0;
            let mut sock = match TcpStream::connect(addr) {
                Ok(s) => s,
                Err(e) => {
                    let f = Fail {
                        kind: "connect",
                        detail: format!("connect to {addr}: {e}"),
                    };
                    // Still Queued (already off the queue): free the id.
                    self.conns[id].st = St::Free;
                    self.out.w[id] = WBuf::default();
                    self.free.push(id);
                    if h.on_conn_error(id, &f, Instant::now()).is_some() {
                        continue;
                    }
                    return Err(f);
                }
            };
            self.poll
                .registry()
                .register(
                    &mut sock,
                    Token(id),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| Fail {
                    kind: "io",
                    detail: format!("register: {e}"),
                })?;
            self.conns[id].sock = Some(sock);
            self.conns[id].st = St::Connecting;
            self.in_progress += 1;
        }
        Ok(())
    }

    /// Drops connection `id`'s socket (closing TCP) and frees the id.
    pub fn drop_conn(&mut self, id: usize) {
        let c = &mut self.conns[id];
        match c.st {
            St::Free => return,
            St::Queued => self.queue.retain(|&q| q != id),
            St::Connecting | St::Handshake => self.in_progress -= 1,
            St::Open => self.open -= 1,
        }
        // Closing the socket removes it from the epoll set: no
        // EPOLL_CTL_DEL needed (the fd is never duplicated).
        drop(c.sock.take());
        c.st = St::Free;
        c.buf = Vec::new();
        let w = &mut self.out.w[id];
        *w = WBuf::default();
        self.free.push(id);
    }

    /// One past the largest id ever handed out.
    pub fn ids(&self) -> usize {
        self.conns.len()
    }

    /// Ids of open connections.
    pub fn open_ids(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&i| self.conns[i].st == St::Open)
            .collect()
    }

    /// Runs the event loop until `h.tick` returns true or an error.
    pub fn run<H: Handler>(&mut self, h: &mut H) -> Res {
        let mut events = Events::with_capacity(1024);
        loop {
            // Replies queued while handling the last round's events leave
            // here, together with whatever `tick` queues.
            let now = Instant::now();
            if h.tick(self, now)? {
                self.flush_dirty()?;
                return Ok(());
            }
            self.start_queued(h)?;
            self.flush_dirty()?;
            match self.poll.poll(&mut events, Some(Duration::from_millis(5))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return fail("io", format!("poll: {e}")),
            }
            let now = Instant::now();
            for ev in events.iter() {
                let id = ev.token().0;
                if id >= self.conns.len() || self.conns[id].sock.is_none() {
                    continue;
                }
                if let Err(f) = self.event(h, ev, id, now) {
                    match h.on_conn_error(id, &f, now) {
                        None => return Err(f),
                        Some(reset) => self.abort_conn(id, reset),
                    }
                }
            }
        }
    }

    fn event<H: Handler>(
        &mut self,
        h: &mut H,
        ev: &mio::event::Event,
        id: usize,
        now: Instant,
    ) -> Res {
        if self.conns[id].st == St::Connecting {
            if ev.is_writable() || ev.is_error() || ev.is_read_closed() || ev.is_write_closed() {
                self.finish_connect(id, ev.is_writable())?;
            }
            return Ok(());
        }
        if ev.is_writable() {
            self.out.w[id].blocked = false;
            self.flush(id)?;
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read(h, id, ev.is_read_closed() || ev.is_error(), now)?;
        }
        Ok(())
    }

    /// Drops connection `id` without a closing handshake: with `reset`,
    /// SO_LINGER 0 makes the close send RST instead of FIN.
    pub fn abort_conn(&mut self, id: usize, reset: bool) {
        if reset {
            if let Some(sock) = self.conns[id].sock.as_ref() {
                let lin = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                unsafe {
                    libc::setsockopt(
                        sock.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &lin as *const libc::linger as *const libc::c_void,
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
            }
        }
        self.drop_conn(id);
    }

    /// A connecting socket got an event: with epoll, EPOLLOUT means
    /// connected and anything else comes with an error in SO_ERROR.
    fn finish_connect(&mut self, id: usize, writable: bool) -> Res {
        let sock = self.conns[id].sock.as_ref().unwrap();
        if let Ok(Some(e)) | Err(e) = sock.take_error() {
            let addr = self.requests[self.conns[id].path].0;
            return fail("connect", format!("connect to {addr}: {e}"));
        }
        if !writable {
            return Ok(());
        }
        let _ = sock.set_nodelay(true);
        self.conns[id].st = St::Handshake;
        self.out.w[id].live = true;
        let path = self.conns[id].path;
        let req = std::mem::take(&mut self.requests[path].2);
        self.out.raw(id, &req);
        self.requests[path].2 = req;
        self.flush(id)
    }

    fn flush_dirty(&mut self) -> Res {
        let mut dirty = std::mem::take(&mut self.out.dirty);
        for &id in &dirty {
            self.out.w[id].dirty = false;
            if !self.out.w[id].blocked {
                self.flush(id)?;
            }
        }
        dirty.clear();
        if self.out.dirty.is_empty() {
            self.out.dirty = dirty;
        }
        Ok(())
    }

    fn flush(&mut self, id: usize) -> Res {
        let Some(sock) = self.conns[id].sock.as_ref() else {
            return Ok(());
        };
        let w = &mut self.out.w[id];
        while w.pos < w.buf.len() {
            match (&*sock).write(&w.buf[w.pos..]) {
                Ok(n) => {
                    w.pos += n;
                    self.out.stats.writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    w.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The server closed or reset the connection: the read
                    // side reports it (EOF or reset) to the scenario.
                    w.buf.clear();
                    w.pos = 0;
                    w.live = false;
                    let _ = e;
                    return Ok(());
                }
            }
        }
        if w.pos == w.buf.len() {
            w.buf.clear();
            w.pos = 0;
            if w.buf.capacity() > 4 << 20 {
                w.buf = Vec::new();
            }
        }
        Ok(())
    }

    /// Reads until the socket is drained. `closed`: the event reported the
    /// peer's FIN (or an error), so read on to the end of stream even after
    /// a short read.
    fn read<H: Handler>(&mut self, h: &mut H, id: usize, closed: bool, now: Instant) -> Res {
        loop {
            let c = &mut self.conns[id];
            let Some(sock) = c.sock.as_ref() else {
                return Ok(());
            };
            let fd = sock.as_raw_fd();
            let use_own = c.st == St::Handshake || !c.buf.is_empty() || c.big;
            let (ptr, cap) = if use_own {
                let want = if c.need > c.buf.len() {
                    (c.need - c.buf.len()).max(16 * 1024)
                } else {
                    16 * 1024
                };
                c.buf.reserve(want);
                let spare = c.buf.spare_capacity_mut();
                (spare.as_mut_ptr() as *mut libc::c_void, spare.len())
            } else {
                (
                    self.scratch.as_mut_ptr() as *mut libc::c_void,
                    self.scratch.len(),
                )
            };
            let n = unsafe { libc::read(fd, ptr, cap) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => return self.eof(h, id, true, now),
                }
            }
            let n = n as usize;
            self.out.stats.reads += 1;
            if n == 0 {
                return self.eof(h, id, false, now);
            }
            if use_own {
                // SAFETY: read() initialised n bytes of the spare capacity.
                unsafe { c.buf.set_len(c.buf.len() + n) };
                self.process_own(h, id, now)?;
            } else {
                let Net {
                    conns,
                    out,
                    scratch,
                    ..
                } = self;
                let c = &mut conns[id];
                let (used, need) = frames(
                    &scratch[..n],
                    id,
                    &mut c.asm,
                    &mut c.close_received,
                    h,
                    out,
                    now,
                )?;
                if used < n {
                    c.buf.extend_from_slice(&scratch[used..n]);
                    c.need = need;
                    c.big = need >= BIG;
                }
            }
            // A short read means the socket buffer was drained (epoll is
            // edge-triggered; a new edge comes with new data), unless the FIN
            // came in the same edge: then read on to see the end of stream.
            if n < cap && !closed {
                return Ok(());
            }
        }
    }

    fn process_own<H: Handler>(&mut self, h: &mut H, id: usize, now: Instant) -> Res {
        let Net {
            conns,
            out,
            open,
            in_progress,
            ..
        } = self;
        let c = &mut conns[id];
        let mut start = 0;
        if c.st == St::Handshake {
            match codec::check_response(&c.buf) {
                Ok(None) => return Ok(()),
                Ok(Some(n)) => {
                    start = n;
                    c.st = St::Open;
                    *open += 1;
                    *in_progress -= 1;
                    h.on_open(out, id, now)?;
                }
                Err(e) => return fail("handshake", e),
            }
        }
        let (used, need) = frames(
            &c.buf[start..],
            id,
            &mut c.asm,
            &mut c.close_received,
            h,
            out,
            now,
        )?;
        let used = start + used;
        if used == c.buf.len() {
            // Keep the allocation for the next large frame (a fresh 1 MiB
            // buffer per message costs page faults), except the handshake's.
            if start > 0 || c.buf.capacity() > 64 << 20 {
                c.buf = Vec::new();
            } else {
                c.buf.clear();
            }
            c.need = 0;
        } else {
            c.buf.drain(..used);
            c.need = need;
            c.big = need >= BIG;
        }
        Ok(())
    }

    fn eof<H: Handler>(&mut self, h: &mut H, id: usize, reset: bool, now: Instant) -> Res {
        let st = self.conns[id].st;
        if st == St::Handshake {
            let got = String::from_utf8_lossy(&self.conns[id].buf)
                .chars()
                .take(80)
                .collect::<String>();
            return fail(
                "handshake",
                format!("server closed during the handshake (got {got:?})"),
            );
        }
        let mid_frame = self.conns[id].asm.in_message() || !self.conns[id].buf.is_empty();
        if mid_frame && !self.out.w[id].close_sent {
            return fail(
                "protocol",
                format!("connection {id} closed in the middle of a frame"),
            );
        }
        let r = h.on_eof(id, reset, now);
        self.drop_conn(id);
        r
    }
}

/// Interprets every complete frame in `buf`; returns (bytes used, bytes the
/// next, incomplete frame needs in total when its header is complete).
fn frames<H: Handler>(
    buf: &[u8],
    id: usize,
    asm: &mut Assembler,
    close_received: &mut bool,
    h: &mut H,
    out: &mut Out,
    now: Instant,
) -> Result<(usize, usize), Fail> {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let hdr: Header = match codec::parse_header(rest) {
            Ok(Some(hdr)) => hdr,
            Ok(None) => return Ok((pos, 0)),
            Err(e) => return fail("protocol", format!("connection {id}: {e}")),
        };
        let total = hdr.total();
        if rest.len() < total {
            return Ok((pos, total));
        }
        if *close_received {
            return fail(
                "protocol",
                format!("connection {id}: frame after the close frame"),
            );
        }
        let payload = &rest[hdr.len..total];
        match asm.frame(&hdr, payload) {
            Ok(Event::Message(op, data)) => {
                out.stats.msgs_in += 1;
                h.on_message(out, id, op, data, now)?
            }
            Ok(Event::Fragment) | Ok(Event::Pong) => {}
            Ok(Event::Ping(p)) => {
                let p = p.to_vec();
                let key = out.rng.mask_key();
                if let Some(w) = out.touch(id) {
                    if !w.close_sent {
                        codec::encode(&mut w.buf, codec::OP_PONG, &p, key);
                    }
                }
            }
            Ok(Event::Close(code)) => {
                *close_received = true;
                h.on_close(out, id, code, now)?;
            }
            Err(e) => return fail("protocol", format!("connection {id}: {e}")),
        }
        pos += total;
    }
}
