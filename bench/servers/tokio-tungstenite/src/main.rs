//! tokio-tungstenite benchmark peer (see `bench/servers/README.md`).
//!
//! Batching: tungstenite's `write`/`SinkExt::feed` only queue a frame in
//! the write buffer (written out once it passes `write_buffer_size`,
//! 128 KiB by default) and `flush` writes it; its docs recommend queuing
//! several messages and flushing once (`SinkExt::send` flushes every
//! message). So echo replies are `feed`-ed and flushed only when no more
//! input is ready, the same policy as simples' `recv` + `feed`.
//!
//! Broadcast: a registry of per-subscriber unbounded mpsc senders, each with
//! a byte budget (`MAX_QUEUED`, as simples' `split(max_queued)`): the
//! publisher never waits; a subscriber whose budget is spent misses the
//! message (counted). tungstenite cannot share an encoded frame between
//! connections, so the payload (`Bytes`, shared) is framed per subscriber.

use bench_server_common::subscribers::Subscribers;
use bench_server_common::{self as common, Role, MAX_MESSAGE};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::rc::Rc;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};

type Registry = Rc<Subscribers<Message>>;

fn main() {
    common::run("tokio-tungstenite", serve());
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::bind(common::listen_addr()).await?;
    let subscribers: Registry = Rc::default();
    loop {
        let tcp = common::accept(&listener).await;
        let subscribers = subscribers.clone();
        tokio::task::spawn_local(async move {
            let _ = connection(tcp, &subscribers).await;
        });
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE))
}

async fn connection(tcp: TcpStream, subscribers: &Registry) -> Result<(), Error> {
    let mut path = String::new();
    // The callback's error type is tungstenite's (an HTTP response).
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config())).await?;
    match Role::for_path(&path) {
        Role::Echo => loop {
            // Take the next message if one is ready; otherwise write the
            // queued replies, then wait.
            let next = match ws.next().now_or_never() {
                Some(next) => next,
                None => {
                    ws.flush().await?;
                    ws.next().await
                }
            };
            match next {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => ws.feed(m).await?,
                Some(Ok(_)) => {} // pings are answered, closes echoed, by tungstenite
                Some(Err(Error::ConnectionClosed)) | None => return Ok(()),
                Some(Err(e)) => return Err(e),
            }
        },
        Role::Subscriber => {
            let (subscription, mut rx) = subscribers.subscribe();
            let budget = subscription.budget();
            async {
                loop {
                    tokio::select! {
                        m = rx.recv() => {
                            let Some(m) = m else { return Ok(()) };
                            let mut bytes = m.len();
                            ws.feed(m).await?;
                            while let Ok(m) = rx.try_recv() {
                                bytes += m.len();
                                ws.feed(m).await?;
                            }
                            ws.flush().await?;
                            budget.written(bytes);
                        }
                        m = ws.next() => match m {
                            Some(Ok(_)) => {}
                            Some(Err(Error::ConnectionClosed)) | None => return Ok(()),
                            Some(Err(e)) => return Err(e),
                        },
                    }
                }
            }
            .await
        }
        Role::Publisher => loop {
            match ws.next().await {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    // Text and Binary hold `Bytes`: the clone shares them.
                    subscribers.publish(m.len(), || m.clone());
                }
                Some(Ok(_)) => {}
                Some(Err(Error::ConnectionClosed)) | None => return Ok(()),
                Some(Err(e)) => return Err(e),
            }
        },
    }
}
