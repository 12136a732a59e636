//! End-to-end tests of the scenarios against a tiny in-process server
//! (blocking std sockets, a thread per connection) that follows the suite's
//! server contract and can be told to misbehave.

use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Good,
    /// Echo every message as two fragments (with a ping between).
    Fragment,
    /// Flip a byte of the n-th echoed message.
    CorruptEcho(u64),
    /// Skip subscriber 0 for the n-th data broadcast.
    DropBroadcast(u64),
    /// Send the n-th data broadcast twice to subscriber 0.
    DuplicateBroadcast(u64),
    /// Deliver each join probe to one subscriber only, in turn: a server
    /// whose fan-out is slower than the generator's probes, so that no
    /// probe reaches every subscriber before the next one goes out.
    SlowJoin,
    /// Close TCP without answering the close frame.
    NoCloseReply,
}

fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    assert!(h[1] & 0x80 != 0, "client frame not masked");
    assert!(h[0] & 0x80 != 0, "the generator never fragments");
    let mut key = [0u8; 4];
    s.read_exact(&mut key).ok()?;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).ok()?;
    for (i, b) in p.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    Some((h[0] & 0x0F, p))
}

fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | op];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

struct Shared {
    mode: Mode,
    subs: Mutex<Vec<TcpStream>>,
    echoed: AtomicU64,
    broadcast: AtomicU64,
    /// Join probes seen (`Mode::SlowJoin`).
    probes: AtomicU64,
}

fn fake_server(mode: Mode) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let shared = Arc::new(Shared {
        mode,
        subs: Mutex::new(Vec::new()),
        echoed: AtomicU64::new(0),
        broadcast: AtomicU64::new(0),
        probes: AtomicU64::new(0),
    });
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || serve(s, &shared));
        }
    });
    addr
}

fn serve(mut s: TcpStream, sh: &Shared) {
    s.set_nodelay(true).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains(codec::KEY));
    let path = head.split(' ').nth(1).unwrap().to_string();
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        codec::ACCEPT
    );
    s.write_all(resp.as_bytes()).unwrap();
    if path == "/sub" {
        sh.subs.lock().unwrap().push(s.try_clone().unwrap());
    }
    while let Some((op, mut p)) = read_frame(&mut s) {
        match op {
            codec::OP_CLOSE => {
                if sh.mode != Mode::NoCloseReply {
                    let _ = s.write_all(&frame(true, codec::OP_CLOSE, &p));
                }
                return;
            }
            codec::OP_TEXT | codec::OP_BINARY if path == "/pub" => {
                let n = if p[0] == b'D' {
                    sh.broadcast.fetch_add(1, Ordering::SeqCst)
                } else {
                    u64::MAX
                };
                let f = frame(true, op, &p);
                let subs = sh.subs.lock().unwrap();
                if p[0] == b'P' && sh.mode == Mode::SlowJoin {
                    let k = sh.probes.fetch_add(1, Ordering::SeqCst) as usize;
                    let _ = (&subs[k % subs.len()]).write_all(&f);
                    continue;
                }
                for (i, mut sub) in subs.iter().enumerate() {
                    if i == 0 && sh.mode == Mode::DropBroadcast(n) {
                        continue;
                    }
                    let _ = sub.write_all(&f);
                    if i == 0 && sh.mode == Mode::DuplicateBroadcast(n) {
                        let _ = sub.write_all(&f);
                    }
                }
            }
            codec::OP_TEXT | codec::OP_BINARY => {
                let n = sh.echoed.fetch_add(1, Ordering::SeqCst);
                if sh.mode == Mode::CorruptEcho(n) {
                    let i = p.len() / 2;
                    p[i] ^= 0x01;
                }
                if sh.mode == Mode::Fragment && p.len() >= 2 {
                    let (a, b) = p.split_at(p.len() / 2);
                    let mut out = frame(false, op, a);
                    out.extend(frame(true, codec::OP_PING, b"hi"));
                    out.extend(frame(true, codec::OP_CONT, b));
                    let _ = s.write_all(&out);
                } else {
                    let _ = s.write_all(&frame(true, op, &p));
                }
            }
            _ => {}
        }
    }
}

fn cfg(scenario: &str, addr: SocketAddr) -> Cfg {
    let mut c = parse_args(&[scenario.to_string(), "--addr".into(), addr.to_string()])
        .unwrap()
        .0;
    c.duration = 0.3;
    c.warmup = 0.1;
    c.idle_wait = 0.1;
    c.conns = c.conns.min(4);
    c.subs = 5;
    c.parallel = 4;
    c.seed = 42;
    c
}

fn ok(r: &Report) {
    assert!(r.error.is_none(), "{}", r.line());
    assert!(r.count > 0 && r.rate > 0.0, "{}", r.line());
}

#[test]
fn echo_small_against_a_good_server() {
    let r = run(&cfg("echo-small", fake_server(Mode::Good)));
    ok(&r);
    assert_eq!(r.unit, "rt/s");
    assert!(r.p99_ns.unwrap() >= r.p50_ns.unwrap());
    let line = r.line();
    assert!(
        line.starts_with("RESULT scenario=echo-small server=- conns=4 inflight=16 size=16 "),
        "{line}"
    );
}

#[test]
fn echo_of_fragmented_messages_with_pings() {
    let mut c = cfg("echo-large", fake_server(Mode::Fragment));
    c.size = 100_000;
    ok(&run(&c));
    ok(&run(&cfg("echo-small", fake_server(Mode::Fragment))));
}

