//! Templates: minijinja templates from a folder, rendered with serde data;
//! the same engine renders a message outside HTTP.
//!
//! `cargo run -p simples --example templates -- ./templates` (needs
//! `page.html` there; this example writes one to a temporary folder when
//! no folder is given).

use serde::Serialize;
use simples::{Conn, MiniJinja, Server, TemplateEngine};

#[derive(Serialize)]
struct Page {
    title: &'static str,
    items: Vec<&'static str>,
}

#[tokio::main]
async fn main() -> simples::Result<()> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let d = std::env::temp_dir().join("simples-templates-example");
            std::fs::create_dir_all(&d)?;
            std::fs::write(
                d.join("page.html"),
                "<h1>{{ title }}</h1><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>",
            )?;
            d
        }
    };
    let engine = MiniJinja::from_dir(&dir);
    // Outside HTTP, e.g. to build a WebSocket message:
    println!("{}", engine.render_with("page.html", &Page { title: "preview", items: vec!["a"] })?);

    let mut server = Server::new("127.0.0.1:8080");
    server.templates(engine);
    server.get("/", |conn: Conn| async move {
        conn.render("page.html", &Page { title: "simples", items: vec!["fast", "small"] })
    });
    server.start().await?.wait().await;
    Ok(())
}
