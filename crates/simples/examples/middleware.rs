//! Middlewares: timing every request, and an authentication step that
//! answers 401 itself or passes the user on to the handler.

use std::time::Instant;

use simples::{Conn, Next, Server};

#[derive(Clone)]
struct User(String);

#[tokio::main]
async fn main() -> simples::Result<()> {
    let mut server = Server::new("127.0.0.1:8080");
    server.middleware(|conn: Conn, next: Next| async move {
        let started = Instant::now();
        let mut res = next.run(conn).await;
        let ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0);
        res.headers_mut().insert("x-response-time", ms.parse().unwrap());
        res
    });
    server.middleware(|mut conn: Conn, next: Next| async move {
        let token = conn.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::to_string);
        match token {
            Some(user) => {
                conn.set_data(User(user));
                next.run(conn).await
            }
            None => {
                conn.set_status(401).set_header("www-authenticate", "Bearer");
                conn.send("login first")
            }
        }
    });
    server.get("/me", |conn: Conn| async move {
        let user = conn.data::<User>().map(|u| u.0.clone()).unwrap_or_default();
        conn.send(format!("hello {user}"))
    });
    server.start().await?.wait().await;
    Ok(())
}
