//! The five scenarios, each a [`Handler`] driven by [`Net::run`], and the
//! correctness checkers they use.

use crate::codec::{OP_BINARY, OP_TEXT};
use crate::net::{fail, Fail, Handler, Net, Out, Res, St};
use crate::report::{Measured, Meter, Report};
use crate::util::{Histogram, Rng, ServerProc};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct Cfg {
    pub scenario: String,
    pub addr: std::net::SocketAddr,
    pub conns: usize,
    pub inflight: usize,
    pub size: usize,
    pub subs: usize,
    pub window: usize,
    pub parallel: usize,
    pub duration: f64,
    pub warmup: f64,
    pub idle_wait: f64,
    pub path: Option<String>,
    pub server_pid: Option<u32>,
    pub server_name: String,
    pub seed: u64,
    /// broadcast: subscribers go round-robin to these servers (nodes of
    /// one cluster) instead of `addr`, which keeps the publisher.
    pub sub_addrs: Vec<std::net::SocketAddr>,
    /// churn: new connections per second.
    pub rate: f64,
    /// churn: echoes per connection.
    pub msgs: usize,
    /// churn: every Nth connection is dropped without a closing handshake
    /// (0: none).
    pub abort_every: u64,
}

fn server(cfg: &Cfg) -> Option<(ServerProc, Vec<u32>)> {
    cfg.server_pid.map(|pid| {
        let p = ServerProc { pid };
        let tree = p.tree();
        (p, tree)
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

// ---------------------------------------------------------------- checkers

/// Payload source: a pool of PRNG bytes; a message is a slice at a random
/// offset, so only the offset has to be remembered to check the echo.
pub struct Pool {
    pub bytes: Vec<u8>,
    pub size: usize,
}

impl Pool {
    /// `text`: printable ASCII, so that every slice is valid UTF-8.
    pub fn new(rng: &mut Rng, size: usize, text: bool) -> Pool {
        // Small payloads come from a small pool that stays in cache (a random
        // 16-byte slice of a 4 MiB pool costs two cache misses per message);
        // the random offset still makes nearly every message distinct.
        let mut bytes = vec![0u8; (64 << 10).max(size * 4) + size];
        rng.fill(&mut bytes);
        if text {
            for b in &mut bytes {
                *b = b' ' + (*b % 95);
            }
        }
        Pool { bytes, size }
    }

    pub fn pick(&self, rng: &mut Rng) -> u32 {
        rng.below((self.bytes.len() - self.size + 1) as u64) as u32
    }

    pub fn get(&self, off: u32) -> &[u8] {
        &self.bytes[off as usize..off as usize + self.size]
    }
}

/// An echo must come back with the same type and the same bytes.
pub fn check_echo(sent_op: u8, sent: &[u8], got_op: u8, got: &[u8]) -> Res {
    if got_op != sent_op {
        return fail(
            "mismatch",
            format!("sent opcode {sent_op}, echo has opcode {got_op}"),
        );
    }
    if got.len() != sent.len() {
        return fail(
            "mismatch",
            format!("sent {} bytes, echo has {}", sent.len(), got.len()),
        );
    }
    if got != sent {
        let at = got.iter().zip(sent).position(|(a, b)| a != b).unwrap();
        return fail(
            "mismatch",
            format!(
                "echo differs at byte {at} of {}: got 0x{:02x}, sent 0x{:02x}",
                sent.len(),
                got[at],
                sent[at]
            ),
        );
    }
    Ok(())
}

/// Broadcast bookkeeping: each message carries a sequence number
/// (`D` + 16 hex digits + filler); every subscriber must get every message
/// exactly once, in order. The publisher may run `window` messages ahead
/// of full delivery.
pub struct BroadcastCheck {
    window: usize,
    subs: usize,
    size: usize,
    ring: Vec<Vec<u8>>,
    /// Subscribers that got the message in each ring slot.
    got: Vec<u32>,
    /// Next sequence number each subscriber expects.
    next: Vec<u64>,
    /// Messages published.
    pub sent: u64,
    /// Messages delivered to every subscriber.
    pub full: u64,
}

impl BroadcastCheck {
    pub fn new(subs: usize, window: usize, size: usize) -> BroadcastCheck {
        assert!(size >= 17 && window >= 1);
        BroadcastCheck {
            window,
            subs,
            size,
            ring: vec![vec![0; size]; window],
            got: vec![0; window],
            next: vec![0; subs],
            sent: 0,
            full: 0,
        }
    }

    pub fn can_send(&self) -> bool {
        self.sent < self.full + self.window as u64
    }

    /// Builds message number `self.sent` and counts it as published.
    pub fn publish(&mut self, rng: &mut Rng) -> (u64, &[u8]) {
        debug_assert!(self.can_send());
        let seq = self.sent;
        let slot = (seq % self.window as u64) as usize;
        let m = &mut self.ring[slot];
        m[0] = b'D';
        m[1..17].copy_from_slice(format!("{seq:016x}").as_bytes());
        let mut r = rng.next_u64();
        for (i, b) in m[17..].iter_mut().enumerate() {
            if i % 12 == 0 {
                r = rng.next_u64();
            }
            *b = b'a' + ((r >> ((i % 12) * 5)) & 31) as u8 % 26;
        }
        self.got[slot] = 0;
        self.sent += 1;
        (seq, &self.ring[slot])
    }

    /// Subscriber `sub` received `data`; returns its sequence number.
    pub fn deliver(&mut self, sub: usize, data: &[u8]) -> Result<u64, Fail> {
        let exp = self.next[sub];
        let slot = (exp % self.window as u64) as usize;
        if exp >= self.sent || data != self.ring[slot].as_slice() {
            let seq = (data.len() == self.size && data[0] == b'D')
                .then(|| {
                    std::str::from_utf8(&data[1..17])
                        .ok()
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                })
                .flatten();
            return match seq {
                Some(s) if s < exp => fail(
                    "duplicate",
                    format!("subscriber {sub} got message {s} again (expected {exp})"),
                ),
                Some(s) if s > exp => fail(
                    "missing",
                    format!("subscriber {sub} got message {s} but not {exp}"),
                ),
                Some(s) if exp >= self.sent => fail(
                    "duplicate",
                    format!("subscriber {sub} got message {s}, never sent"),
                ),
                _ => fail(
                    "mismatch",
                    format!(
                        "subscriber {sub}: message {exp} corrupted ({} bytes)",
                        data.len()
                    ),
                ),
            };
        }
        self.next[sub] = exp + 1;
        self.got[slot] += 1;
        while self.full < self.sent {
            let s = (self.full % self.window as u64) as usize;
            if self.got[s] as usize != self.subs {
                break;
            }
            self.full += 1;
        }
        Ok(exp)
    }

    /// How many (subscriber, message) deliveries are still due.
    pub fn missing(&self) -> u64 {
        self.next.iter().map(|&n| self.sent - n).sum()
    }
}

// ---------------------------------------------------------------- phases

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Warmup(Instant),
    Measure(Instant),
    Drain(Instant),
    Linger(Instant),
}

/// The shared timing of the throughput scenarios.
struct Clock {
    phase: Phase,
    setup_deadline: Option<Instant>,
    warmup: Duration,
    duration: Duration,
    drain: Duration,
    meter: Option<Meter>,
    measured: Option<Measured>,
    srv: Option<(ServerProc, Vec<u32>)>,
}

impl Clock {
    fn new(cfg: &Cfg, drain: Duration) -> Clock {
        Clock {
            phase: Phase::Setup,
            setup_deadline: None,
            warmup: secs(cfg.warmup),
            duration: secs(cfg.duration),
            drain,
            meter: None,
            measured: None,
            srv: server(cfg),
        }
    }

    fn sending(&self) -> bool {
        matches!(self.phase, Phase::Warmup(_) | Phase::Measure(_))
    }

    fn measuring(&self) -> bool {
        matches!(self.phase, Phase::Measure(_))
    }

    fn setup_timeout(&mut self, now: Instant, limit: Duration) -> bool {
        now > *self.setup_deadline.get_or_insert(now + limit)
    }

    /// Warmup -> Measure -> Drain by the clock. Returns true on entering
    /// Measure (the caller resets its counters).
    fn advance(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Warmup(end) if now >= end => {
                self.meter = Some(Meter::start(self.srv.as_ref()));
                self.phase = Phase::Measure(now + self.duration);
                true
            }
            Phase::Measure(end) if now >= end => {
                self.measured = Some(self.meter.as_ref().unwrap().stop(self.srv.as_ref()));
                self.phase = Phase::Drain(now + self.drain);
                false
            }
            _ => false,
        }
    }

    fn start(&mut self, now: Instant) {
        self.phase = Phase::Warmup(now + self.warmup);
    }
}

// ---------------------------------------------------------------- echo

/// echo-small / echo-large: `conns` connections, `inflight` messages in
/// flight on each; every echo checked byte for byte.
pub struct Echo {
    conns: usize,
    inflight: usize,
    opcode: u8,
    path: String,
    pool: Pool,
    rng: Rng,
    q: Vec<VecDeque<(u32, Instant)>>,
    outstanding: usize,
    clock: Clock,
    count: u64,
    bytes: u64,
    hist: Histogram,
}

impl Echo {
    pub fn new(cfg: &Cfg, opcode: u8) -> Echo {
        let mut rng = Rng::new(cfg.seed ^ 0x5eed);
        let pool = Pool::new(&mut rng, cfg.size, opcode == OP_TEXT);
        // Large messages take longer to drain.
        let drain = Duration::from_secs(10)
            + Duration::from_millis((cfg.size * cfg.inflight * cfg.conns / 100_000) as u64);
        Echo {
            conns: cfg.conns,
            inflight: cfg.inflight,
            opcode,
            path: cfg.path.clone().unwrap_or_else(|| "/echo".into()),
            pool,
            rng,
            q: Vec::new(),
            outstanding: 0,
            clock: Clock::new(cfg, drain),
            count: 0,
            bytes: 0,
            hist: Histogram::default(),
        }
    }

    fn send_one(&mut self, out: &mut Out, id: usize, now: Instant) {
        let off = self.pool.pick(&mut self.rng);
        out.send(id, self.opcode, self.pool.get(off));
        self.q[id].push_back((off, now));
        self.outstanding += 1;
    }

    pub fn report(&self, r: &mut Report) {
        if let Some(m) = &self.clock.measured {
            let per_sec = |n: u64| n as f64 / m.secs;
            if self.opcode == OP_BINARY {
                m.fill(r, self.count, per_sec(self.bytes) / 1e6);
                r.unit = "MB/s";
                r.extra
                    .push(("msgs_per_s", format!("{:.1}", per_sec(self.count))));
            } else {
                m.fill(r, self.count, per_sec(self.count));
                r.unit = "rt/s";
            }
            if self.hist.count() > 0 {
                r.p50_ns = Some(self.hist.quantile(0.50));
                r.p99_ns = Some(self.hist.quantile(0.99));
            }
        }
    }
}

impl Handler for Echo {
    fn on_open(&mut self, _out: &mut Out, id: usize, _now: Instant) -> Res {
        if self.q.len() <= id {
            self.q.resize_with(id + 1, VecDeque::new);
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        out: &mut Out,
        id: usize,
        opcode: u8,
        data: &[u8],
        now: Instant,
    ) -> Res {
        let Some((off, t)) = self.q[id].pop_front() else {
            return fail(
                "duplicate",
                format!("connection {id}: message received with none in flight"),
            );
        };
        self.outstanding -= 1;
        check_echo(self.opcode, self.pool.get(off), opcode, data)?;
        if self.clock.measuring() {
            self.count += 1;
            self.bytes += data.len() as u64;
            self.hist.record(now - t);
        }
        if self.clock.sending() {
            self.send_one(out, id, now);
        }
        Ok(())
    }

    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail> {
        match self.clock.phase {
            Phase::Setup => {
                if self.clock.setup_deadline.is_none() {
                    for _ in 0..self.conns {
                        net.connect(&self.path);
                    }
                }
                if self.clock.setup_timeout(
                    now,
                    Duration::from_secs(30) + Duration::from_millis(self.conns as u64 * 2),
                ) {
                    return fail(
                        "connect",
                        format!(
                            "only {} of {} connections opened",
                            net.open_count(),
                            self.conns
                        ),
                    );
                }
                if net.open_count() == self.conns {
                    self.clock.start(now);
                    for id in net.open_ids() {
                        for _ in 0..self.inflight {
                            self.send_one(&mut net.out, id, now);
                        }
                    }
                }
            }
            Phase::Drain(deadline) => {
                if self.outstanding == 0 {
                    return Ok(true);
                }
                if now > deadline {
                    return fail(
                        "missing",
                        format!(
                            "{} messages not echoed within {:?} of the end",
                            self.outstanding, self.clock.drain
                        ),
                    );
                }
            }
            _ => {
                if self.clock.advance(now) {
                    self.count = 0;
                    self.bytes = 0;
                    self.hist = Histogram::default();
                }
            }
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------- broadcast

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Sub(usize),
    Pub,
}

/// broadcast: `subs` subscribers on /sub, one publisher on /pub, at most
/// `window` messages ahead of full delivery.
pub struct Broadcast {
    subs: usize,
    sub_addrs: Vec<std::net::SocketAddr>,
    roles: Vec<Role>,
    pub_id: usize,
    check: BroadcastCheck,
    sent_at: Vec<Instant>,
    rng: Rng,
    clock: Clock,
    joined: bool,
    probe: u64,
    probe_at: Option<Instant>,
    probe_got: usize,
    sub_probe: Vec<u64>,
    join_deadline: Option<Instant>,
    deliveries: u64,
    hist: Histogram,
}

impl Broadcast {
    pub fn new(cfg: &Cfg) -> Broadcast {
        Broadcast {
            subs: cfg.subs,
            sub_addrs: cfg.sub_addrs.clone(),
            roles: Vec::new(),
            pub_id: usize::MAX,
            check: BroadcastCheck::new(cfg.subs, cfg.window, cfg.size),
            sent_at: vec![Instant::now(); cfg.window],
            rng: Rng::new(cfg.seed ^ 0xb0ad),
            clock: Clock::new(cfg, Duration::from_secs(10)),
            joined: false,
            probe: 0,
            probe_at: None,
            probe_got: 0,
            sub_probe: vec![0; cfg.subs],
            join_deadline: None,
            deliveries: 0,
            hist: Histogram::default(),
        }
    }

    fn publish(&mut self, out: &mut Out, now: Instant) {
        while self.clock.sending() && self.check.can_send() {
            let (seq, msg) = self.check.publish(&mut self.rng);
            out.send(self.pub_id, OP_TEXT, msg);
            let slot = (seq % self.sent_at.len() as u64) as usize;
            self.sent_at[slot] = now;
        }
    }

    pub fn report(&self, r: &mut Report) {
        if let Some(m) = &self.clock.measured {
            m.fill(r, self.deliveries, self.deliveries as f64 / m.secs);
            r.unit = "deliveries/s";
            r.p50_ns = Some(self.hist.quantile(0.50));
            r.p99_ns = Some(self.hist.quantile(0.99));
            r.extra.push((
                "msgs_per_s",
                format!("{:.1}", self.deliveries as f64 / m.secs / self.subs as f64),
            ));
        }
    }
}

impl Handler for Broadcast {
    fn on_open(&mut self, _out: &mut Out, _id: usize, _now: Instant) -> Res {
        Ok(())
    }

    fn on_message(
        &mut self,
        out: &mut Out,
        id: usize,
        opcode: u8,
        data: &[u8],
        now: Instant,
    ) -> Res {
        let Role::Sub(sub) = self.roles[id] else {
            return fail("protocol", "the publisher received a message");
        };
        if opcode != OP_TEXT {
            return fail(
                "mismatch",
                format!("subscriber {sub} got opcode {opcode}, published text"),
            );
        }
        if data.first() == Some(&b'P') {
            // A join probe: counts only before the data phase, once per
            // subscriber (any probe proves its subscription).
            if !self.joined {
                let k = std::str::from_utf8(&data[1..])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                if k > 0 && self.sub_probe[sub] == 0 {
                    self.sub_probe[sub] = k;
                    self.probe_got += 1;
                }
            }
            return Ok(());
        }
        let seq = self.check.deliver(sub, data)?;
        if self.clock.measuring() {
            self.deliveries += 1;
            self.hist
                .record(now - self.sent_at[(seq % self.sent_at.len() as u64) as usize]);
        }
        // Publishing happens in `tick`, once per poll round: every slot
        // freed in the round is refilled at once, so the publisher's
        // messages reach the server in batches rather than one by one.
        let _ = out;
        Ok(())
    }

    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail> {
        match self.clock.phase {
            Phase::Setup => {
                if self.clock.setup_deadline.is_none() {
                    for i in 0..self.subs {
                        let id = match self.sub_addrs.len() {
                            0 => net.connect("/sub"),
                            n => net.connect_to(self.sub_addrs[i % n], "/sub"),
                        };
                        debug_assert_eq!(id, i);
                        self.roles.push(Role::Sub(i));
                    }
                    self.pub_id = net.connect("/pub");
                    self.roles.push(Role::Pub);
                }
                if self.clock.setup_timeout(
                    now,
                    Duration::from_secs(30) + Duration::from_millis(self.subs as u64 * 2),
                ) {
                    return fail(
                        "connect",
                        format!(
                            "only {} of {} connections opened",
                            net.open_count(),
                            self.subs + 1
                        ),
                    );
                }
                if net.open_count() < self.subs + 1 {
                    return Ok(false);
                }
                // Join: probes until every subscriber has received one, so
                // no data message can race a subscription. Any probe counts
                // (subscriptions only grow while joining): until 2026-12-05
                // it had to be the latest, sent every 200 ms, which a server
                // slower than that to reach all 10,000 subscribers
                // (tokio-tungstenite, axum) never completed.
                if self.probe_got == self.subs {
                    self.joined = true;
                    self.clock.start(now);
                    self.publish(&mut net.out, now);
                    return Ok(false);
                }
                let deadline = *self
                    .join_deadline
                    .get_or_insert(now + Duration::from_secs(20));
                if now > deadline {
                    return fail(
                        "join",
                        format!(
                            "only {} of {} subscribers received a broadcast",
                            self.probe_got, self.subs
                        ),
                    );
                }
                if self
                    .probe_at
                    .map_or(true, |t| now - t > Duration::from_millis(200))
                {
                    self.probe += 1;
                    self.probe_at = Some(now);
                    net.out
                        .send(self.pub_id, OP_TEXT, format!("P{}", self.probe).as_bytes());
                }
            }
            Phase::Drain(deadline) => {
                if self.check.full == self.check.sent {
                    // Linger briefly: a duplicate would show up now.
                    self.clock.phase = Phase::Linger(now + Duration::from_millis(100));
                } else if now > deadline {
                    return fail(
                        "missing",
                        format!(
                            "{} deliveries of {} messages still missing {:?} after the end",
                            self.check.missing(),
                            self.check.sent - self.check.full,
                            self.clock.drain
                        ),
                    );
                }
            }
            Phase::Linger(end) => return Ok(now >= end),
            _ => {
                if self.clock.advance(now) {
                    self.deliveries = 0;
                    self.hist = Histogram::default();
                }
                self.publish(&mut net.out, now);
            }
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------- connect

/// connect: `parallel` at a time: TCP connect, handshake, close frame, the
/// server's close frame, the server's TCP close.
pub struct Connect {
    parallel: usize,
    path: String,
    start: Vec<Instant>,
    got_close: Vec<bool>,
    clock: Clock,
    count: u64,
    hist: Histogram,
}

impl Connect {
    pub fn new(cfg: &Cfg) -> Connect {
        Connect {
            parallel: cfg.parallel,
            path: cfg.path.clone().unwrap_or_else(|| "/echo".into()),
            start: Vec::new(),
            got_close: Vec::new(),
            clock: Clock::new(cfg, Duration::from_secs(10)),
            count: 0,
            hist: Histogram::default(),
        }
    }

    pub fn report(&self, r: &mut Report) {
        if let Some(m) = &self.clock.measured {
            m.fill(r, self.count, self.count as f64 / m.secs);
            r.unit = "hs/s";
            r.p50_ns = Some(self.hist.quantile(0.50));
            r.p99_ns = Some(self.hist.quantile(0.99));
        }
    }
}

impl Handler for Connect {
    fn on_open(&mut self, out: &mut Out, id: usize, _now: Instant) -> Res {
        out.close(id, 1000);
        Ok(())
    }

    fn on_message(
        &mut self,
        _out: &mut Out,
        id: usize,
        _op: u8,
        _data: &[u8],
        _now: Instant,
    ) -> Res {
        fail(
            "protocol",
            format!("connection {id}: unexpected message in the connect scenario"),
        )
    }

    fn on_close(&mut self, out: &mut Out, id: usize, code: Option<u16>, _now: Instant) -> Res {
        if !out.close_sent(id) {
            return fail(
                "closed",
                format!("connection {id}: server sent close ({code:?}) unprompted"),
            );
        }
        self.got_close[id] = true;
        Ok(())
    }

    fn on_eof(&mut self, id: usize, reset: bool, now: Instant) -> Res {
        if !self.got_close[id] {
            return fail(
                "closed",
                format!(
                    "connection {id}: server {} TCP without a close frame",
                    if reset { "reset" } else { "closed" }
                ),
            );
        }
        if self.clock.measuring() {
            self.count += 1;
            self.hist.record(now - self.start[id]);
        }
        Ok(())
    }

    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail> {
        match self.clock.phase {
            Phase::Setup => self.clock.start(now),
            Phase::Drain(deadline) => {
                if net.live_count() == 0 {
                    return Ok(true);
                }
                if now > deadline {
                    return fail(
                        "timeout",
                        format!(
                            "{} connections did not finish their closing handshake",
                            net.live_count()
                        ),
                    );
                }
                return Ok(false);
            }
            _ => {
                if self.clock.advance(now) {
                    self.count = 0;
                    self.hist = Histogram::default();
                }
            }
        }
        while self.clock.sending() && net.live_count() < self.parallel {
            let id = net.connect(&self.path);
            if self.start.len() <= id {
                self.start.resize(id + 1, now);
                self.got_close.resize(id + 1, false);
            }
            self.start[id] = now;
            self.got_close[id] = false;
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------- idle

#[derive(Debug, Clone, Copy, PartialEq)]
enum IdlePhase {
    Setup,
    Idle(Instant),
    Echo(Instant),
    Settle(Instant),
    Done,
}

/// idle: N connections, the server's RSS per connection when idle and after
/// one 16-byte echo on each.
pub struct Idle {
    conns: usize,
    wait: Duration,
    path: String,
    srv: (ServerProc, Vec<u32>),
    phase: IdlePhase,
    t0: Option<Instant>,
    meter: Option<Meter>,
    connect_secs: f64,
    rss: [u64; 3],
    /// RssAnon at the same three readings (`None`: not reported).
    anon: [Option<u64>; 3],
    pool: Pool,
    rng: Rng,
    sent: Vec<Option<u32>>,
    outstanding: usize,
}

impl Idle {
    pub fn new(cfg: &Cfg) -> Result<Idle, Fail> {
        let Some(srv) = server(cfg) else {
            return fail("usage", "the idle scenario needs --server-pid");
        };
        let mut rng = Rng::new(cfg.seed ^ 0x1d1e);
        Ok(Idle {
            conns: cfg.conns,
            wait: secs(cfg.idle_wait),
            path: cfg.path.clone().unwrap_or_else(|| "/echo".into()),
            srv,
            phase: IdlePhase::Setup,
            t0: None,
            meter: None,
            connect_secs: 0.0,
            rss: [0; 3],
            anon: [None; 3],
            pool: Pool::new(&mut rng, 16, true),
            rng,
            sent: Vec::new(),
            outstanding: 0,
        })
    }

    pub fn report(&self, r: &mut Report) {
        if let (IdlePhase::Done, Some(meter)) = (self.phase, &self.meter) {
            let m = meter.stop(Some(&self.srv));
            let n = self.conns as u64;
            let per = |rss: u64| (rss as f64 - self.rss[0] as f64) / n as f64;
            m.fill(r, n, per(self.rss[1]));
            r.unit = "B/conn";
            r.extra
                .push(("echo_bytes_per_conn", format!("{:.0}", per(self.rss[2]))));
            // Without the file-backed pages (code paged in by the first
            // connections: a one-time cost, 60-110 B per connection of
            // 10,000 for the framework, which varies from run to run).
            let per_anon = |at: Option<u64>| match (self.anon[0], at) {
                (Some(before), Some(at)) => format!("{:.0}", (at as f64 - before as f64) / n as f64),
                _ => "na".to_string(),
            };
            r.extra
                .push(("anon_bytes_per_conn", per_anon(self.anon[1])));
            r.extra
                .push(("anon_echo_bytes_per_conn", per_anon(self.anon[2])));
            r.extra
                .push(("rss_before_kb", (self.rss[0] / 1024).to_string()));
            r.extra
                .push(("rss_idle_kb", (self.rss[1] / 1024).to_string()));
            r.extra
                .push(("rss_echo_kb", (self.rss[2] / 1024).to_string()));
            r.extra.push((
                "connect_rate",
                format!("{:.0}", n as f64 / self.connect_secs),
            ));
        }
    }
}

impl Handler for Idle {
    fn on_open(&mut self, _out: &mut Out, id: usize, _now: Instant) -> Res {
        if self.sent.len() <= id {
            self.sent.resize(id + 1, None);
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        _out: &mut Out,
        id: usize,
        opcode: u8,
        data: &[u8],
        now: Instant,
    ) -> Res {
        let Some(off) = self.sent[id].take() else {
            return fail(
                "duplicate",
                format!("connection {id}: message received with none in flight"),
            );
        };
        check_echo(OP_TEXT, self.pool.get(off), opcode, data)?;
        self.outstanding -= 1;
        if self.outstanding == 0 {
            self.phase = IdlePhase::Settle(now + self.wait / 2);
        }
        Ok(())
    }

    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail> {
        match self.phase {
            IdlePhase::Setup => {
                if self.t0.is_none() {
                    self.rss[0] = self.srv.0.rss(&self.srv.1);
                    self.anon[0] = self.srv.0.rss_anon(&self.srv.1);
                    self.meter = Some(Meter::start(Some(&self.srv)));
                    self.t0 = Some(now);
                    for _ in 0..self.conns {
                        net.connect(&self.path);
                    }
                }
                let t0 = self.t0.unwrap();
                if net.open_count() == self.conns {
                    self.connect_secs = (now - t0).as_secs_f64();
                    self.phase = IdlePhase::Idle(now + self.wait);
                } else if now - t0
                    > Duration::from_secs(60) + Duration::from_millis(self.conns as u64 * 5)
                {
                    return fail(
                        "connect",
                        format!(
                            "only {} of {} connections opened",
                            net.open_count(),
                            self.conns
                        ),
                    );
                }
            }
            IdlePhase::Idle(end) if now >= end => {
                self.rss[1] = self.srv.0.rss(&self.srv.1);
                self.anon[1] = self.srv.0.rss_anon(&self.srv.1);
                for id in net.open_ids() {
                    let off = self.pool.pick(&mut self.rng);
                    net.out.send(id, OP_TEXT, self.pool.get(off));
                    self.sent[id] = Some(off);
                    self.outstanding += 1;
                }
                self.phase = IdlePhase::Echo(now + Duration::from_secs(30));
            }
            IdlePhase::Echo(deadline) if now > deadline => {
                return fail(
                    "missing",
                    format!(
                        "{} of {} echoes missing after 30 s",
                        self.outstanding, self.conns
                    ),
                );
            }
            IdlePhase::Settle(end) if now >= end => {
                self.rss[2] = self.srv.0.rss(&self.srv.1);
                self.anon[2] = self.srv.0.rss_anon(&self.srv.1);
                self.phase = IdlePhase::Done;
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------- teardown

/// Closes every connection cleanly (close frame, wait for the server's
/// close and TCP close), for at most `limit`. Never fails a run.
pub struct Teardown {
    pub deadline: Option<Instant>,
    pub limit: Duration,
}

impl Handler for Teardown {
    fn on_open(&mut self, out: &mut Out, id: usize, _now: Instant) -> Res {
        out.close(id, 1000);
        Ok(())
    }
    fn on_message(&mut self, _: &mut Out, _: usize, _: u8, _: &[u8], _: Instant) -> Res {
        Ok(())
    }
    fn on_close(&mut self, out: &mut Out, id: usize, _code: Option<u16>, _now: Instant) -> Res {
        out.close(id, 1000);
        Ok(())
    }
    fn on_eof(&mut self, _id: usize, _reset: bool, _now: Instant) -> Res {
        Ok(())
    }
    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail> {
        if self.deadline.is_none() {
            self.deadline = Some(now + self.limit);
            for id in 0..net.ids() {
                match net.state(id) {
                    St::Open => net.out.close(id, 1000),
                    St::Free => {}
                    _ => net.drop_conn(id),
                }
            }
        }
        Ok(net.live_count() == 0 || now > self.deadline.unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupted_echo_is_detected() {
        let mut rng = Rng::new(7);
        let pool = Pool::new(&mut rng, 16, true);
        let off = pool.pick(&mut rng);
        let sent = pool.get(off).to_vec();
        assert!(std::str::from_utf8(&sent).is_ok());
        assert!(check_echo(OP_TEXT, &sent, OP_TEXT, &sent).is_ok());
        let mut bad = sent.clone();
        bad[9] ^= 0x01;
        let e = check_echo(OP_TEXT, &sent, OP_TEXT, &bad).unwrap_err();
        assert_eq!(e.kind, "mismatch");
        assert!(e.detail.contains("byte 9"), "{}", e.detail);
        assert_eq!(
            check_echo(OP_TEXT, &sent, OP_BINARY, &sent)
                .unwrap_err()
                .kind,
            "mismatch"
        );
        assert_eq!(
            check_echo(OP_TEXT, &sent, OP_TEXT, &sent[..15])
                .unwrap_err()
                .kind,
            "mismatch"
        );
    }

    #[test]
    fn broadcast_in_order_exactly_once() {
        let mut rng = Rng::new(1);
        let mut c = BroadcastCheck::new(2, 3, 64);
        let mut msgs = Vec::new();
        while c.can_send() {
            let (seq, m) = c.publish(&mut rng);
            assert_eq!(m.len(), 64);
            assert!(std::str::from_utf8(m).is_ok());
            msgs.push((seq, m.to_vec()));
        }
        assert_eq!(c.sent, 3);
        assert_eq!(c.deliver(0, &msgs[0].1).unwrap(), 0);
        assert_eq!(c.full, 0);
        assert_eq!(c.deliver(1, &msgs[0].1).unwrap(), 0);
        assert_eq!(c.full, 1);
        assert!(c.can_send());
        // Duplicate of message 0 on subscriber 1.
        assert_eq!(c.deliver(1, &msgs[0].1).unwrap_err().kind, "duplicate");
        // Subscriber 0 skips message 1.
        assert_eq!(c.deliver(0, &msgs[2].1).unwrap_err().kind, "missing");
        // Corrupted message 1.
        let mut bad = msgs[1].1.clone();
        bad[40] = b'!';
        assert_eq!(c.deliver(0, &bad).unwrap_err().kind, "mismatch");
        assert_eq!(c.deliver(0, &msgs[1].1).unwrap(), 1);
        assert_eq!(c.missing(), 3);
    }

    #[test]
    fn broadcast_never_sent_is_a_duplicate() {
        let mut rng = Rng::new(1);
        let mut c = BroadcastCheck::new(1, 4, 32);
        let m = c.publish(&mut rng).1.to_vec();
        c.deliver(0, &m).unwrap();
        assert_eq!(c.deliver(0, &m).unwrap_err().kind, "duplicate");
    }
}
