//! HTTPS from PEM files, with a plain HTTP mirror serving the same routes.
//!
//! `cargo run -p simples --example https -- cert.pem key.pem`

use simples::{Conn, Server, Tls};

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut args = std::env::args().skip(1);
    let (cert, key) = (args.next().unwrap_or("cert.pem".into()), args.next().unwrap_or("key.pem".into()));
    let mut server = Server::https("127.0.0.1:8443", Tls::from_pem_files(cert, key)?);
    server.mirror("127.0.0.1:8080");
    server.get("/", |conn: Conn| async move {
        let scheme = if conn.is_secure() { "https" } else { "http" };
        conn.send(format!("hello over {scheme}"))
    });
    server.start().await?.wait().await;
    Ok(())
}
