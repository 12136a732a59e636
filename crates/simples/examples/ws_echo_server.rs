//! Echoes every message on any path, on the framework's WebSocket hosts:
//! `echo_server` (the protocol crate's tokio driver) written as an
//! application writes it, so the Autobahn TestSuite checks this path too
//! (`scripts/autobahn --path host`).
//!
//! ```text
//! cargo run --release -p simples --example ws_echo_server -- 127.0.0.1:9001 [--threads N] [--no-deflate]
//! ```
//!
//! One host in plain mode on `/*` (which also matches `/`), echoing with
//! `conn.send(message)`: messages up to 64 MiB, any origin, no idle timeout,
//! permessage-deflate accepted from clients that offer it (Autobahn sections
//! 12 and 13) unless `--no-deflate`; every other option, the outgoing queue
//! limit (1 MiB) and the slow-client policy included, is the default.

#[path = "../../simples-ws/examples/common/echo.rs"]
mod echo;

use echo::{Args, Flag, MAX_MESSAGE};
use simples::ws::{DeflateConfig, Origins, WsOptions};
use simples::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).init();
    let args = Args::parse(&[Flag::Threads, Flag::NoDeflate])?;
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
