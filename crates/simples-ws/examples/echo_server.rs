//! Echoes every message on any path: text as text, binary as binary.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001 [--threads N] [--no-deflate]
//! ```
//!
//! Limits are large enough for the Autobahn TestSuite (messages and frames
//! up to 64 MiB). permessage-deflate is accepted from clients that offer
//! it (Autobahn sections 12 and 13), unless `--no-deflate`. One thread by
//! default, as the benchmarks compare servers on one core each.

use simples_ws::deflate::DeflateConfig;
use simples_ws::tokio::{accept, ServerOptions};
use simples_ws::{Config, Message};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9001".to_string();
    let mut threads = 1usize;
    let mut deflate = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).ok_or("--threads takes a number")?,
            "--no-deflate" => deflate = false,
            a if !a.starts_with('-') => addr = a.to_string(),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    runtime.block_on(serve(addr, deflate))
}

async fn serve(addr: String, deflate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(&addr).await?;
    let options = Arc::new(ServerOptions {
        config: Config { max_frame_size: 64 << 20, max_message_size: 64 << 20, ..Config::default() },
        // permessage-deflate (RFC 7692) for clients that offer it.
        deflate: deflate.then(DeflateConfig::default),
        ..ServerOptions::default()
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

async fn echo(tcp: TcpStream, options: &ServerOptions) -> Result<(), simples_ws::tokio::Error> {
    tcp.set_nodelay(true)?;
    // Boxed: the handshake's state lives on the heap only while it runs,
    // so an idle connection's task holds just the `WebSocket`.
    let (mut ws, _) = Box::pin(accept(tcp, options)).await?;
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
