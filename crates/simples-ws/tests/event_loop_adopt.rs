//! Connections handed to an [`EventLoop`] after a handshake done elsewhere
//! (`Ctx::adopt`), and the application's controls over them: `Handle::wake`
//! / `on_wake`, `Ctx::pause_reading`, `Ctx::notify_drained`,
//! `EventLoop::unbound`. Real sockets on 127.0.0.1: the handshake is done
//! by hand on a std `TcpListener`, the client is a raw socket driven by a
//! client-role `Protocol`.
//!
//! The loop reads the real clock: the timeouts used here are short (well
//! under 2 s of waiting per test).
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_adopt`.

use simples_ws::event_loop::{CloseReason, ConnId, Ctx, EventHandler, EventLoop, Handle, Options};
use simples_ws::handshake::server::{parse_request, ServerConfig};
use simples_ws::handshake::ServerPolicy;
use simples_ws::{CloseCode, Config, Message, Protocol, Role};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

/// Upper bound for one expected event.
const STEP: Duration = Duration::from_secs(3);

const REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// What the loop's thread is asked to do (in `on_wake`).
enum Cmd {
    Adopt(TcpStream, Box<Protocol>),
    Pause(ConnId, bool),
    Send(ConnId, Message),
    NotifyDrained(ConnId),
    Close(ConnId),
}

/// What the handler saw.
#[derive(Debug)]
enum Ev {
    Adopted(Result<ConnId, io::ErrorKind>),
    Msg(ConnId, Message),
    Close(ConnId, String),
    Drained(ConnId),
    Done(bool),
}

struct Srv {
    cmds: mpsc::Receiver<Cmd>,
    events: mpsc::Sender<Ev>,
    wakes: Arc<AtomicUsize>,
    /// Echo data messages back.
    echo: bool,
    /// Called once from the first `on_wake`: a wake during `on_wake`.
    rewake: Option<Handle>,
    /// `Ctx::writing` in each `on_message`, in order.
    writing: Arc<std::sync::Mutex<Vec<bool>>>,
}

impl EventHandler for Srv {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        self.writing.lock().unwrap().push(ctx.writing());
        if msg == text("pause-me") {
            assert!(ctx.pause_reading(id, true));
        }
        if self.echo && msg.is_data() {
            assert!(ctx.send(id, msg.clone()));
        }
        let _ = self.events.send(Ev::Msg(id, msg));
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        let _ = self.events.send(Ev::Close(id, format!("{reason:?}")));
    }

    fn on_wake(&mut self, ctx: &mut Ctx<'_>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Some(h) = self.rewake.take() {
            h.wake();
        }
        while let Ok(cmd) = self.cmds.try_recv() {
            let done = match cmd {
                Cmd::Adopt(stream, proto) => {
                    let _ = self.events.send(Ev::Adopted(ctx.adopt(stream, *proto).map_err(|e| e.kind())));
                    continue;
                }
                Cmd::Pause(id, paused) => ctx.pause_reading(id, paused),
                Cmd::Send(id, msg) => ctx.send(id, msg),
                Cmd::NotifyDrained(id) => ctx.notify_drained(id),
                Cmd::Close(id) => ctx.close(id, CloseCode::NORMAL, "bye"),
            };
            let _ = self.events.send(Ev::Done(done));
        }
    }

    fn on_drained(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        assert!(ctx.is_open(id));
        let _ = self.events.send(Ev::Drained(id));
    }
}

/// A loop without a listener running on its own thread.
struct Server {
    handle: Handle,
    cmds: mpsc::Sender<Cmd>,
    events: mpsc::Receiver<Ev>,
    thread: Option<thread::JoinHandle<()>>,
    writing: Arc<std::sync::Mutex<Vec<bool>>>,
}

impl Server {
    fn start(options: Options, echo: bool) -> Server {
        let mut lp = EventLoop::unbound(options).unwrap();
        assert_eq!(lp.local_addr().unwrap_err().kind(), io::ErrorKind::NotConnected);
        let handle = lp.handle();
        let (cmd_tx, cmds) = mpsc::channel();
        let (ev_tx, events) = mpsc::channel();
        let writing = Arc::default();
        let srv = Srv { cmds, events: ev_tx, wakes: Arc::default(), echo, rewake: None, writing: Arc::clone(&writing) };
        let thread = thread::spawn(move || lp.run(srv).unwrap());
        Server { handle, cmds: cmd_tx, events, thread: Some(thread), writing }
    }

    fn cmd(&self, cmd: Cmd) {
        self.cmds.send(cmd).unwrap();
        self.handle.wake();
    }

    fn event(&self) -> Ev {
        self.events.recv_timeout(STEP).expect("an event from the loop")
    }

    fn done(&self, cmd: Cmd) -> bool {
        self.cmd(cmd);
        match self.event() {
            Ev::Done(ok) => ok,
            other => panic!("expected the command's result, got {other:?}"),
        }
    }

    fn adopt(&self, stream: TcpStream, proto: Protocol) -> Result<ConnId, io::ErrorKind> {
        self.cmd(Cmd::Adopt(stream, Box::new(proto)));
        match self.event() {
            Ev::Adopted(r) => r,
            other => panic!("expected the adoption, got {other:?}"),
        }
    }

    fn message(&self, id: ConnId) -> Message {
        match self.event() {
            Ev::Msg(got, msg) if got == id => msg,
            other => panic!("expected a message of {id:?}, got {other:?}"),
        }
    }

    fn close_reason(&self, id: ConnId) -> String {
        match self.event() {
            Ev::Close(got, reason) if got == id => reason,
            other => panic!("expected on_close of {id:?}, got {other:?}"),
        }
    }

    /// No event within `wait`.
    fn quiet(&self, wait: Duration) {
        if let Ok(ev) = self.events.recv_timeout(wait) {
            panic!("unexpected event {ev:?}");
        }
    }

    fn shutdown(mut self, timeout: Duration) {
        self.handle.shutdown(timeout);
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            let _ = t.join();
        }
    }
}

/// The client side: a raw socket and a client-role protocol.
struct Client {
    stream: TcpStream,
    proto: Protocol,
}

impl Client {
    fn frames(&mut self, msgs: &[Message]) -> Vec<u8> {
        for m in msgs {
            self.proto.send(m.clone()).unwrap();
        }
        self.proto.output().take_all().concat()
    }

    fn send(&mut self, msgs: &[Message]) {
        let bytes = self.frames(msgs);
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next message (pings are answered by the protocol, not returned).
    fn recv(&mut self) -> io::Result<Message> {
        let mut buf = [0u8; 4096];
        loop {
            let polled = self.proto.poll_message();
            // Pongs and the close reply the protocol queued.
            let out = self.proto.output().take_all().concat();
            self.stream.write_all(&out)?;
            match polled {
                Ok(Some(Message::Ping(_))) => {}
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(io::Error::other(e)),
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                self.proto.notify_received(0);
                if let Ok(Some(m)) = self.proto.poll_message() {
                    return Ok(m);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.proto.receive(&buf[..n]);
        }
    }
}

fn text(s: &str) -> Message {
    Message::text(s)
}

/// Connects a client to `listener` and does the opening handshake by hand
/// on the server side. `early`: frames the client sends right behind its
/// request, in the same write (they end up read past the request head).
/// Returns the server's socket and protocol (holding the bytes read past
/// the head) and the client.
fn handshake(listener: &TcpListener, early: impl FnOnce(&mut Client) -> Vec<u8>) -> (TcpStream, Protocol, Client) {
    handshake_with(listener, Config::default(), early)
}

/// [`handshake`], the server's protocol with `config`.
fn handshake_with(listener: &TcpListener, config: Config, early: impl FnOnce(&mut Client) -> Vec<u8>) -> (TcpStream, Protocol, Client) {
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    let mut client = Client { stream, proto: Protocol::new(Role::Client, Config::default()) };
    let mut first = REQUEST.as_bytes().to_vec();
    first.extend(early(&mut client));
    client.stream.write_all(&first).unwrap();

    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (request, consumed) = loop {
        let n = server.read(&mut chunk).unwrap();
        assert!(n > 0, "the client left during its handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(r) = parse_request(&buf, &ServerConfig::default()).unwrap() {
            break r;
        }
    };
    let response = ServerPolicy::default().decide(&request).unwrap().response_bytes();
    server.write_all(&response).unwrap();
    let mut proto = Protocol::new(Role::Server, config);
    proto.receive(&buf[consumed..]);

    // The client reads the 101 (nothing else comes before it is adopted).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(client.stream.read(&mut byte).unwrap(), 1);
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    (server, proto, client)
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Leftover bytes already fed to the protocol (a whole frame and half of
/// the next), then the rest from the socket: every message arrives in
/// order, echo works, the closing handshake completes, on_close once.
#[test]
fn adopted_connection_delivers_leftover_bytes_then_socket_bytes_in_order() {
    let server = Server::start(Options::default(), true);
    let l = listener();
    let mut rest = Vec::new();
    let (stream, proto, mut client) = handshake(&l, |c| {
        let bytes = c.frames(&[text("one"), text("two")]);
        let split = bytes.len() - 3; // "two" is cut in its middle
        rest = bytes[split..].to_vec();
        bytes[..split].to_vec()
    });
    let id = server.adopt(stream, proto).unwrap();
    assert_eq!(server.message(id), text("one"));
    assert_eq!(client.recv().unwrap(), text("one"));
    client.stream.write_all(&rest).unwrap();
    assert_eq!(server.message(id), text("two"));
    assert_eq!(client.recv().unwrap(), text("two"));
    client.send(&[text("three"), Message::binary(vec![7u8; 100_000])]);
    assert_eq!(server.message(id), text("three"));
    assert_eq!(server.message(id), Message::binary(vec![7u8; 100_000]));
    assert_eq!(client.recv().unwrap(), text("three"));
    assert_eq!(client.recv().unwrap(), Message::binary(vec![7u8; 100_000]));

    client.proto.close(CloseCode::NORMAL, "done").unwrap();
    client.send(&[]);
    assert!(matches!(client.recv().unwrap(), Message::Close(_)));
    assert!(server.close_reason(id).starts_with("Closed"));
    server.quiet(Duration::from_millis(100));
}

/// `Ctx::writing`: false for a message read on its socket's event, true for
/// one delivered in the loop's writes (after `before_writes`): an adopted
/// connection's leftover bytes are, and so is what waits in its socket.
#[test]
fn ctx_writing_tells_messages_delivered_in_the_loops_writes() {
    let server = Server::start(Options::default(), false);
    let l = listener();
    let (stream, proto, mut client) = handshake(&l, |c| c.frames(&[text("leftover")]));
    let id = server.adopt(stream, proto).unwrap();
    assert_eq!(server.message(id), text("leftover"));
    client.send(&[text("read")]);
    assert_eq!(server.message(id), text("read"));
    assert_eq!(*server.writing.lock().unwrap(), [true, false]);
}

/// An adopted connection with no leftover bytes, echoing: the common case.
fn adopted(server: &Server, l: &TcpListener) -> (ConnId, Client) {
    let (stream, proto, client) = handshake(l, |_| Vec::new());
    (server.adopt(stream, proto).unwrap(), client)
}

/// A server with one adopted connection.
fn setup(options: Options, echo: bool) -> (Server, TcpListener, ConnId, Client) {
    let server = Server::start(options, echo);
    let l = listener();
    let (id, client) = adopted(&server, &l);
    (server, l, id, client)
}

/// Frames the client sent before the adoption wait in the socket: no new
/// edge comes for them. (Linux's `epoll_ctl(ADD)` reports the readiness
/// already there, and the loop also reads the socket once after adopting,
/// without waiting for an event: either alone passes this test.)
#[test]
fn data_already_in_the_socket_when_adopted_is_read() {
    let server = Server::start(Options::default(), true);
    let l = listener();
    let (stream, proto, mut client) = handshake(&l, |_| Vec::new());
    client.send(&[text("early"), text("bird")]);
    // Both frames are in the server socket's receive queue before it is adopted.
    let mut peek = [0u8; 64];
    stream.set_read_timeout(Some(STEP)).unwrap();
    while stream.peek(&mut peek).unwrap() < 2 * (2 + 4) + 5 + 4 {}
    let id = server.adopt(stream, proto).unwrap();
    assert_eq!(server.message(id), text("early"));
    assert_eq!(server.message(id), text("bird"));
    assert_eq!(client.recv().unwrap(), text("early"));
    assert_eq!(client.recv().unwrap(), text("bird"));
}

/// A loop driven by hand (`run_once`), for the wake tests.
fn manual() -> (EventLoop<Srv>, Srv, mpsc::Receiver<Ev>) {
    let lp = EventLoop::unbound(Options::default()).unwrap();
    let (_, cmds) = mpsc::channel();
    let (tx, events) = mpsc::channel();
    let srv = Srv { cmds, events: tx, wakes: Arc::default(), echo: false, rewake: None, writing: Arc::default() };
    (lp, srv, events)
}

#[test]
fn wake_from_another_thread_calls_on_wake() {
    let (mut lp, mut srv, _events) = manual();
    let handle = lp.handle();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        handle.wake();
    });
    // Blocks until the wake (no timer, no connection).
    lp.run_once(&mut srv, Some(STEP)).unwrap();
    assert_eq!(srv.wakes.load(Ordering::SeqCst), 1);
    t.join().unwrap();
    lp.run_once(&mut srv, Some(Duration::from_millis(20))).unwrap();
    assert_eq!(srv.wakes.load(Ordering::SeqCst), 1, "one wake, one call");
}

#[test]
fn thousand_wakes_before_the_loop_runs_give_one_on_wake() {
    let (mut lp, mut srv, _events) = manual();
    let handle = lp.handle();
    for _ in 0..1000 {
        handle.wake();
    }
    for _ in 0..3 {
        lp.run_once(&mut srv, Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(srv.wakes.load(Ordering::SeqCst), 1);
}

#[test]
fn wake_during_on_wake_is_not_lost() {
    let (mut lp, mut srv, _events) = manual();
    let handle = lp.handle();
    srv.rewake = Some(handle.clone());
    handle.wake();
    lp.run_once(&mut srv, Some(STEP)).unwrap();
    assert_eq!(srv.wakes.load(Ordering::SeqCst), 1);
    // The wake made inside on_wake gives another call, without waiting.
    let t = std::time::Instant::now();
    lp.run_once(&mut srv, Some(STEP)).unwrap();
    assert_eq!(srv.wakes.load(Ordering::SeqCst), 2);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn paused_connection_gets_no_message_until_resumed_then_all_in_order() {
    let (server, _, id, mut client) = setup(Options::default(), false);
    assert!(server.done(Cmd::Pause(id, true)));
    let msgs: Vec<Message> = (0..50).map(|i| text(&format!("m{i}"))).collect();
    client.send(&msgs);
    server.quiet(Duration::from_millis(150));
    assert!(server.done(Cmd::Pause(id, false)));
    for m in &msgs {
        assert_eq!(&server.message(id), m);
    }
    // Reading goes on as usual afterwards.
    client.send(&[text("after")]);
    assert_eq!(server.message(id), text("after"));
    // A dead id: false.
    client.proto.close(CloseCode::NORMAL, "").unwrap();
    client.send(&[]);
    assert!(server.close_reason(id).starts_with("Closed"));
    assert!(!server.done(Cmd::Pause(id, true)));
    assert!(!server.done(Cmd::NotifyDrained(id)));
}

/// The case that matters: the peer resets while reading is paused. No
/// edge will come again for it; on_close must come, at the latest when
/// reading resumes.
#[test]
fn peer_reset_while_paused_gives_on_close_after_resume() {
    let (server, l, id, mut client) = setup(Options::default(), false);
    let (other, mut other_client) = adopted(&server, &l);
    assert!(server.done(Cmd::Pause(id, true)));
    client.send(&[text("unread")]);
    // Unread data in the client's receive queue: closing it sends a reset.
    assert!(server.done(Cmd::Send(id, text("never read"))));
    thread::sleep(Duration::from_millis(50));
    drop(client);
    server.quiet(Duration::from_millis(100));
    assert!(server.done(Cmd::Pause(id, false)));
    // The message read before the reset is delivered, then the end.
    match server.event() {
        Ev::Msg(got, m) => {
            assert_eq!((got, m), (id, text("unread")));
            let reason = server.close_reason(id);
            assert!(reason.contains("ConnectionReset") || reason.starts_with("Io"), "{reason}");
        }
        Ev::Close(got, reason) => {
            assert_eq!(got, id);
            assert!(reason.contains("ConnectionReset") || reason.starts_with("Io"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    server.quiet(Duration::from_millis(50));
    // The other connection was not disturbed.
    other_client.send(&[text("still here")]);
    assert_eq!(server.message(other), text("still here"));
}

/// Timers run while paused: the idle timeout closes a paused connection
/// that sends nothing (its close frame is sent; the peer's answer would
/// wait unread, so the close timeout ends it).
#[test]
fn idle_timeout_closes_a_paused_connection() {
    let server = Server::start(Options::default(), false);
    let l = listener();
    let config = Config { idle_timeout: Some(Duration::from_millis(200)), close_timeout: Duration::from_millis(200), ..Config::default() };
    let (stream, proto, mut client) = handshake_with(&l, config, |_| Vec::new());
    let id = server.adopt(stream, proto).unwrap();
    assert!(server.done(Cmd::Pause(id, true)));
    let t = std::time::Instant::now();
    // The client gets the server's 1001.
    match client.recv().unwrap() {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::GOING_AWAY),
        other => panic!("{other:?}"),
    }
    let reason = server.close_reason(id);
    assert!(reason.contains("IdleTimeout") || reason.starts_with("Closed"), "{reason}");
    assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
}

#[test]
fn on_drained_comes_at_once_when_the_output_is_already_low() {
    let (server, _, id, _client) = setup(Options::default(), false);
    assert!(server.done(Cmd::NotifyDrained(id)));
    assert!(matches!(server.event(), Ev::Drained(got) if got == id));
    server.quiet(Duration::from_millis(50));
}

/// A client that does not read: the output stays over the low-water mark
/// and on_drained waits; once the client reads everything, one call.
#[test]
fn on_drained_comes_once_after_a_slow_reader_catches_up() {
    let options = Options { max_queued: 64 << 20, ..Options::default() };
    let (server, _, id, mut client) = setup(options, false);
    // 32 MiB: more than the loopback socket buffers take.
    let big = Message::binary(vec![1u8; 1 << 20]);
    for _ in 0..32 {
        assert!(server.done(Cmd::Send(id, big.clone())));
    }
    assert!(server.done(Cmd::NotifyDrained(id)));
    assert!(server.done(Cmd::NotifyDrained(id)), "asking twice gives one call");
    server.quiet(Duration::from_millis(100));
    for _ in 0..32 {
        assert_eq!(client.recv().unwrap(), big);
    }
    assert!(matches!(server.event(), Ev::Drained(got) if got == id));
    server.quiet(Duration::from_millis(50));
}

/// An unbound loop's shutdown closes adopted connections with 1001.
#[test]
fn unbound_shutdown_closes_adopted_connections_with_going_away() {
    let (server, l, id, mut client) = setup(Options::default(), false);
    let (paused, mut paused_client) = adopted(&server, &l);
    assert!(server.done(Cmd::Pause(paused, true)));
    server.handle.shutdown(Duration::from_secs(2));
    for c in [&mut client, &mut paused_client] {
        match c.recv().unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::GOING_AWAY),
            other => panic!("{other:?}"),
        }
    }
    let mut closed = vec![];
    for _ in 0..2 {
        match server.event() {
            Ev::Close(got, reason) => {
                assert!(reason.starts_with("Closed"), "{reason}");
                closed.push(got);
            }
            other => panic!("{other:?}"),
        }
    }
    closed.sort();
    let mut want = vec![id, paused];
    want.sort();
    assert_eq!(closed, want);
    server.shutdown(Duration::ZERO);
}

/// A socket with a pending reset and a descriptor that is not a socket are
/// refused with an error; the loop goes on serving the others.
#[test]
fn adopting_a_bad_socket_fails_without_disturbing_the_others() {
    let (server, l, id, mut client) = setup(Options::default(), true);

    // Reset by the peer before the adoption.
    let (stream, proto, gone) = handshake(&l, |_| Vec::new());
    let mut s2 = stream.try_clone().unwrap();
    s2.write_all(b"unread").unwrap();
    thread::sleep(Duration::from_millis(30));
    drop(gone);
    thread::sleep(Duration::from_millis(30));
    drop(s2);
    assert_eq!(server.adopt(stream, proto).unwrap_err(), io::ErrorKind::ConnectionReset);

    // Not a socket (epoll takes no regular file).
    let file = std::fs::File::open(env!("CARGO_MANIFEST_PATH")).unwrap();
    let fake = TcpStream::from(std::os::fd::OwnedFd::from(file));
    let err = server.adopt(fake, Protocol::new(Role::Server, Config::default())).unwrap_err();
    println!("adopting a regular file: {err:?}");

    client.send(&[text("fine")]);
    assert_eq!(server.message(id), text("fine"));
    assert_eq!(client.recv().unwrap(), text("fine"));
    server.quiet(Duration::from_millis(50));
}

/// `Ctx::close` on a paused connection resumes reading: the peer's answer
/// is read and the closing handshake completes (instead of waiting for the
/// close timeout, 5 s, with the answer unread in the kernel).
#[test]
fn close_resumes_reading_a_paused_connection() {
    let (server, _, id, mut client) = setup(Options::default(), false);
    assert!(server.done(Cmd::Pause(id, true)));
    let t = std::time::Instant::now();
    assert!(server.done(Cmd::Close(id)));
    // The client answers the close (`recv` writes the reply).
    assert!(matches!(client.recv().unwrap(), Message::Close(Some(f)) if f.code == CloseCode::NORMAL));
    assert!(server.close_reason(id).starts_with("Closed"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A handler that pauses a connection from its `on_message` stops the
/// messages behind it, even those decoded from the same read.
#[test]
fn pause_from_on_message_holds_the_rest_of_the_read() {
    let (server, _, id, mut client) = setup(Options::default(), false);
    client.send(&[text("a"), text("pause-me"), text("b"), text("c")]);
    assert_eq!(server.message(id), text("a"));
    assert_eq!(server.message(id), text("pause-me"));
    server.quiet(Duration::from_millis(150));
    assert!(server.done(Cmd::Pause(id, false)));
    assert_eq!(server.message(id), text("b"));
    assert_eq!(server.message(id), text("c"));
}

/// A connection handed over while the loop shuts down (the hand-over
/// raced the shutdown) is closed with 1001 too, not left open until the
/// deadline.
#[test]
fn connection_adopted_during_shutdown_is_closed_with_going_away() {
    // A client that never reads or answers keeps the shutdown running.
    let (server, l, _, mut silent) = setup(Options::default(), false);
    server.handle.shutdown(Duration::from_secs(1));
    // Its close frame has left: the shutdown is under way (read raw, so
    // that no reply ends it).
    let mut raw = [0u8; 64];
    assert!(silent.stream.read(&mut raw).unwrap() > 0);
    let (stream, proto, mut late) = handshake(&l, |_| Vec::new());
    let id = server.adopt(stream, proto).unwrap();
    match late.recv().unwrap() {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::GOING_AWAY),
        other => panic!("{other:?}"),
    }
    assert!(server.close_reason(id).starts_with("Closed"));
}

/// Regression: `shutdown` queued its 1001 close frames but wrote them only
/// after the next `epoll_wait` returned, so with quiet connections (no
/// event coming) they left at the deadline, and the shutdown always took
/// its whole timeout. They leave at once now.
#[test]
fn shutdown_close_frames_waited_for_the_deadline_on_quiet_connections() {
    let (server, _, id, mut client) = setup(Options::default(), false);
    let t = std::time::Instant::now();
    server.handle.shutdown(Duration::from_secs(3));
    match client.recv().unwrap() {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::GOING_AWAY),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1), "the close frame left after {:?}", t.elapsed());
    assert!(server.close_reason(id).starts_with("Closed"));
    server.shutdown(Duration::ZERO);
    assert!(t.elapsed() < Duration::from_secs(1), "the shutdown took {:?}", t.elapsed());
}
