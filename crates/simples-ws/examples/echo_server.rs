//! Echoes every message on any path: text as text, binary as binary.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001 [--threads N] [--no-deflate]
//! ```
//!
//! Limits are large enough for the Autobahn TestSuite (messages and frames
//! up to 64 MiB). permessage-deflate is accepted from clients that offer
//! it (Autobahn sections 12 and 13), unless `--no-deflate`. One thread by
//! default, as the benchmarks compare servers on one core each. The same
//! echo on the other server paths: `loop_echo_server` (the event loop) and
//! the framework's `ws_echo_server`.

#[path = "common/echo.rs"]
mod echo;

use echo::{Args, Flag, MAX_MESSAGE};
use simples_ws::deflate::DeflateConfig;
use simples_ws::tokio::{accept, AcceptOptions};
use simples_ws::{Config, Message};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse(&[Flag::Threads, Flag::NoDeflate])?;
    args.runtime()?.block_on(serve(args.addr, args.deflate))
}

async fn serve(addr: String, deflate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(&addr).await?;
    let options = Arc::new(AcceptOptions {
        config: Config { max_frame_size: MAX_MESSAGE, max_message_size: MAX_MESSAGE, ..Config::default() },
        // permessage-deflate (RFC 7692) for clients that offer it.
        deflate: deflate.then(DeflateConfig::default),
        ..AcceptOptions::default()
    });
    println!("echo_server listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let options = options.clone();
        tokio::spawn(async move {
            if let Err(e) = echo(tcp, &options).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

async fn echo(tcp: TcpStream, options: &AcceptOptions) -> Result<(), simples_ws::tokio::Error> {
    tcp.set_nodelay(true)?;
    // `accept` keeps the handshake's state on the heap only while it runs,
    // so an idle connection's task holds just the `WebSocket`.
    let (mut ws, _) = accept(tcp, options).await?;
    loop {
        match ws.recv().await? {
            // `feed` queues the reply; `recv` writes everything queued
            // before it waits for more input, so replies leave in batches.
            m @ (Message::Text(_) | Message::Binary(_)) => ws.feed(m).await?,
            Message::Close(_) => return Ok(()),
            _ => {}
        }
    }
}
