//! Echoes every message on any path, on the framework's WebSocket hosts:
//! `echo_server` (the protocol crate's tokio driver) written as an
//! application writes it, so the Autobahn TestSuite checks this path too
//! (`scripts/autobahn --path host`).
//!
//! ```text
//! cargo run --release -p simples --example ws_echo_server -- 127.0.0.1:9001 [--threads N] [--no-deflate] [--stats]
//! ```
//!
//! One host in plain mode on `/*` (which also matches `/`), echoing with
//! `conn.send(message)`: messages up to 64 MiB, any origin, no idle timeout,
//! permessage-deflate accepted from clients that offer it (Autobahn sections
//! 12 and 13) unless `--no-deflate`; every other option, the outgoing queue
//! limit (1 MiB) and the slow-client policy included, is the default.
//!
//! With `--stats`, a plain `GET /_stats` (no upgrade) answers the live
//! counters instead, one `name=value` a line: `connections` (open WebSocket
//! connections, from the host's stats), `accepted`, `rejected`, and `tasks`
//! (the runtime's live tasks: the connection tasks, the accept loop, this
//! request's). `bench/soak/run` checks that they come back to their
//! baseline after a soak.

#[path = "../../simples-ws/examples/common/echo.rs"]
mod echo;

use echo::{Args, Flag, MAX_MESSAGE};
use simples::ws::{DeflateConfig, Origins, WsOptions};
use simples::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).init();
    let args = Args::parse(&[Flag::Threads, Flag::NoDeflate, Flag::Stats])?;
    let mut server = Server::new(&args.addr);
    let options = WsOptions {
        max_message_size: MAX_MESSAGE,
        origins: Origins::Any,
        idle_timeout: None,
        // permessage-deflate (RFC 7692) for clients that offer it.
        deflate: args.deflate.then(DeflateConfig::default),
        ..WsOptions::default()
    };
    let host = server.ws("/*", options, |_| async {});
    host.on_message(|conn, message| {
        // Never waits. It fails only when the connection is closing: there
        // is no one to answer then.
        let _ = conn.send(message);
        async {}
    });
    if args.stats {
        let host = host.clone();
        server.get("/_stats", move |_conn| {
            let stats = host.stats();
            let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
            let body = format!(
                "connections={}\naccepted={}\nrejected={}\ntasks={tasks}\n",
                stats.connections, stats.accepted, stats.rejected
            );
            async move { body }
        });
    }
    server.on_start(|addrs| {
        for addr in addrs {
            println!("ws_echo_server listening on ws://{addr}");
        }
    });
    args.runtime()?.block_on(async move {
        server.start().await?.wait().await;
        Ok(())
    })
}
