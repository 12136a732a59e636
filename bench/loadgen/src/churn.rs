//! churn: the soak scenario. `conns` connection slots; each slot loops:
//! connect, handshake, exchange `msgs` echoes (each checked byte for
//! byte), closing handshake (close 1000, the server's close 1000, the
//! server's TCP close), reconnect. New connections start at a steady
//! `rate` per second, and each connection lives `conns / rate` seconds
//! (its echoes spread evenly over that time), so once ramped up about
//! `conns` connections are open and `rate` open and close every second.
//!
//! Every `abort_every`-th connection is instead dropped after its first
//! echo without a closing handshake, alternately with FIN and with RST:
//! faults provoked on purpose (the server must clean them up), counted
//! apart from the errors.
//!
//! Unlike the throughput scenarios a failure does not end the run: every
//! one is counted by kind (the first detail of each kind kept), the
//! connection dropped and its slot reconnected. After `duration` seconds no
//! new connection starts, open ones finish their echo in flight and close
//! cleanly, and the run ends when every connection is closed (30 s at most,
//! else a `drain` error). The run fails if any error was counted.

use crate::codec::OP_TEXT;
use crate::net::{fail, Fail, Handler, Net, Out, Res, St};
use crate::report::{Meter, Report};
use crate::scenarios::{check_echo, Cfg, Pool};
use crate::util::{Rng, ServerProc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

/// A handshake, an echo or a close answer not completed within this long is
/// an error (`stalled`).
const STALL: Duration = Duration::from_secs(30);
/// How long the end of the run waits for every connection to close.
const DRAIN: Duration = Duration::from_secs(30);
/// Connection starts that could not keep up (the server or the generator
/// was slow) are made up for, at most this many seconds' worth at once.
const CATCH_UP: f64 = 1.0;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stage {
    /// Connecting or handshaking.
    Opening,
    /// Echo `sent` in flight (sent at the time given).
    Echo,
    /// Between echoes, or waiting for the time to close.
    Wait,
    /// Close sent; waiting for the server's close, then its TCP close.
    Closing,
}

struct Slot {
    gen: u64,
    stage: Stage,
    opened: Instant,
    /// Echoes completed.
    done: usize,
    /// Pool offset of the echo in flight.
    off: u32,
    got_close: bool,
    /// This connection is dropped (provoked fault) after its first echo.
    abort: Option<bool>,
    /// Deadline of the current wait (echo or close answer).
    stall_at: Instant,
}

/// Timer actions, by connection id and generation (ids are reused).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Send,
    Close,
}

pub struct Churn {
    conns: usize,
    msgs: usize,
    rate: f64,
    hold: Duration,
    duration: Duration,
    abort_every: u64,
    path: String,
    pool: Pool,
    rng: Rng,
    slots: Vec<Option<Slot>>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64, Due)>>,
    next_gen: u64,
    t0: Option<Instant>,
    end: Option<Instant>,
    drain_deadline: Option<Instant>,
    started: u64,
    /// Connections not started on time (beyond CATCH_UP).
    late: u64,
    opened: u64,
    /// Full cycles: echoes, closing handshake, TCP close.
    cycles: u64,
    echoes: u64,
    aborted_fin: u64,
    aborted_rst: u64,
    peak_open: usize,
    errors: BTreeMap<&'static str, (u64, String)>,
    srv: Option<(ServerProc, Vec<u32>)>,
    meter: Option<Meter>,
    secs: f64,
    next_status: Option<Instant>,
    next_stall_check: Option<Instant>,
}

impl Churn {
    pub fn new(cfg: &Cfg) -> Churn {
        let mut rng = Rng::new(cfg.seed ^ 0xc4u64);
        let pool = Pool::new(&mut rng, cfg.size, true);
        let rate = cfg.rate.max(0.001);
        Churn {
            conns: cfg.conns,
            msgs: cfg.msgs,
            rate,
            hold: Duration::from_secs_f64(cfg.conns as f64 / rate),
            duration: Duration::from_secs_f64(cfg.duration.max(0.0)),
            abort_every: cfg.abort_every,
            path: cfg.path.clone().unwrap_or_else(|| "/echo".into()),
            pool,
            rng,
            slots: Vec::new(),
            timers: BinaryHeap::new(),
            next_gen: 0,
            t0: None,
            end: None,
            drain_deadline: None,
            started: 0,
            late: 0,
            opened: 0,
            cycles: 0,
            echoes: 0,
            aborted_fin: 0,
            aborted_rst: 0,
            peak_open: 0,
            errors: BTreeMap::new(),
            srv: cfg.server_pid.map(|pid| {
                let p = ServerProc { pid };
                let tree = p.tree();
                (p, tree)
            }),
            meter: None,
            secs: 0.0,
            next_status: None,
            next_stall_check: None,
        }
    }

    fn count_error(&mut self, kind: &'static str, detail: String) {
        let e = self.errors.entry(kind).or_insert((0, detail));
        e.0 += 1;
    }

    fn stopping(&self) -> bool {
        self.end.is_some()
    }

