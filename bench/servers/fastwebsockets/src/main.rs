//! fastwebsockets benchmark peer (see `bench/servers/README.md`): the
//! handshake is served by hyper 1 (`fastwebsockets::upgrade`), as the
//! crate's examples do.
//!
//! Batching: fastwebsockets has no queue-then-flush API: `write_frame`
//! writes each frame straight to the stream (one `write`, or one `writev`
//! for payloads over 1 KiB), and `read_frame` is not cancel-safe, so an echo
//! loop cannot ask "is more input ready?" before writing. Echo therefore
//! writes each reply as it goes, as the crate's examples do. A subscriber's
//! writer task does know when its queue is empty: it writes through a
//! `BufWriter` and flushes once per burst (`WebSocketWrite::flush` is there
//! for buffered streams).
//!
//! Broadcast: a registry of per-subscriber unbounded mpsc senders with a
//! byte budget (`MAX_QUEUED`, as simples' `split(max_queued)`); the
//! publisher never waits, a subscriber over budget misses the message
//! (counted). The payload is copied once into `Bytes` and shared; each
//! subscriber frames it (fastwebsockets cannot share an encoded frame).

use bench_server_common::subscribers::Subscribers;
use bench_server_common::{self as common, Role, MAX_MESSAGE};
use bytes::Bytes;
use fastwebsockets::upgrade::{upgrade, UpgradeFut};
use fastwebsockets::{FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::rc::Rc;
use tokio::net::TcpListener;

/// What a subscriber's writer task writes.
enum Out {
    /// A broadcast message: its opcode and payload.
    Data(OpCode, Bytes),
    /// A pong or close frame owed to the peer (auto-pong, auto-close).
    Control(OpCode, Vec<u8>),
}

type Registry = Rc<Subscribers<Out>>;

fn main() {
    common::run("fastwebsockets", serve());
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::bind(common::listen_addr()).await?;
    let subscribers: Registry = Rc::default();
    loop {
        let tcp = common::accept(&listener).await;
        let subscribers = subscribers.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |req| handle(req, subscribers.clone()));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
            let _ = conn.with_upgrades().await;
        });
    }
}

async fn handle(mut req: Request<Incoming>, subscribers: Registry) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let role = Role::for_path(req.uri().path());
    let (response, fut) = upgrade(&mut req)?;
    tokio::task::spawn_local(async move {
        let _ = connection(fut, role, &subscribers).await;
    });
    Ok(response)
}

fn to_bytes(payload: Payload<'_>) -> Bytes {
    match payload {
        Payload::Owned(v) => Bytes::from(v),
        Payload::Bytes(b) => b.freeze(),
        other => Bytes::copy_from_slice(&other),
    }
}

async fn connection(fut: UpgradeFut, role: Role, subscribers: &Registry) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    // fastwebsockets refuses frames of `max_message_size` bytes or more
    // (`>=`), the others only larger ones: + 1 accepts exactly 2 MiB. It
    // checks each frame, not the sum of a fragmented message's frames.
    ws.set_max_message_size(MAX_MESSAGE + 1);
    // auto_pong and auto_close are on by default.
    match role {
        Role::Echo => {
            let mut ws = FragmentCollector::new(ws);
            loop {
                let frame = ws.read_frame().await?;
                match frame.opcode {
                    OpCode::Text | OpCode::Binary => {
                        ws.write_frame(Frame::new(true, frame.opcode, None, frame.payload)).await?
                    }
                    OpCode::Close => return Ok(()),
                    _ => {}
                }
            }
        }
        Role::Publisher => {
            let mut ws = FragmentCollector::new(ws);
            loop {
                let frame = ws.read_frame().await?;
                match frame.opcode {
                    OpCode::Text | OpCode::Binary => {
                        let opcode = frame.opcode;
                        let payload = to_bytes(frame.payload);
                        subscribers.publish(payload.len(), || Out::Data(opcode, payload.clone()));
                    }
                    OpCode::Close => return Ok(()),
                    _ => {}
                }
            }
        }
        Role::Subscriber => {
            let (read, write) = ws.split(|io| {
                let (r, w) = tokio::io::split(io);
                (r, tokio::io::BufWriter::with_capacity(128 * 1024, w))
            });
            let mut read = FragmentCollectorRead::new(read);
            let (subscription, mut rx) = subscribers.subscribe();
            let (tx, budget) = (subscription.tx.clone(), subscription.budget());
            let writer = tokio::task::spawn_local(async move {
                let mut write = write;
                while let Some(first) = rx.recv().await {
                    let mut next = Some(first);
                    let mut bytes = 0;
                    let mut closing = false;
                    while let Some(out) = next.take().or_else(|| rx.try_recv().ok()) {
                        let res = match out {
                            Out::Data(opcode, payload) => {
                                bytes += payload.len();
                                write.write_frame(Frame::new(true, opcode, None, Payload::Borrowed(&payload))).await
                            }
                            Out::Control(opcode, payload) => {
                                closing |= opcode == OpCode::Close;
                                write.write_frame(Frame::new(true, opcode, None, Payload::Owned(payload))).await
                            }
                        };
                        if res.is_err() {
                            return;
                        }
                        if closing {
                            break;
                        }
                    }
                    if write.flush().await.is_err() || closing {
                        return;
                    }
                    budget.written(bytes);
                }
            });
            // A subscriber sends nothing; read until it closes, handing the
            // pongs and the close reply to the writer.
            let result = loop {
                let mut send = |frame: Frame<'_>| {
                    let sent = tx.send(Out::Control(frame.opcode, frame.payload.to_vec()));
                    std::future::ready(sent.map_err(|_| WebSocketError::ConnectionClosed))
                };
                match read.read_frame(&mut send).await {
                    Ok(frame) if frame.opcode == OpCode::Close => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            };
            drop(subscription);
            drop(tx);
            let _ = writer.await;
            result
        }
    }
}
