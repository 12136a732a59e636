//! Sessions: a visit counter kept in a cookie-identified session, a login
//! that regenerates the id, a logout that destroys it.

use std::time::Duration;

use simples::{Conn, Server, SessionConfig};

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.options_mut().session = Some(SessionConfig::with_ttl(Duration::from_secs(30 * 60)));
    server.get("/", |mut conn: Conn| async move {
        let session = conn.session().await?;
        let visits: u64 = session.get("visits")?.unwrap_or(0) + 1;
        session.set("visits", &visits)?;
        let user: Option<String> = session.get("user")?;
        Ok::<_, simples::Error>(conn.send(format!("visit {visits} as {user:?}")))
    });
    server.get("/login/:name", |mut conn: Conn| async move {
        let session = conn.session().await?;
        session.regenerate();
        session.set("user", conn.param("name").unwrap_or_default())?;
        Ok::<_, simples::Error>(conn.redirect("/"))
    });
    server.get("/logout", |mut conn: Conn| async move {
        conn.session().await?.destroy();
        Ok::<_, simples::Error>(conn.redirect("/"))
    });
    server.start().await?.wait().await;
    Ok(())
}