    fn slot(&mut self, id: usize) -> Result<&mut Slot, Fail> {
        match self.slots.get_mut(id).and_then(Option::as_mut) {
            Some(s) => Ok(s),
            None => fail("internal", format!("event on unknown connection {id}")),
        }
    }

    fn send_echo(&mut self, out: &mut Out, id: usize, now: Instant) {
        let off = self.pool.pick(&mut self.rng);
        out.send(id, OP_TEXT, self.pool.get(off));
        let s = self.slots[id].as_mut().unwrap();
        s.off = off;
        s.stage = Stage::Echo;
        s.stall_at = now + STALL;
    }

    fn close(&mut self, out: &mut Out, id: usize, now: Instant) {
        out.close(id, 1000);
        let s = self.slots[id].as_mut().unwrap();
        s.stage = Stage::Closing;
        s.stall_at = now + STALL;
    }

    /// The next step after an echo (or the open): another echo (now or
    /// later), or the close (now or at the end of the connection's life).
    fn next(&mut self, out: &mut Out, id: usize, now: Instant) {
        let s = self.slots[id].as_ref().unwrap();
        let (done, opened, gen) = (s.done, s.opened, s.gen);
        if done >= self.msgs || self.stopping() {
            let at = opened + self.hold;
            if at <= now || self.stopping() {
                self.close(out, id, now);
            } else {
                self.slots[id].as_mut().unwrap().stage = Stage::Wait;
                self.timers.push(Reverse((at, id, gen, Due::Close)));
            }
            return;
        }
        let at = opened + self.hold.mul_f64(done as f64 / self.msgs as f64);
        if at <= now {
            self.send_echo(out, id, now);
        } else {
            self.slots[id].as_mut().unwrap().stage = Stage::Wait;
            self.timers.push(Reverse((at, id, gen, Due::Send)));
        }
    }

    fn status(&self, net: &Net, now: Instant) -> String {
        let t = self.t0.map(|t0| (now - t0).as_secs_f64()).unwrap_or(0.0);
        let errors: u64 = self.errors.values().map(|e| e.0).sum();
        format!(
            "churn t={t:.0}s open={} live={} started={} cycles={} echoes={} aborted={} late={} errors={errors}",
            net.open_count(),
            net.live_count(),
            self.started,
            self.cycles,
            self.echoes,
            self.aborted_fin + self.aborted_rst,
            self.late,
        )
    }

    pub fn report(&self, r: &mut Report) {
        r.secs = self.secs;
        r.count = self.cycles;
        r.rate = if self.secs > 0.0 {
            self.cycles as f64 / self.secs
        } else {
            0.0
        };
        r.unit = "cycles/s";
        if let Some(m) = &self.meter {
            let m = m.stop(self.srv.as_ref());
            r.gen_cpu = Some(m.gen_cpu);
            r.srv_cpu = m.srv_cpu.map(|c| c.as_secs_f64() / m.secs.max(1e-9));
        }
        r.extra.push(("started", self.started.to_string()));
        r.extra.push(("opened", self.opened.to_string()));
        r.extra.push(("echoes", self.echoes.to_string()));
        r.extra.push(("aborted_fin", self.aborted_fin.to_string()));
        r.extra.push(("aborted_rst", self.aborted_rst.to_string()));
        r.extra.push(("late", self.late.to_string()));
        r.extra.push(("peak_open", self.peak_open.to_string()));
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, (n, _))| format!("{k}:{n}"))
            .collect();
        r.extra.push((
            "errors",
            if errors.is_empty() {
                "0".into()
            } else {
                errors.join(",")
            },
        ));
    }

    /// The run's verdict: the first error kind (with its count and first
    /// detail), if any.
    pub fn verdict(&self) -> Res {
        match self.errors.iter().next() {
            None => Ok(()),
            Some((kind, (n, detail))) => {
                let total: u64 = self.errors.values().map(|e| e.0).sum();
                fail(
                    kind,
                    format!("{total} errors ({n} of this kind), first: {detail}"),
                )
            }
        }
    }
}

impl Handler for Churn {
    fn on_open(&mut self, out: &mut Out, id: usize, now: Instant) -> Res {
        self.opened += 1;
        let s = self.slot(id)?;
        s.opened = now;
        if self.stopping() {
            self.close(out, id, now);
            return Ok(());
        }
        self.next(out, id, now);
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
        let s = self.slot(id)?;
        if s.stage != Stage::Echo {
            return fail(
                "unexpected",
                format!(
                    "connection {id}: message received with no echo in flight ({:?})",
                    s.stage
                ),
            );
        }
        let off = s.off;
        check_echo(OP_TEXT, self.pool.get(off), opcode, data)?;
        self.echoes += 1;
        let s = self.slots[id].as_mut().unwrap();
        s.done += 1;
        if let Some(reset) = s.abort {
            return Err(Fail {
                kind: if reset {
                    "provoked-rst"
                } else {
                    "provoked-fin"
                },
                detail: String::new(),
            });
        }
        self.next(out, id, now);
        Ok(())
    }

