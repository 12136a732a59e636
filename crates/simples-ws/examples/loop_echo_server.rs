//! Echoes every message on any path, on the mio event loop (feature `mio`):
//! `echo_server` on the other driver, so the Autobahn TestSuite checks this
//! path too (`scripts/autobahn --path loop`).
//!
//! ```text
//! cargo run --release -p simples-ws --features mio --example loop_echo_server -- 127.0.0.1:9001
//! ```
//!
//! Messages and frames up to 64 MiB; one thread (the loop's). The loop does
//! not negotiate permessage-deflate yet, so a client offering it gets an
//! uncompressed connection (Autobahn sections 12 and 13 do not apply).
//! Replies are queued with `Ctx::send`, which takes a message of any size
//! while less than `Options::max_queued` (16 MiB) waits to be written.

#[path = "common/echo.rs"]
mod echo;

use echo::{Args, MAX_MESSAGE};
use simples_ws::event_loop::{ConnId, Ctx, EventLoop, EventHandler, Options};
use simples_ws::{Config, Message};

/// Sends every data message back.
struct Echo;

impl EventHandler for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if msg.is_data() {
            // `false` when the connection is closing, or closed by the
            // back-pressure rule (1008): nothing more to do either way.
            ctx.send(id, msg);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse(&[])?;
    let options = Options {
        config: Config { max_frame_size: MAX_MESSAGE, max_message_size: MAX_MESSAGE, ..Config::default() },
        ..Options::default()
    };
    let mut lp: EventLoop<Echo> = EventLoop::bind(args.addr.parse()?, options)?;
    println!("loop_echo_server listening on ws://{}", lp.local_addr()?);
    lp.run(Echo)?;
    Ok(())
}
