//! The event loop's default `Options::max_queued` (256 KiB): a client that
//! never reads, under a broadcast, holds at most that much queued output
//! (its deliveries are dropped past it while a reading subscriber gets
//! every message), and a direct `send` to it past the limit closes it with
//! 1008.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_queue_limit`.

mod common;

use common::{read_frame, read_http_head, step, upgrade_request, LoopServer, OP_CLOSE};
use simples_ws::event_loop::{CloseReason, ConnId, Ctx, EventHandler, Options, Request};
use simples_ws::handshake::HandshakeError;
use simples_ws::tokio::connect;
use simples_ws::{Message, PreparedFrame};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt as _;

#[derive(Default)]
struct Seen {
    dropped: usize,
    max_queued: usize,
    /// `send` results of the `direct` command.
    direct: Vec<bool>,
    closes: Vec<String>,
}

/// `/sub` subscribes; a message from `/pub` is broadcast to the
/// subscribers, except `direct`, which is sent to each of them (twice)
/// with `send`.
#[derive(Default)]
struct Hub {
    subs: Vec<ConnId>,
    seen: Arc<Mutex<Seen>>,
}

impl EventHandler for Hub {
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<simples_ws::event_loop::Accept, HandshakeError> {
        if req.path() == "/sub" {
            self.subs.push(id);
        }
        Ok(Default::default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, _id: ConnId, msg: Message) {
        let mut seen = self.seen.lock().unwrap();
        if matches!(&msg, Message::Text(t) if t.as_str() == "direct") {
            // Twice: a queue just under the limit takes one more message.
            for &s in &self.subs {
                for _ in 0..2 {
                    let ok = ctx.send(s, Message::binary(vec![7u8; 32 << 10]));
                    seen.direct.push(ok);
                }
            }
            return;
        }
        let frame = PreparedFrame::new(&msg).unwrap();
        let subs = &self.subs;
        seen.dropped += ctx.broadcast(&frame, |c| subs.contains(&c)).dropped;
        for &s in subs {
            seen.max_queued = seen.max_queued.max(ctx.queued(s).unwrap_or(0));
        }
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, reason: CloseReason) {
        self.subs.retain(|s| *s != id);
        self.seen.lock().unwrap().closes.push(format!("{reason:?}"));
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_held_to_the_default_limit_and_cut_off_by_send() {
    const LIMIT: usize = 256 << 10;
    assert_eq!(Options::default().max_queued, LIMIT);
    let hub = Hub::default();
    let seen = hub.seen.clone();
    let server = LoopServer::start(Options::default(), hub);
    let url = |path: &str| format!("ws://{}{path}", server.addr);

    // The slow subscriber: completes its handshake, then reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(server.addr).await.unwrap();
    slow.write_all(upgrade_request("/sub", &[]).as_bytes()).await.unwrap();
    read_http_head(&mut slow).await.unwrap();
    let (mut fast, _) = step("fast sub", connect(&url("/sub"))).await.unwrap();
    let (mut publisher, _) = step("pub", connect(&url("/pub"))).await.unwrap();

    // 8 MiB of 16 KiB broadcasts: far past the limit and the kernel buffers.
    for i in 0..512u32 {
        let mut p = vec![(i % 251) as u8; 16 << 10];
        p[..4].copy_from_slice(&i.to_be_bytes());
        publisher.send(Message::binary(p.clone())).await.unwrap();
        let m = step("fast delivery", fast.recv()).await.unwrap();
        assert!(m == Message::binary(p), "message {i} reached the reading subscriber");
    }
    {
        let seen = seen.lock().unwrap();
        assert!(seen.dropped > 0, "the slow subscriber's deliveries were dropped");
        assert!(seen.max_queued <= LIMIT, "queue grew to {} bytes", seen.max_queued);
        println!("dropped {} deliveries; largest queue {} bytes (limit {LIMIT})", seen.dropped, seen.max_queued);
    }
    // A direct send past the limit: not queued, the connection is closed
    // with 1008, behind its backlog; the reading subscriber's sends go
    // through.
    publisher.send(Message::text("direct")).await.unwrap();
    for _ in 0..2 {
        let m = step("direct to fast", fast.recv()).await.unwrap();
        assert_eq!(m, Message::binary(vec![7u8; 32 << 10]));
    }
    assert_eq!(seen.lock().unwrap().direct, [true, false, true, true], "slow: one more, then refused; fast: both");
    // Reading at last, the slow client finds the close frame behind what
    // was queued.
    let close = loop {
        let f = step("the slow client's backlog", read_frame(&mut slow)).await.unwrap();
        if f.opcode == OP_CLOSE {
            break f;
        }
    };
    assert_eq!(close.close_code(), Some(1008), "{}", close.close_reason());
    assert_eq!(close.close_reason(), "send queue limit exceeded");
}
