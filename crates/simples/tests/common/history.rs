//! Channel history helpers: `@join` from a position over a raw client.

use serde_json::{json, Value};

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
