//! Channel history in Redis (a real `redis-server`), shared by two nodes:
//! the same positions on both, recovery on the other node after a
//! reconnection, trimming by size, an epoch change when the history is
//! lost, and the replay/live boundary with publishers on both nodes while
//! a client moves between them.

#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::history::{join, offsets, read_through_reconnections, spawn_publishers};
use common::redis::RedisServer;
use common::ws::{connect, json, Client};
use serde_json::{json, Value};
use simples::ws::{HistoryOptions, Relay, WsHost, WsOptions};
use simples::{RedisBackplane, RedisBackplaneOptions, Running};

struct Node {
    running: Running,
    host: WsHost,
}

impl Node {
    async fn start(url: &str, size: usize) -> Node {
        let backplane = RedisBackplane::connect(RedisBackplaneOptions::new(url)).await.expect("backplane connects");
        let mut server = common::server();
        let options = WsOptions { relay: Some(Relay::new(backplane)), max_queued_messages: 1_000_000, ..WsOptions::object() };
        let host = server.ws("/h", options, |_| async {});
        host.history(move |_| Some(HistoryOptions { size, ttl: Duration::from_secs(3600) }));
        host.on_join(|_, _| async { Ok(()) });
        let running = common::start(server).await;
        Node { running, host }
    }

    async fn client(&self) -> Client {
        connect(self.running.local_addr(), "/h").await
    }
}

fn epoch_of(ack: &Value) -> String {
    ack["data"]["epoch"].as_str().unwrap_or_else(|| panic!("no epoch in {ack}")).to_string()
}

#[tokio::test]
async fn two_nodes_share_positions_and_a_client_recovers_on_the_other_node() {
    let Some(redis) = RedisServer::start() else { return };
    let url = redis.url();
    let (a, b) = (Node::start(&url, 5).await, Node::start(&url, 5).await);
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    let (_, ack_a) = join(&mut on_a, "room", None, 1).await;
    let (_, ack_b) = join(&mut on_b, "room", None, 1).await;
    let epoch = epoch_of(&ack_a);
    assert_eq!(epoch_of(&ack_b), epoch, "one epoch for every node");
    assert_eq!(ack_a["data"]["offset"], 0);

    // Published from either node: the same positions everywhere, the
    // publisher's own members included (the order between two nodes'
    // publications is the order Redis numbered them in).
    for n in 1..=4u64 {
        let node = if n % 2 == 1 { &a } else { &b };
        node.host.channel("room").broadcast_event("m", &n).unwrap();
    }
    let mut got = Vec::new();
    for ws in [&mut on_a, &mut on_b] {
        let mut seq = Vec::new();
        for n in 1..=4u64 {
            let m = json(ws).await;
            assert_eq!((&m["channel"], &m["epoch"], &m["offset"]), (&json!("room"), &json!(epoch), &json!(n)));
            seq.push(m["data"].as_u64().unwrap());
        }
        got.push(seq);
    }
    assert_eq!(got[0], got[1], "both nodes deliver in the same order");
    let mut sorted = got[0].clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 4]);
    // Channel::history from Redis, the same on both nodes.
    let from_b = b.host.channel("room").history(3).await.unwrap();
    assert_eq!(from_b.iter().map(|e| e.position.offset).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(from_b[0].message, simples::ws::Message::text(format!(r#"{{"event":"m","data":{}}}"#, got[0][1])));
    assert_eq!(a.host.channel("room").history(100).await.unwrap().len(), 4);

    // The client of A goes away at offset 4; two more are published on A;
    // it comes back on B.
    drop(on_a);
    a.host.channel("room").broadcast_event("m", &5).unwrap();
    a.host.channel("room").broadcast_event("m", &6).unwrap();
    assert_eq!(offsets(&[json(&mut on_b).await, json(&mut on_b).await]), [5, 6]);
    let mut again = b.client().await;
    let (replayed, ack) = join(&mut again, "room", Some((&epoch, 4)), 1).await;
    assert_eq!(offsets(&replayed), [5, 6]);
    assert_eq!(ack["data"], json!({ "channel": "room", "recovered": true, "epoch": epoch, "offset": 6 }));
    a.host.channel("room").broadcast_event("m", &7).unwrap();
    assert_eq!(json(&mut again).await["offset"], 7);

    // Size 5 holds 3..=7: from 1, message 2 is gone.
    let mut late = a.client().await;
    let (replayed, ack) = join(&mut late, "room", Some((&epoch, 1)), 1).await;
    assert!(replayed.is_empty());
    assert_eq!(ack["data"]["recovered"], false);
    assert_eq!(ack["data"]["offset"], 7);
    assert_eq!(offsets(&join(&mut late, "room2", None, 2).await.0), Vec::<u64>::new());

    // The history is lost (Redis emptied): a new epoch, offsets from 1.
    redis.cli(&["FLUSHALL"]);
    b.host.channel("room").broadcast_event("m", &1).unwrap();
    let m = json(&mut again).await;
    assert_eq!(m["offset"], 1);
    let new_epoch = m["epoch"].as_str().unwrap().to_string();
    assert_ne!(new_epoch, epoch);
    let mut lost = b.client().await;
    let (replayed, ack) = join(&mut lost, "room", Some((&epoch, 7)), 1).await;
    assert!(replayed.is_empty());
    assert_eq!(ack["data"], json!({ "channel": "room", "recovered": false, "epoch": new_epoch, "offset": 1 }));
    drop((on_b, again, late, lost));
    a.running.stop().await;
    b.running.stop().await;
}

/// Publishers on both nodes while a client moves from node to node,
/// recovering each time: it receives exactly the channel's sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_across_nodes_under_concurrent_publishers() {
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 1000;
    let Some(redis) = RedisServer::start() else { return };
    let url = redis.url();
    let nodes = [Node::start(&url, 100_000).await, Node::start(&url, 100_000).await];
    // A member on each node, so that both receive the channel.
    let mut watchers = Vec::new();
    for node in &nodes {
        let mut w = node.client().await;
        join(&mut w, "busy", None, 1).await;
        watchers.push(w);
    }
    let mut ws = nodes[0].client().await;
    let (_, ack) = join(&mut ws, "busy", None, 1).await;
    let epoch = epoch_of(&ack);
    let publishers = spawn_publishers(PUBLISHERS, EACH, |p| nodes[(p % 2) as usize].host.channel("busy"));
    let total = PUBLISHERS * EACH;
    let (seen, while_publishing, ws) =
        read_through_reconnections(ws, "busy", &epoch, total, (150, 41), &publishers, |round| nodes[round % 2].client())
            .await;
    for p in publishers {
        p.await.unwrap();
    }
    assert!(while_publishing >= 3, "only {while_publishing} recoveries while publishing");
    common::history::assert_sequence(&seen, total);
    common::history::assert_each_publisher_in_order(&seen, PUBLISHERS as usize);
    // The watchers (one per node) saw the same sequence.
    for w in &mut watchers {
        for n in 1..=total {
            assert_eq!(json(w).await["offset"], n);
        }
    }
    drop((ws, watchers));
    for node in nodes {
        node.running.stop().await;
    }
}
