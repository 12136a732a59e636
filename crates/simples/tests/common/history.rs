//! Channel history helpers: `@join` from a position over a raw client.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use simples::ws::Channel;
use tokio::task::JoinHandle;

use super::ws::{json, send_json, Client};

/// Sends `@join` (with `since`) and reads up to its ack: the messages
/// before it, and the ack.
pub async fn join(ws: &mut Client, channel: &str, since: Option<(&str, u64)>, id: u64) -> (Vec<Value>, Value) {
    let since = since.map(|(epoch, offset)| json!({ "epoch": epoch, "offset": offset }));
    send_json(ws, json!({ "event": "@join", "data": { "channel": channel, "since": since }, "id": id })).await;
    let mut before = Vec::new();
    loop {
        let v = json(ws).await;
        if v["ack"] == id {
            return (before, v);
        }
        before.push(v);
    }
}

/// The offsets of channel messages.
pub fn offsets(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| m["offset"].as_u64().expect("a position")).collect()
}

/// `messages` are exactly offsets 1..=total, in order (panics at the
/// first difference, with what surrounds it).
pub fn assert_sequence(messages: &[Value], total: u64) {
    let got = offsets(messages);
    for (i, offset) in got.iter().enumerate() {
        if *offset != i as u64 + 1 {
            let around = &got[i.saturating_sub(5)..(i + 5).min(got.len())];
            panic!("position {i}: offset {offset} where {} was due (around: {around:?})", i + 1);
        }
    }
    assert_eq!(got.len() as u64, total, "messages missing at the end");
}

/// Every message's data is `[publisher, index]`: each publisher's messages
/// arrive in the order it sent them (0, 1, 2, ...), none missing between.
pub fn assert_each_publisher_in_order(messages: &[Value], publishers: usize) {
    let mut next = vec![0u64; publishers];
    for m in messages {
        let (p, i) = (m["data"][0].as_u64().unwrap() as usize, m["data"][1].as_u64().unwrap());
        assert_eq!(i, next[p], "publisher {p} out of order");
        next[p] += 1;
    }
}

/// Publishers `0..publishers`, each a task that broadcasts `each` events
/// `[p, i]` (`i` in order) on the channel `channel(p)` gives, pausing a
/// millisecond every fourth.
pub fn spawn_publishers(publishers: u64, each: u64, channel: impl Fn(u64) -> Channel) -> Vec<JoinHandle<()>> {
    (0..publishers)
        .map(|p| {
            let channel = channel(p);
            tokio::spawn(async move {
                for i in 0..each {
                    channel.broadcast_event("m", &json!([p, i])).unwrap();
                    if i % 4 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect()
}

/// Reads `total` messages of channel `channel` (of epoch `epoch`) through
/// `ws`, leaving after `first + round * grow` more messages each round and
/// joining again from the last position seen over `reconnect(round)`;
/// every join must be `recovered: true`. Returns what it read, how many
/// rounds happened while some of `publishers` still ran, and the last
/// connection.
pub async fn read_through_reconnections<F, Fut>(
    mut ws: Client,
    channel: &str,
    epoch: &str,
    total: u64,
    (first, grow): (usize, usize),
    publishers: &[JoinHandle<()>],
    mut reconnect: F,
) -> (Vec<Value>, usize, Client)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Client>,
{
    let (mut seen, mut rounds, mut while_publishing, mut id) = (Vec::<Value>::new(), 0usize, 0, 1);
    while (seen.len() as u64) < total {
        // Read a little, then drop the connection and come back from the
        // last position seen, while the publishers go on.
        let want = seen.len() + first + rounds * grow;
        while seen.len() < want && (seen.len() as u64) < total {
            seen.push(json(&mut ws).await);
        }
        if (seen.len() as u64) >= total {
            break;
        }
        drop(ws);
        rounds += 1;
        if publishers.iter().any(|p| !p.is_finished()) {
            while_publishing += 1;
        }
        ws = reconnect(rounds).await;
        id += 1;
        let last = seen.last().unwrap()["offset"].as_u64().unwrap();
        let (replayed, ack) = join(&mut ws, channel, Some((epoch, last)), id).await;
        assert_eq!(ack["data"]["recovered"], true, "round {rounds}");
        seen.extend(replayed);
    }
    (seen, while_publishing, ws)
}
