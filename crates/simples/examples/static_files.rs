//! Serving a directory: content types, ETag/304, ranges, an index file, no
//! path traversal.
//!
//! `cargo run -p simples --example static_files -- ./public`

use simples::{Server, StaticOptions};

#[tokio::main]
async fn main() -> simples::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let mut server = Server::new("127.0.0.1:8080");
    // Everything under /static, with an index.html for directories.
    server.serve_dir("/static", &dir);
    // The same files at the root, cached for an hour, no index.
    server.serve_dir_with("/", &dir, StaticOptions { index: None, max_age: Some(3600), ..StaticOptions::default() });
    server.start().await?.wait().await;
    Ok(())
}
