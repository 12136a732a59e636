//! Several event loops on one port (`Options::reuse_port`, one loop per
//! thread, the kernel spreading connections across them), over real
//! sockets; and the clear errors when the port is held without it.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_cores`.

mod common;

use common::{client_frame, upgrade_request, OP_TEXT};
use simples_ws::event_loop::{ConnId, Ctx, EventHandler, EventLoop, Options, Request};
use simples_ws::handshake::HandshakeError;
use simples_ws::Message;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Echoes data messages and counts the connections it opened.
#[derive(Default)]
struct Echo {
    opened: usize,
}

impl EventHandler for Echo {
    fn on_open(&mut self, _: &mut Ctx<'_>, _: ConnId, _: &Request) -> Result<simples_ws::event_loop::Accept, HandshakeError> {
        self.opened += 1;
        Ok(Default::default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if msg.is_data() {
            ctx.send(id, msg);
        }
    }
}

fn reuse() -> Options {
    Options { reuse_port: true, ..Options::default() }
}

/// Two loops bound to one address: both accept (connections are spread by
/// a hash of their addresses: with 64 of them, one loop getting none has a
/// probability of 2^-63), and every connection is served by one of them.
#[test]
fn two_loops_share_one_port() {
    const CONNS: usize = 64;
    let mut a: EventLoop<Echo> = EventLoop::bind("127.0.0.1:0".parse().unwrap(), reuse()).unwrap();
    let addr: SocketAddr = a.local_addr().unwrap();
    let mut b: EventLoop<Echo> = EventLoop::bind(addr, reuse()).unwrap();
    let (mut ha, mut hb) = (Echo::default(), Echo::default());
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(upgrade_request("/", &[]).as_bytes()).unwrap();
        clients.push(tcp);
    }
    while ha.opened + hb.opened < CONNS {
        assert!(Instant::now() < give_up, "only {} + {} connections opened", ha.opened, hb.opened);
        a.run_once(&mut ha, Some(Duration::from_millis(10))).unwrap();
        b.run_once(&mut hb, Some(Duration::from_millis(10))).unwrap();
    }
    println!("connections per loop: {} and {}", ha.opened, hb.opened);
    assert!(ha.opened > 0 && hb.opened > 0, "one loop got every connection: {} and {}", ha.opened, hb.opened);
    for (i, tcp) in clients.iter_mut().enumerate() {
        let head = common::read_head_blocking(tcp);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        tcp.write_all(&client_frame(true, OP_TEXT, format!("m{i}").as_bytes())).unwrap();
    }
    for _ in 0..20 {
        a.run_once(&mut ha, Some(Duration::from_millis(5))).unwrap();
        b.run_once(&mut hb, Some(Duration::from_millis(5))).unwrap();
    }
    common::expect_numbered_echoes(&mut clients);
}

/// A port held by a listener without `SO_REUSEPORT` refuses a loop with
/// it, and a port held by loops with it refuses a plain listener: both
/// with `AddrInUse`, at bind time.
#[test]
fn reuse_port_against_a_plain_listener_is_addr_in_use() {
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = plain.local_addr().unwrap();
    let err = EventLoop::<Echo>::bind(held, reuse()).err().expect("bound over a plain listener");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");

    let lp = EventLoop::<Echo>::bind("127.0.0.1:0".parse().unwrap(), reuse()).unwrap();
    let addr = lp.local_addr().unwrap();
    let err = EventLoop::<Echo>::bind(addr, Options::default()).err().expect("plain bind over reuse_port loops");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}