#[test]
fn echo_large() {
    let mut c = cfg("echo-large", fake_server(Mode::Good));
    c.size = 300_000;
    let r = run(&c);
    ok(&r);
    assert_eq!(r.unit, "MB/s");
}

#[test]
fn corrupted_echo_fails_the_run() {
    let r = run(&cfg("echo-small", fake_server(Mode::CorruptEcho(30))));
    let e = r
        .error
        .as_ref()
        .expect("a corrupted echo must fail the run");
    assert_eq!(e.kind, "mismatch", "{}", r.line());
    assert!(r.line().contains(" error=mismatch:"));
}

#[test]
fn broadcast_against_a_good_server() {
    let r = run(&cfg("broadcast", fake_server(Mode::Good)));
    ok(&r);
    assert_eq!(r.unit, "deliveries/s");
}

/// Regression (2026-12-05): the join waited for every subscriber to get
/// the latest probe, and probes go out every 200 ms; a server slower than
/// that to reach all subscribers (tokio-tungstenite's and axum's with
/// 10,000) never joined. Any probe proves a subscription.
#[test]
fn broadcast_joins_a_server_slower_than_the_probes() {
    let r = run(&cfg("broadcast", fake_server(Mode::SlowJoin)));
    ok(&r);
}

#[test]
fn broadcast_missing_message_fails() {
    let r = run(&cfg("broadcast", fake_server(Mode::DropBroadcast(20))));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some("missing"),
        "{}",
        r.line()
    );
}

#[test]
fn broadcast_duplicate_message_fails() {
    let r = run(&cfg("broadcast", fake_server(Mode::DuplicateBroadcast(20))));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some("duplicate"),
        "{}",
        r.line()
    );
}

#[test]
fn connect_scenario() {
    let r = run(&cfg("connect", fake_server(Mode::Good)));
    ok(&r);
    assert_eq!(r.unit, "hs/s");
}

#[test]
fn connect_without_close_reply_fails() {
    let r = run(&cfg("connect", fake_server(Mode::NoCloseReply)));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some("closed"),
        "{}",
        r.line()
    );
}

#[test]
fn idle_scenario_reads_rss() {
    let mut c = cfg("idle", fake_server(Mode::Good));
    c.conns = 20;
    c.server_pid = Some(std::process::id());
    let r = run(&c);
    assert!(r.error.is_none(), "{}", r.line());
    assert_eq!(r.unit, "B/conn");
    assert!(r.line().contains(" rss_echo_kb="), "{}", r.line());
    assert!(r.line().contains(" anon_bytes_per_conn="), "{}", r.line());
    c.server_pid = None;
    assert_eq!(run(&c).error.map(|e| e.kind), Some("usage"));
}

#[test]
fn refused_connection_fails() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let r = run(&cfg("echo-small", addr));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some("connect"),
        "{}",
        r.line()
    );
}

#[test]
fn args() {
    assert!(
        parse_args(&["echo-small".into()]).is_err(),
        "--addr is required"
    );
    assert!(parse_args(&["nope".into(), "--addr".into(), "127.0.0.1:1".into()]).is_err());
    let (c, t) = parse_args(&[
        "echo-large".into(),
        "--addr".into(),
        "127.0.0.1:1".into(),
        "--duration".into(),
        "2".into(),
    ])
    .unwrap();
    assert_eq!(
        (c.conns, c.inflight, c.size, c.duration),
        (10, 1, 1 << 20, 2.0)
    );
    assert!(t > 3.0);
}

fn churn_cfg(addr: SocketAddr) -> Cfg {
    let mut c = cfg("churn", addr);
    c.conns = 20;
    c.rate = 100.0;
    c.msgs = 2;
    c.duration = 1.0;
    c
}

fn extra<'a>(r: &'a Report, key: &str) -> &'a str {
    r.extra
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {}", r.line()))
}

#[test]
fn churn_against_a_good_server_with_provoked_aborts() {
    let mut c = churn_cfg(fake_server(Mode::Good));
    c.abort_every = 5;
    let r = run(&c);
    assert!(r.error.is_none(), "{}", r.line());
    assert_eq!(r.unit, "cycles/s");
    assert_eq!(extra(&r, "errors"), "0");
    let started: u64 = extra(&r, "started").parse().unwrap();
    let aborted: u64 = extra(&r, "aborted_fin").parse::<u64>().unwrap()
        + extra(&r, "aborted_rst").parse::<u64>().unwrap();
    // About 100 started, every 5th aborted (those still open at the end
    // close cleanly instead), every other one a full cycle.
    assert!(started >= 80, "{}", r.line());
    assert!(
        aborted >= started / 5 - 4 && aborted <= started / 5,
        "{}",
        r.line()
    );
    assert_eq!(r.count + aborted, started, "{}", r.line());
}

#[test]
fn churn_counts_a_corrupted_echo_and_goes_on() {
    let r = run(&churn_cfg(fake_server(Mode::CorruptEcho(10))));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some("mismatch"),
        "{}",
        r.line()
    );
    assert_eq!(extra(&r, "errors"), "mismatch:1", "{}", r.line());
    assert!(r.count >= 50, "the run went on: {}", r.line());
}

#[test]
fn churn_counts_closes_without_a_closing_handshake() {
    let r = run(&churn_cfg(fake_server(Mode::NoCloseReply)));
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some("eof"),
        "{}",
        r.line()
    );
    assert_eq!(r.count, 0, "{}", r.line());
    let n: u64 = extra(&r, "errors")
        .strip_prefix("eof:")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        n,
        extra(&r, "started").parse::<u64>().unwrap(),
        "{}",
        r.line()
    );
}