    fn on_close(&mut self, _out: &mut Out, id: usize, code: Option<u16>, _now: Instant) -> Res {
        let s = self.slot(id)?;
        if s.stage != Stage::Closing {
            return fail(
                "server-close",
                format!("connection {id}: server sent close ({code:?}) unprompted"),
            );
        }
        if code != Some(1000) {
            return fail(
                "close-code",
                format!("connection {id}: server answered close 1000 with {code:?}"),
            );
        }
        s.got_close = true;
        Ok(())
    }

    fn on_eof(&mut self, id: usize, reset: bool, _now: Instant) -> Res {
        let s = self.slot(id)?;
        let got_close = s.got_close;
        if !got_close {
            return fail(
                if reset { "reset" } else { "eof" },
                format!(
                    "connection {id}: server {} TCP without a closing handshake ({:?})",
                    if reset { "reset" } else { "closed" },
                    s.stage
                ),
            );
        }
        self.slots[id] = None;
        self.cycles += 1;
        Ok(())
    }

    fn on_conn_error(&mut self, id: usize, f: &Fail, _now: Instant) -> Option<bool> {
        match f.kind {
            "provoked-fin" => self.aborted_fin += 1,
            "provoked-rst" => self.aborted_rst += 1,
            kind => self.count_error(kind, f.detail.clone()),
        }
        if let Some(slot) = self.slots.get_mut(id) {
            *slot = None;
        }
        Some(f.kind == "provoked-rst")
    }

    fn tick(&mut self, net: &mut Net, now: Instant) -> Result<bool, Fail> {
        let t0 = *self.t0.get_or_insert_with(|| {
            self.meter = Some(Meter::start(self.srv.as_ref()));
            now
        });
        if now >= *self.next_status.get_or_insert(now) {
            eprintln!("{}", self.status(net, now));
            self.next_status = Some(now + Duration::from_secs(10));
        }
        self.peak_open = self.peak_open.max(net.open_count());
        if self.end.is_none() && now - t0 >= self.duration {
            self.end = Some(now);
            self.drain_deadline = Some(now + DRAIN);
            // Close every connection now, except those with an echo in
            // flight (closed when it arrives) or still opening (closed when
            // open); provoked aborts become clean closes.
            for id in 0..self.slots.len() {
                if let Some(s) = self.slots[id].as_mut() {
                    s.abort = None;
                    if s.stage == Stage::Wait {
                        self.close(&mut net.out, id, now);
                    }
                }
            }
            self.timers.clear();
        }
        // Timers.
        while let Some(Reverse((at, id, gen, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let _ = (id, gen);
            let Reverse((_, id, gen, due)) = self.timers.pop().unwrap();
            let live = matches!(&self.slots.get(id), Some(Some(s)) if s.gen == gen && s.stage == Stage::Wait);
            if !live || net.state(id) != St::Open {
                continue;
            }
            match due {
                Due::Send => self.send_echo(&mut net.out, id, now),
                Due::Close => self.close(&mut net.out, id, now),
            }
        }
        // Stalls: checked once a second over every slot.
        if now >= *self.next_stall_check.get_or_insert(now) {
            self.next_stall_check = Some(now + Duration::from_secs(1));
            for id in 0..self.slots.len() {
                let stalled = matches!(&self.slots[id], Some(s)
                    if matches!(s.stage, Stage::Opening | Stage::Echo | Stage::Closing) && now > s.stall_at);
                if stalled {
                    let stage = self.slots[id].as_ref().unwrap().stage;
                    self.count_error(
                        "stalled",
                        format!("connection {id}: no answer within {STALL:?} ({stage:?})"),
                    );
                    self.slots[id] = None;
                    net.drop_conn(id);
                }
            }
        }
        if let Some(end) = self.end {
            if net.live_count() == 0 {
                self.secs = (end - t0).as_secs_f64();
                eprintln!("{}", self.status(net, now));
                return Ok(true);
            }
            if now > self.drain_deadline.unwrap() {
                self.secs = (end - t0).as_secs_f64();
                self.count_error(
                    "drain",
                    format!(
                        "{} connections still open {DRAIN:?} after the end",
                        net.live_count()
                    ),
                );
                return Ok(true);
            }
            return Ok(false);
        }
        // New connections at the target rate, while a slot is free.
        let target = ((now - t0).as_secs_f64() * self.rate) as u64;
        let floor = target.saturating_sub((self.rate * CATCH_UP) as u64);
        if self.started < floor {
            self.late += floor - self.started;
            self.started = floor;
        }
        while self.started < target && net.live_count() < self.conns {
            let id = net.connect(&self.path);
            if self.slots.len() <= id {
                self.slots.resize_with(id + 1, || None);
            }
            self.next_gen += 1;
            self.started += 1;
            let abort = (self.abort_every > 0 && self.started % self.abort_every == 0)
                .then(|| (self.started / self.abort_every) % 2 == 0);
            self.slots[id] = Some(Slot {
                gen: self.next_gen,
                stage: Stage::Opening,
                opened: now,
                done: 0,
                off: 0,
                got_close: false,
                abort,
                stall_at: now + STALL,
            });
        }
        // Slots freed but no token yet: the start is simply later.
        Ok(false)
    }
}
