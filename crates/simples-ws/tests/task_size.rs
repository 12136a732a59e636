//! What a connection's task holds when written the way the README shows
//! (`accept(...).await`, then `recv`/`send` in a loop, or `connect`): the
//! handshake's state must not stay in the task's future for the
//! connection's whole life.

use std::mem::size_of_val;

use simples_ws::tokio::{accept, connect, AcceptOptions};
use simples_ws::Message;
use tokio::net::{TcpListener, TcpStream};

/// The README's server task.
async fn serve(tcp: TcpStream, options: AcceptOptions) {
    let Ok((mut ws, _request)) = accept(tcp, &options).await else { return };
    while let Ok(msg) = ws.recv().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                let _ = ws.send(msg).await;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}

/// The README's client.
async fn client(url: String) {
    let Ok((mut ws, _)) = connect(&url).await else { return };
    let _ = ws.send(Message::text("hello")).await;
    let _ = ws.recv().await;
}

/// Before the handshakes were boxed inside the library, the server task
/// was 6,440 B here (a 4 KiB refusal buffer and the request parser's state
/// lived in it for the connection's whole life) unless the caller boxed
/// `accept` itself, and the client's 1,816 B; then 1,064 B and 720 B (the
/// connection itself and the send in flight); 1,024 B and 672 B with the
/// protocol's rarely used state boxed.
#[tokio::test]
async fn regression_readme_style_tasks_stay_small() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server = serve(tcp, AcceptOptions::default());
    let client = client(format!("ws://{addr}/"));
    let (server_size, client_size) = (size_of_val(&server), size_of_val(&client));
    println!("server task future: {server_size} B, client: {client_size} B");
    assert!(server_size <= 1536, "the README-style server task holds {server_size} B");
    assert!(client_size <= 1536, "the README-style client task holds {client_size} B");
}
