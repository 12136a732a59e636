//! Virtual hosts: a main host, a named host and a wildcard host, each with
//! its own routes and options.
//!
//! `curl -H 'Host: api.example.com' localhost:8080/`

use simples::{Conn, Server};

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.get("/", |conn: Conn| async move { conn.send("main host") });

    let api = server.host("api.example.com");
    api.options_mut().body_limit = 64 * 1024;
    api.get("/", |conn: Conn| async move { conn.json_response(&["api", "v1"]) });

    server.host("*.example.com").get("/", |conn: Conn| async move {
        let name = conn.host().to_string();
        conn.send(format!("a subdomain: {name}"))
    });
    server.start().await?.wait().await;
    Ok(())
}
