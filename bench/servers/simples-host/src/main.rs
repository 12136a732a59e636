//! The benchmark server on the framework's WebSocket hosts (see
//! `bench/servers/README.md`): what an application written with `simples`
//! gets, as opposed to `bench/servers/simples`, which uses the protocol
//! crate's driver directly.
//!
//! - `Server::new(127.0.0.1:<port>)`, three WebSocket hosts in plain mode,
//!   any origin, messages up to 2 MiB, no idle timeout (so no pings);
//! - `/sub`: nothing to do on open: the host's own registry of open
//!   connections is the subscriber list;
//! - `/pub`: each message is broadcast to the `/sub` host
//!   (`WsHost::broadcast`: encoded once, the shared bytes queued on every
//!   subscriber's outbox, never waiting). A subscriber's outbox holds up to
//!   16 MiB; past that `SlowPolicy::DropNewest` drops the message for it
//!   and the host counts it (`WsHost::stats().dropped`);
//! - any other path (`/*`, which also matches `/`; fixed paths win over
//!   patterns): echo with `WsConn::send`. Its outbox holds up to 64 MiB
//!   (as the uWebSockets.js peer), so a pipelining client at the 2 MiB
//!   limit never sees a reply dropped; drops there would be counted too.
//!
//! With `REDIS_URL` set (`redis://...` or `redis-cluster://...`), the `/sub`
//! host scales out through a `RedisBackplane`: a broadcast from any node's
//! `/pub` reaches the subscribers of every node (the cross-node benchmark,
//! `bench/scaleout/run`).
//!
//! The drop count printed on SIGINT/SIGTERM is the sum of the hosts'
//! `stats().dropped` (plus, with Redis, the backplane's failed, dropped and
//! lost messages, which the load generator would also see as missing).

use std::sync::{Arc, OnceLock};

use bench_server_common::{self as common, MAX_MESSAGE, MAX_QUEUED};
use simples::ws::{Origins, Relay, SlowPolicy, WsOptions};
use simples::{RedisBackplane, RedisBackplaneOptions, Server, WsHost};

/// The hosts and the relay, for the count printed at the end.
type Counted = (Vec<WsHost>, Option<Relay>);

fn main() {
    let addr = common::listen_addr();
    let redis = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let counted: Arc<OnceLock<Counted>> = Arc::new(OnceLock::new());
    let slot = counted.clone();
    common::run_counting(
        "simples-host",
        async move {
            let relay = match redis {
                Some(url) => {
                    let backplane =
                        RedisBackplane::connect(RedisBackplaneOptions::new(url)).await.map_err(std::io::Error::other)?;
                    Some(Relay::new(backplane))
                }
                None => None,
            };
            let (server, hosts) = build(addr, relay.clone());
            let _ = slot.set((hosts, relay));
            let running = server.start().await.map_err(std::io::Error::other)?;
            running.wait().await;
            Ok(())
        },
        move || {
            let Some((hosts, relay)) = counted.get() else { return 0 };
            let mut dropped: u64 = hosts.iter().map(|h| h.stats().dropped).sum();
            if let Some(relay) = relay {
                let s = relay.stats();
                eprintln!("simples-host: backplane {s:?}");
                dropped += s.failed + s.dropped + s.lost;
            }
            dropped
        },
    );
}

fn build(addr: std::net::SocketAddr, relay: Option<Relay>) -> (Server, Vec<WsHost>) {
    let mut server = Server::new(addr);
    let plain = WsOptions {
        max_message_size: MAX_MESSAGE,
        origins: Origins::Any,
        idle_timeout: None,
        deflate: None,
        max_queued_messages: 1 << 20,
        slow_policy: SlowPolicy::DropNewest,
        ..WsOptions::default()
    };
    let subs = server.ws("/sub", WsOptions { max_queued_bytes: MAX_QUEUED, relay, ..plain.clone() }, |_| async {});
    let publisher = server.ws("/pub", WsOptions { max_queued_bytes: 64 << 20, ..plain.clone() }, |_| async {});
    {
        let subs = subs.clone();
        publisher.on_message(move |_, message| {
            subs.broadcast(message);
            async {}
        });
    }
    let echo = server.ws("/*", WsOptions { max_queued_bytes: 64 << 20, ..plain }, |_| async {});
    echo.on_message(|conn, message| {
        // Never waits; fails only when the connection is closing (nothing
        // to answer then) or the 64 MiB queue is full (counted as dropped).
        let _ = conn.send(message);
        async {}
    });
    (server, vec![subs, publisher, echo])
}
