//! The `futures` traits over real sockets: `WebSocket` as `Stream` and
//! `Sink` (with `forward`, `send_all`, `StreamExt::split`, `select_all`),
//! and the split `Receiver` as a `Stream`.

mod common;

use common::{bounded, spawn_reporting_server, step};
use futures_util::stream::{self, select_all};
use futures_util::{future, SinkExt as _, StreamExt as _, TryStreamExt as _};
use simples_ws::tokio::{accept, connect, AcceptOptions};
use simples_ws::{CloseCode, Message};

/// A server that echoes with `stream.forward(sink)`, the usual futures
/// idiom; reports how the forward ended.
async fn forward_echo_server() -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Result<(), String>>) {
    spawn_reporting_server(|tcp| async move {
        let (ws, _) = accept(tcp, &AcceptOptions::default()).await.map_err(|e| e.to_string())?;
        let (sink, stream) = futures_util::StreamExt::split(ws);
        // Data messages go back; the close is answered by the protocol.
        stream.try_filter(|m| future::ready(m.is_data())).forward(sink).await.map_err(|e| e.to_string())
    })
    .await
}

#[tokio::test]
async fn stream_and_sink_echo_then_end_after_the_close() {
    bounded(async {
        let (addr, mut outcomes) = forward_echo_server().await;
        let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        // send_all: feeds everything, flushes once.
        let mut batch = stream::iter((0..100).map(|i| Ok(Message::text(format!("m{i}")))));
        step("send_all", ws.send_all(&mut batch)).await.unwrap();
        let echoed: Vec<Message> = step("100 echoes", (&mut ws).take(100).try_collect()).await.unwrap();
        let expected: Vec<Message> = (0..100).map(|i| Message::text(format!("m{i}"))).collect();
        assert_eq!(echoed, expected);
        ws.feed(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        ws.flush().await.unwrap();
        assert_eq!(step("binary echo", ws.next()).await.unwrap().unwrap(), Message::binary(vec![1u8, 2, 3]));

        // Sink::close starts the closing handshake; the stream yields the
        // server's close, then ends.
        step("sink close", futures_util::SinkExt::close(&mut ws)).await.unwrap();
        match step("the server's close", ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::NORMAL),
            other => panic!("expected the close frame, got {other:?}"),
        }
        assert!(step("end of stream", ws.next()).await.is_none(), "the stream ends after the close");
        assert!(ws.next().await.is_none(), "and stays ended");
        assert!(ws.send(Message::text("late")).await.is_err(), "the sink refuses after the end");
        assert_eq!(step("server outcome", outcomes.recv()).await.unwrap(), Ok(()), "forward ended cleanly");
    })
    .await;
}

#[tokio::test]
async fn split_receiver_is_a_stream() {
    bounded(async {
        let (addr, _outcomes) = forward_echo_server().await;
        let (ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
        let (sender, mut receiver) = ws.split(1 << 20);
        for i in 0..10 {
            sender.send(Message::text(format!("r{i}"))).await.unwrap();
        }
        let got: Vec<Message> = step("10 echoes", (&mut receiver).take(10).try_collect()).await.unwrap();
        assert_eq!(got, (0..10).map(|i| Message::text(format!("r{i}"))).collect::<Vec<_>>());
        sender.close(CloseCode::NORMAL, "bye").await.unwrap();
        assert!(matches!(step("close", receiver.next()).await, Some(Ok(Message::Close(_)))));
        assert!(step("end", receiver.next()).await.is_none());
    })
    .await;
}

#[tokio::test]
async fn select_all_merges_connections() {
    bounded(async {
        let (addr, _outcomes) = forward_echo_server().await;
        let mut conns = Vec::new();
        for i in 0..3 {
            let (mut ws, _) = connect(&format!("ws://{addr}/")).await.unwrap();
            ws.send(Message::text(format!("from {i}"))).await.unwrap();
            conns.push(ws);
        }
        let merged: Vec<Message> = step("three echoes", select_all(conns).take(3).try_collect()).await.unwrap();
        let mut texts: Vec<String> =
            merged.iter().map(|m| String::from_utf8(m.payload().to_vec()).unwrap()).collect();
        texts.sort();
        assert_eq!(texts, ["from 0", "from 1", "from 2"]);
    })
    .await;
}
