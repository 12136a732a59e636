//! A server in a few lines: fixed paths, parameters, wildcards, JSON.
//!
//! `cargo run -p simples --example hello`, then `curl localhost:8080/users/7`.

use simples::Server;

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.get("/", |conn| async move { conn.send("Hello, world") });
    server.get("/users/:id", |conn| async move {
        let id = conn.param("id").unwrap_or_default().to_string();
        let body = serde_json::json!({ "id": id, "languages": conn.languages() });
        conn.json_response(&body)
    });
    server.get("/files/*", |conn| async move {
        let rest = conn.param("*").unwrap_or_default().to_string();
        format!("you asked for {rest}")
    });
    server.on_start(|addrs| println!("listening on {addrs:?}"));
    server.start().await?.wait().await;
    Ok(())
}
