//! Host options: compression (br, gzip, deflate), CORS with an origin
//! list, and an access log through `tracing`.

use simples::{AccessLog, Conn, Cors, Server};

#[tokio::main]
async fn main() -> simples::Result<()> {
    tracing_subscriber::fmt().init();
    let mut server = Server::new("127.0.0.1:8080");
    let options = server.options_mut();
    options.compression = true;
    options.cors = Some(Cors { credentials: true, ..Cors::origins(["http://localhost:3000"]) });
    options.log = Some(AccessLog::new(r#"{ip} "{method} {path}" {status} {bytes} {ms}ms"#));
    server.get("/data", |conn: Conn| async move { conn.json_response(&vec!["a long list"; 100]) });
    server.start().await?.wait().await;
    Ok(())
}
