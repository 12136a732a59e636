//! `Config::max_control_frames_per_second` in the event loop, over a real
//! socket: pings under the limit in each one-second window keep the
//! connection open (the loop's timer ends each window), a flood past it is
//! closed with 1008.
//!
//! Run with `cargo test -p simples-ws --features mio --test event_loop_control_flood`.

mod common;

use common::{client_frame, read_frame, read_http_head, upgrade_request, LoopServer, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use simples_ws::event_loop::{ConnId, Ctx, EventHandler, Options};
use simples_ws::{Config, Message};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

struct Echo;

impl EventHandler for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if msg.is_data() {
            ctx.send(id, msg);
        }
    }
}

async fn pings(tcp: &mut tokio::net::TcpStream, n: usize) {
    let burst: Vec<u8> = (0..n).flat_map(|_| client_frame(true, OP_PING, b"p")).collect();
    tcp.write_all(&burst).await.unwrap();
}

#[tokio::test]
async fn pings_under_the_limit_pass_and_a_flood_is_closed_with_1008() {
    let options = Options { config: Config { max_control_frames_per_second: Some(50), ..Config::default() }, ..Options::default() };
    let server = LoopServer::start(options, Echo);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(upgrade_request("/", &[]).as_bytes()).await.unwrap();
    read_http_head(&mut tcp).await.unwrap();
    // 40 a window, three windows: 120 in all, never 50 in one.
    for _ in 0..3 {
        pings(&mut tcp, 40).await;
        for _ in 0..40 {
            assert_eq!(read_frame(&mut tcp).await.unwrap().opcode, OP_PONG);
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    tcp.write_all(&client_frame(true, OP_TEXT, b"open")).await.unwrap();
    let f = read_frame(&mut tcp).await.unwrap();
    assert_eq!((f.opcode, f.payload), (OP_TEXT, b"open".to_vec()));
    // A flood: 50 answered, then 1008.
    pings(&mut tcp, 200).await;
    let mut pongs = 0;
    let close = loop {
        let f = read_frame(&mut tcp).await.unwrap();
        if f.opcode != OP_PONG {
            break f;
        }
        pongs += 1;
    };
    assert_eq!((close.opcode, close.close_code()), (OP_CLOSE, Some(1008)), "{}", close.close_reason());
    assert_eq!(pongs, 50);
}
