//! Shared helpers for the socket-level integration tests (`tests/socket_*.rs`).
//!
//! Everything here talks to real TCP sockets on 127.0.0.1 (port 0). The raw
//! frame encoder and reader are written from RFC 6455 §5.2 directly and do
//! not use the crate's own frame code, so that the tests check the
//! implementation against an independent encoding.

#![allow(dead_code)]

pub mod shared;

use simples_ws::handshake::server::Request;
use simples_ws::tokio::{accept_with, Accept, Error, AcceptOptions, WebSocket};
use simples_ws::Message;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Upper bound for a whole test: nothing may hang longer than this.
pub const TEST_LIMIT: Duration = Duration::from_secs(10);
/// Upper bound for one expected network event (a frame, a response, EOF).
pub const STEP: Duration = Duration::from_secs(3);

/// The RFC 6455 §1.3 sample key and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Runs a test body under [`TEST_LIMIT`].
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, f).await.expect("test exceeded its time limit")
}

/// Awaits `f` for at most [`STEP`], panicking with `what` otherwise.
pub async fn step<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for: {what}"),
    }
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// Like [`spawn_server`], for servers whose test needs each connection's
/// outcome: `handler`'s result for every connection arrives on the
/// returned channel, in the order the connections finish.
pub async fn spawn_reporting_server<T, F, Fut>(handler: F) -> (SocketAddr, mpsc::UnboundedReceiver<T>)
where
    T: Send + 'static,
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = std::sync::Arc::new(handler);
    let addr = spawn_server(move |tcp| {
        let tx = tx.clone();
        let handler = handler.clone();
        async move {
            let _ = tx.send(handler(tcp).await);
        }
    })
    .await;
    (addr, rx)
}

/// Spawns an accept loop on 127.0.0.1:0 that runs `handler` in its own task
/// for every TCP connection. Returns the bound address. The loop lives until
/// the test's runtime shuts down.
pub async fn spawn_server<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // A backlog of 1024, as the event loop's and the framework's listeners
    // (`TcpListener::bind` uses 128): a test's burst of connects (200 in
    // `burst_of_connections_dropped_mid_handshake`) must not overflow it
    // while the accept loop shares two threads with the clients, or the
    // dropped SYNs retry after 1 s, then 3 s, past a step's limit.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let listener = socket.listen(1024).expect("listen");
    let addr = listener.local_addr().expect("local_addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(handler(tcp));
        }
    });
    addr
}

/// A raw server for one connection of our client: completes the handshake
/// (answering the request's key), then runs `script` on the TCP stream.
pub async fn raw_ws_server<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let req = read_http_head(&mut tcp).await.unwrap();
        let key = req.header("Sec-WebSocket-Key").unwrap();
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            simples_ws::handshake::accept_key(key.as_bytes())
        );
        tcp.write_all(resp.as_bytes()).await.unwrap();
        script(tcp).await;
    });
    addr
}

/// What a test server reports about its connections.
#[derive(Debug)]
pub enum Event {
    /// `accept_with` failed (the HTTP error response was already written).
    HandshakeFailed(Error),
    /// The handshake succeeded with this request.
    Accepted(Request),
    /// `recv` returned this message (data, ping, pong).
    Received(Message),
    /// The connection ended: `recv` returned `Message::Close` or an error.
    Ended(Result<Message, Error>),
}

/// A spawned server plus the events its connections report.
pub struct TestServer {
    pub addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The next event, within [`STEP`].
    pub async fn next_event(&mut self) -> Event {
        step("a server event", self.events.recv()).await.expect("server event channel closed")
    }

    /// Skips events until a connection ends; returns how it ended.
    pub async fn ended(&mut self) -> Result<Message, Error> {
        loop {
            if let Event::Ended(r) = self.next_event().await {
                return r;
            }
        }
    }

    /// Skips events until a handshake fails; returns the error.
    pub async fn handshake_failed(&mut self) -> Error {
        loop {
            if let Event::HandshakeFailed(e) = self.next_event().await {
                return e;
            }
        }
    }

    /// Data messages received before the connection ended, and the end.
    pub async fn messages_until_end(&mut self) -> (Vec<Message>, Result<Message, Error>) {
        let mut got = Vec::new();
        loop {
            match self.next_event().await {
                Event::Received(m) => got.push(m),
                Event::Ended(r) => return (got, r),
                _ => {}
            }
        }
    }
}

/// Receives in a loop, echoing text and binary messages (with `feed`, as the
/// echo example does) and reporting everything to `tx`.
pub async fn echo_loop<S>(mut ws: WebSocket<S>, tx: &mpsc::UnboundedSender<Event>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.recv().await {
            Ok(m @ Message::Close(_)) => {
                let _ = tx.send(Event::Ended(Ok(m)));
                return;
            }
            Ok(m) => {
                if matches!(m, Message::Text(_) | Message::Binary(_)) {
                    if let Err(e) = ws.feed(m.clone()).await {
                        let _ = tx.send(Event::Ended(Err(e)));
                        return;
                    }
                }
                let _ = tx.send(Event::Received(m));
            }
            Err(e) => {
                let _ = tx.send(Event::Ended(Err(e)));
                return;
            }
        }
    }
}

