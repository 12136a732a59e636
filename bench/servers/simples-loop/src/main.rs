//! The simples-ws benchmark server on the `event_loop` driver (see
//! `bench/servers/README.md`): one thread, one epoll loop, every connection
//! in one slab, no task per connection.
//!
//! - any path: echo with `Ctx::send`: replies are queued during the loop
//!   iteration and written with one `writev` per connection at its end;
//! - `/sub`: marked as a subscriber in a `Vec` indexed by `ConnId::index`;
//! - `/pub`: each message is encoded once (`PreparedFrame`) and queued on
//!   every subscriber with `Ctx::broadcast`, which skips (and counts) a
//!   subscriber with 16 MiB already waiting.
//!
//! The main thread only waits for SIGINT/SIGTERM (`common::run`, which
//! prints the drop count and exits); the loop runs on its own thread.
//! With `BENCH_THREADS=N` (N > 1), N loops on N threads share the port
//! (`Options::reuse_port`); each has its own subscribers, so a broadcast
//! reaches only those of the publisher's loop: for echo measurements only.

use bench_server_common::{self as common, Role, MAX_MESSAGE, MAX_QUEUED};
use simples_ws::event_loop::{Accept, CloseReason, ConnId, Ctx, EventLoop, EventHandler, Options, Request};
use simples_ws::handshake::HandshakeError;
use simples_ws::{Config, Message, PreparedFrame};

struct Bench {
    /// Each connection's role, indexed by `ConnId::index` (dense, reused).
    roles: Vec<Role>,
}

impl EventHandler for Bench {
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &Request) -> Result<Accept, HandshakeError> {
        let i = id.index();
        if i >= self.roles.len() {
            self.roles.resize(i + 1, Role::Echo);
        }
        self.roles[i] = Role::for_path(req.path());
        Ok(Accept::default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, msg: Message) {
        if !msg.is_data() {
            return;
        }
        match self.roles[id.index()] {
            Role::Echo => {
                ctx.send(id, msg);
            }
            Role::Subscriber => {}
            Role::Publisher => {
                let Ok(frame) = PreparedFrame::new(&msg) else { return };
                let roles = &self.roles;
                let r = ctx.broadcast(&frame, |c| roles[c.index()] == Role::Subscriber);
                for _ in 0..r.dropped {
                    common::count_drop();
                }
            }
        }
    }

    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, _: CloseReason) {
        self.roles[id.index()] = Role::Echo;
    }
}

fn main() {
    common::raise_nofile_limit();
    let options = Options {
        config: Config { max_frame_size: MAX_MESSAGE, max_message_size: MAX_MESSAGE, ..Config::default() },
        max_queued: MAX_QUEUED,
        ..Options::default()
    };
    let threads = common::threads();
    for _ in 0..threads {
        let options = Options { reuse_port: threads > 1, ..options.clone() };
        let mut lp: EventLoop<Bench> = match EventLoop::bind(common::listen_addr(), options) {
            Ok(lp) => lp,
            Err(e) => {
                eprintln!("simples-loop: {e}");
                std::process::exit(1);
            }
        };
        std::thread::spawn(move || {
            if let Err(e) = lp.run(Bench { roles: Vec::new() }) {
                eprintln!("simples-loop: {e}");
                std::process::exit(1);
            }
        });
    }
    common::run("simples-loop", std::future::pending());
}
