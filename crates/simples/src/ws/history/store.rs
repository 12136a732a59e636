//! History kept by the backplane's [`HistoryStore`] (the Redis backend):
//! positions are the same on every node.
//!
//! Publishing hands the message to the store, which numbers, keeps and
//! publishes it in one step; every node (this one included) delivers it
//! when it comes back ([`deliver_numbered`]), in offset order since the
//! store publishes in that order and a node receives a topic in order.
//! Reads go to the store.

use std::sync::Arc;
use std::time::Duration;

use simples_ws::{Message, Utf8Bytes};

use super::memory::Since;
use super::numbered::channel_fields;
use super::{deliver_all, object_head, HistoryEntry, HistoryOptions, Position};
use crate::backplane::{Envelope, HistoryAppend, HistoryStore, Kind, ReadFrom};
use crate::ws::error::WsError;
use crate::ws::encode::prepare;
use crate::ws::state::WsShared;
use crate::ws::options::Mode;
use crate::ws::relay::channel_topic;

/// How long a recovery waits for this node's subscription to the channel
/// to be active in the engine before it reads (so that nothing published
/// after the read can miss this node).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

/// Hands a channel message to the store; returns how many members this
/// node has (they receive it when it comes back from the store).
pub(crate) fn publish(
    host: &WsShared,
    store: &Arc<dyn HistoryStore>,
    name: &str,
    message: Message,
    options: HistoryOptions,
    except: Option<u64>,
    named: Option<&str>,
) -> usize {
    let (binary, payload) = match message {
        Message::Text(t) => (false, t.as_bytes().clone()),
        Message::Binary(b) => (true, b),
        _ => return 0,
    };
    let mut splice_at = None;
    let mut position_prefix = String::new();
    if host.options.mode == Mode::Object && !binary {
        if let Some((head, empty)) = std::str::from_utf8(&payload).ok().and_then(object_head) {
            splice_at = Some(head.len());
            position_prefix = channel_fields(name);
            if empty {
                position_prefix.remove(0);
            }
        }
    }
    let except = except.map(|id| (host.node_id().to_string(), id));
    let envelope = host.envelope(Kind::ChannelBroadcast, name, except, named, binary, payload);
    let append = HistoryAppend {
        topic: channel_topic(&host.path, name),
        size: options.size,
        ttl: options.ttl,
        envelope,
        splice_at,
        position_prefix,
    };
    host.count_published(store.append(append).is_ok());
    host.rooms.snapshot(name).map_or(0, |m| m.len())
}

/// A numbered channel message from the store (published by any node, this
/// one included): delivered to this node's members in its order.
pub(crate) fn deliver_numbered(host: &WsShared, envelope: Envelope, offset: u64) {
    let message = if envelope.binary {
        Message::Binary(envelope.payload)
    } else {
        match Utf8Bytes::try_from_bytes(envelope.payload) {
            Ok(t) => Message::Text(t),
            Err(_) => return host.refuse_remote("numbered text message is not UTF-8"),
        }
    };
    let named = if envelope.filter.is_empty() {
        None
    } else {
        match host.named_filter(&envelope.filter) {
            Ok(f) => Some(f),
            Err(_) => return host.refuse_remote("numbered message for a filter this node does not define"),
        }
    };
    let Some(targets) = host.rooms.snapshot(&envelope.channel) else { return };
    if envelope.node != host.node_id() {
        host.count_remote();
    }
    let except = envelope.except.as_ref().filter(|(node, _)| node == host.node_id()).map(|(_, id)| *id);
    let Some(frame) = prepare(host, message) else { return };
    let mut slow = Vec::new();
    let keep = |c: &&crate::ws::WsConn| Some(c.id()) != except && named.as_ref().map_or(true, |f| f(c));
    deliver_all(host, &envelope.channel, offset, &frame, targets.iter().filter(keep), &mut slow);
    for (conn, action) in slow {
        host.slow(&conn, action);
    }
}


/// Waits (bounded) until this node receives channel `name` from the
/// engine.
pub(crate) async fn subscribed(host: &WsShared, name: &str) {
    if let Some(relay) = &host.options.relay {
        let topic = channel_topic(&host.path, name);
        if tokio::time::timeout(SUBSCRIBE_WAIT, relay.backplane().subscribed(&topic)).await.is_err() {
            tracing::warn!(channel = name, "channel subscription not active after 5 s; recovering anyway");
        }
    }
}

fn engine(e: crate::backplane::BackplaneError) -> WsError {
    WsError::Backplane(e.to_string())
}

/// The messages after `since` (or only the latest position).
pub(crate) async fn since(
    host: &WsShared,
    store: &Arc<dyn HistoryStore>,
    name: &str,
    options: HistoryOptions,
    since: Option<&Position>,
) -> Result<Since, WsError> {
    let topic = channel_topic(&host.path, name);
    let from = since.map_or(ReadFrom::Latest, |p| ReadFrom::After(p.offset));
    let read = store.read(&topic, options.ttl, from, if since.is_some() { options.size } else { 1 }).await.map_err(engine)?;
    let top = Position { epoch: read.epoch.clone(), offset: read.last };
    let Some(since) = since else { return Ok(Since { top, complete: true, entries: Vec::new() }) };
    let complete = since.epoch == read.epoch && since.offset <= read.last && since.offset + 1 >= read.oldest;
    let entries = if since.epoch == read.epoch {
        read.items.into_iter().filter(|i| i.offset > since.offset).map(|i| (i.offset, i.payload, i.binary)).collect()
    } else {
        Vec::new()
    };
    Ok(Since { top, complete, entries })
}

/// The latest `limit` messages.
pub(crate) async fn recent(
    host: &WsShared,
    store: &Arc<dyn HistoryStore>,
    name: &str,
    options: HistoryOptions,
    limit: usize,
) -> Result<Vec<HistoryEntry>, WsError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let topic = channel_topic(&host.path, name);
    let read = store.read(&topic, options.ttl, ReadFrom::Latest, limit).await.map_err(engine)?;
    Ok(read
        .items
        .into_iter()
        .map(|i| HistoryEntry {
            position: Position { epoch: read.epoch.clone(), offset: i.offset },
            message: if i.binary {
                Message::Binary(i.payload)
            } else {
                match Utf8Bytes::try_from_bytes(i.payload.clone()) {
                    Ok(t) => Message::Text(t),
                    Err(_) => Message::Binary(i.payload),
                }
            },
        })
        .collect())
}