/// An echo server with `options`; every connection is accepted.
pub async fn echo_server(options: AcceptOptions) -> TestServer {
    echo_server_with(options, |_| Ok(Accept::default())).await
}

/// An [`echo_server`] with `options` and a raw client connected to it
/// with [`raw_connect`].
pub async fn echo_server_and_raw_client(options: AcceptOptions) -> (TestServer, TcpStream) {
    let server = echo_server(options).await;
    let tcp = raw_connect(server.addr).await;
    (server, tcp)
}

/// An echo server whose handshakes are decided by `check`.
pub async fn echo_server_with<C>(options: AcceptOptions, check: C) -> TestServer
where
    C: Fn(&Request) -> Result<Accept, simples_ws::handshake::HandshakeError> + Send + Sync + 'static,
{
    let (tx, events) = mpsc::unbounded_channel();
    let options = Arc::new(options);
    let check = Arc::new(check);
    let addr = spawn_server(move |tcp| {
        let tx = tx.clone();
        let options = options.clone();
        let check = check.clone();
        async move {
            match accept_with(tcp, &options, |req| check(req)).await {
                Ok((ws, req)) => {
                    let _ = tx.send(Event::Accepted(req));
                    echo_loop(ws, &tx).await;
                }
                Err(e) => {
                    let _ = tx.send(Event::HandshakeFailed(e));
                }
            }
        }
    })
    .await;
    TestServer { addr, events }
}

// ---------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------

/// A valid upgrade request for `path` with the sample key and extra header
/// lines (each without CRLF).
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        r.push_str(line);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A parsed HTTP response head (and body, when read with
/// [`read_http_response`]).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn status(&self) -> u16 {
        self.status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads an HTTP head byte by byte (so no byte after it is consumed).
pub async fn read_http_head<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<HttpResponse> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if r.read(&mut b).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("EOF inside HTTP head: {:?}", String::from_utf8_lossy(&head)),
            ));
        }
        head.push(b[0]);
        assert!(head.len() < 64 * 1024, "HTTP head too long");
    }
    let text = String::from_utf8(head).expect("HTTP head is not UTF-8");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Ok(HttpResponse { status_line, headers, body: Vec::new() })
}

/// Reads an HTTP response head and its `Content-Length` body.
pub async fn read_http_response<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<HttpResponse> {
    let mut resp = read_http_head(r).await?;
    let len: usize = resp.header("Content-Length").map(|v| v.parse().expect("Content-Length")).unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    resp.body = body;
    Ok(resp)
}

/// Sends `request` on a new connection and returns the server's complete
/// response (head and body), then checks that the server closes.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The server may reject (and close) before it has read everything.
    let _ = tcp.write_all(request).await;
    let resp = step("HTTP response", read_http_response(&mut tcp)).await.expect("read HTTP response");
    expect_closed(&mut tcp).await;
    resp
}

/// Opens a raw connection and completes a valid handshake for `path`
/// (checking the 101 and the accept value), with extra request header lines.
pub async fn raw_connect_with(addr: SocketAddr, path: &str, extra: &[&str]) -> (TcpStream, HttpResponse) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(upgrade_request(path, extra).as_bytes()).await.expect("write request");
    let resp = step("101 response", read_http_head(&mut tcp)).await.expect("read 101");
    assert_eq!(resp.status_line, "HTTP/1.1 101 Switching Protocols", "{resp:?}");
    assert_eq!(resp.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    (tcp, resp)
}

/// [`raw_connect_with`] on `/` without extra headers.
pub async fn raw_connect(addr: SocketAddr) -> TcpStream {
    raw_connect_with(addr, "/", &[]).await.0
}

// ---------------------------------------------------------------------------
// Raw frames (RFC 6455 §5.2), independent of the crate's encoder
// ---------------------------------------------------------------------------

static KEY_SEED: AtomicU32 = AtomicU32::new(0x9e37_79b9);

/// A fresh masking key (xorshift; every byte non-zero often enough to make
/// a missing unmask obvious).
pub fn next_key() -> [u8; 4] {
    let mut x = KEY_SEED.fetch_add(0x6d2b_79f5, Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    (x | 0x0101_0101).to_be_bytes()
}

/// XORs `data` with `key`, starting at payload offset `offset`.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

/// A frame header (RFC 6455 §5.2): FIN/RSV/opcode, minimal length encoding,
/// mask key if any.
pub fn frame_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.push((if fin { 0x80 } else { 0 }) | ((rsv & 0x7) << 4) | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= u16::MAX as u64 {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    out
}

/// A complete frame; masked with `mask` if given.
pub fn encode_frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    encode_frame_rsv(fin, 0, opcode, mask, payload)
}

/// A complete frame with RSV bits `rsv` (0 to 7, RSV1 the highest);
/// masked with `mask` if given.
pub fn encode_frame_rsv(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(fin, rsv, opcode, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut out[start..], k, 0);
    }
    out
}

/// A masked client frame (FIN set unless `fin` is false).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(fin, opcode, Some(next_key()), payload)
}

