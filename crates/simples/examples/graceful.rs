//! Start, restart and graceful stop: Ctrl-C stops accepting, lets running
//! requests finish (up to `shutdown_timeout`), then exits.

use std::time::Duration;

use simples::{Conn, Server};

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.server_options_mut().shutdown_timeout = Duration::from_secs(5);
    server.get("/slow", |conn: Conn| async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        conn.send("done")
    });
    server.on_start(|addrs| println!("started on {addrs:?}"));
    server.on_stop(|| println!("stopped"));
    let running = server.start().await?;
    running.restart().await?; // e.g. after reloading configuration
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
