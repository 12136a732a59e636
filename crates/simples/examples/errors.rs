//! Error routes: custom 404 and 500 pages, an application error with its
//! own status, and a panicking handler answered with 500.

use simples::{Conn, Error, Server};

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.get("/admin", |_conn: Conn| async move { Err::<simples::Response, _>(Error::new(403, "admins only")) });
    server.get("/bug", |_conn: Conn| async move {
        let empty: Vec<u8> = Vec::new();
        empty[1].to_string() // panics: the client gets a 500, the server keeps going
    });
    server.error(404, |conn: Conn| async move {
        let path = conn.path().to_string();
        conn.html(format!("<h1>Nothing at {path}</h1>"))
    });
    server.error(500, |conn: Conn| async move { conn.html("<h1>Sorry, something broke</h1>") });
    server.start().await?.wait().await;
    Ok(())
}
