//! The server measured in BENCHMARKS.md ("Framework (HTTP)"): a plain-text
//! route and a static file, on one worker thread.
//!
//! `cargo run --release -p simples --example bench_hello -- 127.0.0.1:8080 ./dir`

use simples::{Conn, Server};

fn main() -> simples::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let dir = args.next().unwrap_or_else(|| ".".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async move {
        let mut server = Server::new(addr);
        server.get("/", |conn: Conn| async move { conn.send("Hello, World!") });
        server.serve_dir("/static", dir);
        server.start().await?.wait().await;
        Ok(())
    })
}
