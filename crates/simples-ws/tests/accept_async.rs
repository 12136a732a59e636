//! Asynchronous authorization over a real socket: the application reads the
//! validated request with `ServerHandshake::read`, `.await`s a lookup, then
//! accepts (choosing the subprotocol, adding a header) or refuses with a
//! status and a body.

mod common;

use common::*;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::tokio::{connect_with, Accept, ServerHandshake, AcceptOptions};
use simples_ws::{Config, Message};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

/// The users' "database": a token to a name, behind an async lock, read
/// after a delay like a remote lookup.
type Users = Arc<Mutex<HashMap<String, String>>>;

async fn lookup(users: &Users, token: Option<&str>) -> Option<String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    users.lock().await.get(token?).cloned()
}

/// A server that authorizes each connection against `users`; every
/// handshake's outcome (the user, or the error) is reported on the channel.
async fn server(users: Users) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Result<String, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let options = AcceptOptions { protocols: vec!["chat.v1".into(), "chat.v2".into()], ..Default::default() };
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (users, options, tx) = (users.clone(), options.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = match ServerHandshake::read(tcp, &options).await {
                    Ok(h) => h,
                    Err(e) => return tx.send(Err(e.to_string())).unwrap(),
                };
                let token = handshake.request().query().and_then(|q| q.strip_prefix("token="));
                let Some(user) = lookup(&users, token).await else {
                    let e = handshake.reject(401, "unknown token").await;
                    return tx.send(Err(e.to_string())).unwrap();
                };
                // The negotiated default is the client's first offer we
                // speak; this application prefers v2 when offered.
                let protocol = handshake.request().protocols().any(|p| p == "chat.v2").then(|| "chat.v2".to_owned());
                let accept = Accept { protocol, headers: vec![("X-User".into(), user.clone())], config: None };
                let (mut ws, _) = handshake.accept(accept).await.unwrap();
                tx.send(Ok(user.clone())).unwrap();
                while let Ok(msg) = ws.recv().await {
                    if let Message::Text(t) = msg {
                        let _ = ws.send(Message::text(format!("{user}: {}", t.as_str()))).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn async_check_accepts_with_its_choices_and_refuses_with_a_status() {
    bounded(async {
        let users: Users = Arc::new(Mutex::new(HashMap::from([("t1".to_owned(), "alice".to_owned())])));
        let (addr, mut outcomes) = server(users.clone()).await;

        // Accepted: the application's subprotocol and header are in the 101.
        let client = ClientConfig { protocols: vec!["chat.v1".into(), "chat.v2".into()], ..Default::default() };
        let (mut ws, response) = connect_with(&format!("ws://{addr}/chat?token=t1"), &client, Config::default()).await.unwrap();
        assert_eq!(response.header("Sec-WebSocket-Protocol"), Some("chat.v2"));
        assert_eq!(response.header("X-User"), Some("alice"));
        assert_eq!(step("outcome", outcomes.recv()).await.unwrap(), Ok("alice".to_owned()));
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(step("reply", ws.recv()).await.unwrap(), Message::text("alice: hi"));

        // Without v2 offered, the negotiated default stays.
        let client = ClientConfig { protocols: vec!["chat.v1".into()], ..Default::default() };
        let (_ws, response) = connect_with(&format!("ws://{addr}/chat?token=t1"), &client, Config::default()).await.unwrap();
        assert_eq!(response.header("Sec-WebSocket-Protocol"), Some("chat.v1"));
        assert_eq!(step("outcome", outcomes.recv()).await.unwrap(), Ok("alice".to_owned()));

        // Refused after the lookup: the application's status and body.
        let refused = raw_request(addr, upgrade_request("/chat?token=nope", &[]).as_bytes()).await;
        assert_eq!(refused.status(), 401, "{refused:?}");
        assert_eq!(refused.body_text(), "unknown token\n");
        let outcome = step("outcome", outcomes.recv()).await.unwrap().unwrap_err();
        assert!(outcome.contains("unknown token"), "{outcome}");

        // A user added meanwhile is found by the next handshake.
        users.lock().await.insert("t2".into(), "bob".into());
        let (mut ws, response) = connect_with(&format!("ws://{addr}/?token=t2"), &ClientConfig::default(), Config::default()).await.unwrap();
        assert_eq!(response.header("X-User"), Some("bob"));
        assert_eq!(step("outcome", outcomes.recv()).await.unwrap(), Ok("bob".to_owned()));
        assert_eq!(response.header("Sec-WebSocket-Protocol"), None);
        ws.send(Message::text("yo")).await.unwrap();
        assert_eq!(step("reply", ws.recv()).await.unwrap(), Message::text("bob: yo"));

        // A bad request never reaches the application: the rule answers.
        let bad = raw_request(addr, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
        assert_eq!(bad.status(), 400);
        assert!(bad.body_text().contains("Sec-WebSocket-Key"), "{bad:?}");
        let outcome = step("outcome", outcomes.recv()).await.unwrap().unwrap_err();
        assert!(outcome.contains("Sec-WebSocket-Key"), "{outcome}");
    })
    .await
}
