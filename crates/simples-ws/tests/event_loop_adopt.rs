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
use std::net::{Shutdown, TcpListener, TcpStream};
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
    Adopt(TcpStream, Protocol),
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
}

impl EventHandler for Srv {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
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
                    let _ = self.events.send(Ev::Adopted(ctx.adopt(stream, proto).map_err(|e| e.kind())));
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
    wakes: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(options: Options, echo: bool) -> Server {
        let mut lp = EventLoop::unbound(options).unwrap();
        assert_eq!(lp.local_addr().unwrap_err().kind(), io::ErrorKind::NotConnected);
        let handle = lp.handle();
        let (cmd_tx, cmds) = mpsc::channel();
        let (ev_tx, events) = mpsc::channel();
        let wakes = Arc::new(AtomicUsize::new(0));
        let srv = Srv { cmds, events: ev_tx, wakes: wakes.clone(), echo, rewake: None };
        let thread = thread::spawn(move || lp.run(srv).unwrap());
        Server { handle, cmds: cmd_tx, events, wakes, thread: Some(thread) }
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
        self.cmd(Cmd::Adopt(stream, proto));
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
            match self.proto.poll_message() {
                Ok(Some(Message::Ping(_))) => {
                    let out = self.proto.output().take_all().concat();
                    self.stream.write_all(&out)?;
                }
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
    let mut proto = Protocol::new(Role::Server, Config::default());
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