/// An unmasked server frame.
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(fin, opcode, None, payload)
}

/// A close payload: big-endian code, then the reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// One frame as read from the wire (payload already unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame with a body.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    pub fn close_reason(&self) -> String {
        String::from_utf8_lossy(self.payload.get(2..).unwrap_or_default()).into_owned()
    }
}

/// Reads exactly one frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<RawFrame> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await?;
    let fin = h[0] & 0x80 != 0;
    let rsv = (h[0] >> 4) & 0x7;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            u16::from_be_bytes(b) as u64
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => n as u64,
    };
    let key = if masked {
        let mut k = [0u8; 4];
        r.read_exact(&mut k).await?;
        Some(k)
    } else {
        None
    };
    assert!(len <= 64 << 20, "implausible frame length {len}");
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if let Some(k) = key {
        apply_mask(&mut payload, k, 0);
    }
    Ok(RawFrame { fin, rsv, opcode, masked, payload })
}

/// Reads one frame within [`STEP`], panicking on error or timeout.
pub async fn expect_frame<R: AsyncRead + Unpin>(r: &mut R) -> RawFrame {
    step("a frame", read_frame(r)).await.expect("read frame")
}

/// Reads one frame and checks that it is an unmasked close with `code`.
pub async fn expect_close<R: AsyncRead + Unpin>(r: &mut R, code: u16) -> RawFrame {
    let f = expect_frame(r).await;
    assert_eq!(f.opcode, OP_CLOSE, "expected a close frame, got {f:?}");
    assert_eq!(f.close_code(), Some(code), "close frame {f:?} (reason {:?})", f.close_reason());
    f
}

/// Checks that the peer closes its side within [`STEP`] without sending
/// anything more: end of stream, or a reset (a close with unread input).
pub async fn expect_closed<R: AsyncRead + Unpin>(r: &mut R) {
    let mut buf = [0u8; 256];
    match step("end of stream", r.read(&mut buf)).await {
        Ok(0) => {}
        Ok(n) => panic!("expected end of stream, got {n} more bytes: {:?}", &buf[..n]),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected end of stream, got {e}"),
    }
}

/// Writes `bytes` one at a time with `delay` between them.
pub async fn write_slowly(tcp: &mut TcpStream, bytes: &[u8], delay: Duration) -> io::Result<()> {
    for b in bytes {
        tcp.write_all(std::slice::from_ref(b)).await?;
        tcp.flush().await?;
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

/// A deterministic payload of `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A deterministic ASCII/multibyte text of exactly `len` bytes.
pub fn text_of_len(len: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut i = 0usize;
    while s.len() < len {
        // Mix in 2- and 3-byte characters while there is room for them.
        let c = match i % 7 {
            3 if len - s.len() >= 2 => 'é',
            5 if len - s.len() >= 3 => '€',
            _ => (b'a' + (i % 26) as u8) as char,
        };
        s.push(c);
        i += 1;
    }
    assert_eq!(s.len(), len);
    s
}

/// Makes dropping `tcp` send a reset instead of a FIN (SO_LINGER 0). A zero
/// linger never blocks on drop, which is what tokio's deprecation is about.
#[allow(deprecated)]
pub fn reset_on_drop(tcp: &TcpStream) {
    tcp.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
}

/// An event loop (`simples_ws::event_loop`) on a thread of its own, for
/// the `event_loop_*` tests; stopped and joined on drop.
#[cfg(feature = "mio")]
pub struct LoopServer {
    pub addr: SocketAddr,
    pub handle: simples_ws::event_loop::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "mio")]
impl LoopServer {
    /// Binds 127.0.0.1:0 and runs `handler` until stopped.
    pub fn start<H>(options: simples_ws::event_loop::Options, handler: H) -> LoopServer
    where
        H: simples_ws::event_loop::EventHandler + Send + 'static,
    {
        let mut lp = simples_ws::event_loop::EventLoop::bind("127.0.0.1:0".parse().unwrap(), options).unwrap();
        let addr = lp.local_addr().unwrap();
        let handle = lp.handle();
        let thread = Some(std::thread::spawn(move || lp.run(handler).unwrap()));
        LoopServer { addr, handle, thread }
    }

    /// True once the loop's thread has ended (`run` returned), waiting up
    /// to `limit`.
    pub async fn ended_within(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.thread.as_ref().map_or(true, |t| t.is_finished()) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(feature = "mio")]
impl Drop for LoopServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads an HTTP response head (through the blank line) from a blocking
/// socket.
pub fn read_head_blocking(tcp: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut b).expect("read the response head"), 1, "EOF inside the head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Client `i` sent the text `m{i}`: reads each client's echo (an unmasked
/// text frame) and checks it.
pub fn expect_numbered_echoes(clients: &mut [std::net::TcpStream]) {
    use std::io::Read;
    for (i, tcp) in clients.iter_mut().enumerate() {
        let want = server_frame(true, OP_TEXT, format!("m{i}").as_bytes());
        let mut got = vec![0u8; want.len()];
        tcp.read_exact(&mut got).unwrap();
        assert_eq!(got, want, "echo of client {i}");
    }
}
