//! The simples-ws benchmark server (see `bench/servers/README.md`).
//!
//! - any path: echo with `recv` + `feed`: replies are queued and written in
//!   one batch when `recv` finds no more input ready;
//! - `/sub`: the connection is split; its bounded `Sender` joins the
//!   subscriber registry, the `Receiver` only waits for the close;
//! - `/pub`: each message is encoded once (`PreparedFrame`) and queued on
//!   every subscriber with `try_send_prepared`, which never waits: a full
//!   queue (a slow subscriber) drops the message for that subscriber and
//!   counts it; a subscriber leaves the registry when its connection ends.

use bench_server_common::{self as common, Role, MAX_MESSAGE, MAX_QUEUED};
use simples_ws::tokio::{accept, Sender, AcceptOptions};
use simples_ws::{Config, Message, PreparedFrame};
use slab::Slab;
use std::cell::RefCell;
use std::rc::Rc;
use tokio::net::{TcpListener, TcpStream};

type Registry = Rc<RefCell<Slab<Sender>>>;

fn main() {
    common::run("simples", serve());
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::bind(common::listen_addr()).await?;
    let options = Rc::new(AcceptOptions {
        config: Config { max_frame_size: MAX_MESSAGE, max_message_size: MAX_MESSAGE, ..Config::default() },
        ..AcceptOptions::default()
    });
    let subscribers: Registry = Rc::new(RefCell::new(Slab::new()));
    loop {
        let tcp = common::accept(&listener).await;
        let options = options.clone();
        let subscribers = subscribers.clone();
        tokio::task::spawn_local(async move {
            let _ = connection(tcp, &options, &subscribers).await;
        });
    }
}

async fn connection(
    tcp: TcpStream,
    options: &AcceptOptions,
    subscribers: &Registry,
) -> Result<(), simples_ws::tokio::Error> {
    let (mut ws, request) = accept(tcp, options).await?;
    match Role::for_path(request.path()) {
        Role::Echo => loop {
            match ws.recv().await? {
                // `feed` queues the reply; `recv` writes everything queued
                // before it waits for more input, so replies leave in batches.
                m @ (Message::Text(_) | Message::Binary(_)) => ws.feed(m).await?,
                Message::Close(_) => return Ok(()),
                _ => {}
            }
        },
        Role::Subscriber => {
            let (sender, mut receiver) = ws.split(MAX_QUEUED);
            let key = subscribers.borrow_mut().insert(sender);
            // A subscriber sends nothing; `recv` answers pings and closes.
            let result = loop {
                match receiver.recv().await {
                    Ok(Message::Close(_)) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            };
            subscribers.borrow_mut().try_remove(key);
            result
        }
        Role::Publisher => loop {
            match ws.recv().await? {
                m @ (Message::Text(_) | Message::Binary(_)) => {
                    let frame = PreparedFrame::new(&m)?;
                    for (_, sender) in subscribers.borrow().iter() {
                        // Never waits. A closed subscriber (Err) is skipped:
                        // its own task removes it from the registry.
                        if let Ok(false) = sender.try_send_prepared(&frame) {
                            common::count_drop();
                        }
                    }
                }
                Message::Close(_) => return Ok(()),
                _ => {}
            }
        },
    }
}
