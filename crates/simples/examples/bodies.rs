//! Request bodies: JSON, urlencoded forms and multipart uploads, each
//! within a size limit (413 past it, 400 on bad input).

use serde::{Deserialize, Serialize};
use simples::{Conn, Server};

#[derive(Deserialize, Serialize)]
struct Message {
    from: String,
    text: String,
}

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.options_mut().body_limit = 256 * 1024;
    server.post("/json", |mut conn: Conn| async move {
        let msg: Message = conn.json().await?;
        Ok::<_, simples::Error>(conn.json_response(&msg))
    });
    server.post("/form", |mut conn: Conn| async move {
        let msg: Message = conn.form().await?;
        Ok::<_, simples::Error>(conn.send(format!("{} says {}", msg.from, msg.text)))
    });
    server.post("/upload", |mut conn: Conn| async move {
        conn.set_body_limit(10 * 1024 * 1024);
        let mut form = conn.multipart()?;
        let mut report = String::new();
        while let Some(field) = form.next_field().await? {
            let name = field.name().unwrap_or("?").to_string();
            let file = field.file_name().map(str::to_string);
            let size = field.bytes().await?.len();
            report.push_str(&format!("{name} {file:?}: {size} bytes\n"));
        }
        Ok::<_, simples::Error>(conn.send(report))
    });
    server.start().await?.wait().await;
    Ok(())
}
