//! `EventHandler::before_writes`: called once per iteration after its
//! messages and before its writes, so work gathered over an iteration's
//! messages goes out in that same iteration. The handler here answers
//! nothing in `on_message`: it keeps the messages and sends them, with how
//! many it gathered, from `before_writes`. A client that writes several
//! messages at once gets them all back, in order, with no further event
//! to trigger the writes; and in one of the rounds they arrive together.
//! Each connection's answers are written at once (`Ctx::write_now`, or
//! `Ctx::send_batch` with pre-encoded frames): its output is empty right
//! after, before the iteration's own writes.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_before_writes`.

mod common;

use common::{client_frame, read_http_head, upgrade_request, LoopServer, OP_TEXT};
use simples_ws::event_loop::{ConnId, Ctx, EventHandler, Options};
use simples_ws::{Message, PreparedFrame};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Gathers the iteration's messages; sends them back from `before_writes`.
#[derive(Default)]
struct Gather {
    gathered: Vec<(ConnId, String)>,
    /// Bytes left in the outputs right after `write_now`, all rounds.
    left: Arc<AtomicUsize>,
    /// `write_now` (or `send_batch`) calls.
    written: Arc<AtomicUsize>,
    /// Answer with `send_batch` (pre-encoded frames) instead of `send`
    /// then `write_now`.
    batch: bool,
}

impl EventHandler for Gather {
    fn on_message(&mut self, _: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if let Message::Text(t) = msg {
            self.gathered.push((id, t.as_str().to_owned()));
        }
    }

    fn before_writes(&mut self, ctx: &mut Ctx<'_>) {
        let n = self.gathered.len();
        let Some(&(id, _)) = self.gathered.first() else { return };
        // One connection in this test: its answers leave at once.
        let left = if self.batch {
            let frames: Vec<PreparedFrame> = self
                .gathered
                .drain(..)
                .map(|(_, text)| PreparedFrame::new(&Message::text(format!("{text} of {n}"))).unwrap())
                .collect();
            ctx.send_batch(id, &frames)
        } else {
            for (id, text) in self.gathered.drain(..) {
                ctx.send(id, Message::text(format!("{text} of {n}")));
            }
            assert!(ctx.write_now(id));
            ctx.queued(id)
        };
        self.left.fetch_add(left.unwrap_or(usize::MAX / 2), Ordering::SeqCst);
        self.written.fetch_add(1, Ordering::SeqCst);
    }
}

/// Reads unmasked server text frames (small: 7-bit lengths) until `n`.
async fn read_texts(tcp: &mut tokio::net::TcpStream, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let mut head = [0u8; 2];
        common::step("a frame", tcp.read_exact(&mut head)).await.unwrap();
        assert_eq!(head[0], 0x81, "a final text frame");
        let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
        tcp.read_exact(&mut payload).await.unwrap();
        out.push(String::from_utf8(payload).unwrap());
    }
    out
}

#[tokio::test]
async fn what_before_writes_sends_goes_out_in_the_same_iteration() {
    gather_and_answer(false).await;
}

#[tokio::test]
async fn a_batch_of_prepared_frames_goes_out_in_one_go() {
    gather_and_answer(true).await;
}

async fn gather_and_answer(batch: bool) {
    let (left, written) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler = Gather { left: left.clone(), written: written.clone(), batch, ..Gather::default() };
    let server = LoopServer::start(Options::default(), handler);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(upgrade_request("/", &[]).as_bytes()).await.unwrap();
    assert_eq!(read_http_head(&mut tcp).await.unwrap().status(), 101);
    let mut together = false;
    for round in 0..20 {
        // Five messages in one write: one read on the server, most often.
        let mut burst = Vec::new();
        for i in 0..5 {
            burst.extend(client_frame(true, OP_TEXT, format!("{round}.{i}").as_bytes()));
        }
        tcp.write_all(&burst).await.unwrap();
        let got = read_texts(&mut tcp, 5).await;
        for (i, text) in got.iter().enumerate() {
            let (what, of) = text.split_once(" of ").unwrap();
            assert_eq!(what, format!("{round}.{i}"), "in order: {got:?}");
            together |= of == "5";
        }
    }
    assert!(together, "no round had its five messages in one iteration");
    assert!(written.load(Ordering::SeqCst) >= 4, "write_now was called for each gathered batch");
    assert_eq!(left.load(Ordering::SeqCst), 0, "write_now left bytes in the output");
    server.handle.stop();
}
