//! [`RedisHistory`]: channel history in Redis (one server; on a cluster
//! the framework keeps history per node in memory).
//!
//! Per channel topic `t`: a stream `{prefix}:history:{t}` (entry id
//! `{offset}-0`, fields `p` the payload, `t` the Redis time in ms, `b`
//! binary) and a hash `{prefix}:history:{t}:meta` (`epoch`, `last`).
//! A Lua script appends: it creates the epoch when the hash is missing
//! (first message, or the history was lost: Redis restarted empty, or the
//! channel was idle for a day), takes the next offset (`HINCRBY`), adds
//! the entry trimmed to the size (`MAXLEN`), deletes the entries older
//! than the ttl (by their time field, oldest first: amortised one per
//! append), and `PUBLISH`es the envelope with the position in the same
//! script: Redis runs scripts one at a time, so the channel's messages are
//! published in offset order and every node delivers them so. Appends go
//! through the publisher's queue and pipeline, in order with the other
//! publications. A read (another script) trims by age first, then
//! returns the epoch, the latest offset, the oldest kept and the entries.
//! Both keys expire when unused: the stream after the ttl (everything in
//! it is expired by then), the hash after a day (so a client that missed
//! nothing still recovers after a quiet hour).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{LuaInterface as _, Value};
use futures_core::future::BoxFuture;
use tokio::sync::mpsc;

use super::connect::{engine_error, Link};
use super::publisher::Outgoing;
use super::Counters;
use crate::backplane::{BackplaneError, HistoryAppend, HistoryItem, HistoryRead, HistoryStore, ReadFrom};

/// How long an unused history's epoch and latest offset are kept (at
/// least the ttl).
const META_TTL: Duration = Duration::from_secs(24 * 3600);

const TRIM: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function trim(stream, ttl, now)
  local cutoff = now - tonumber(ttl)
  while true do
    local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    if #head == 0 or tonumber(head[1][2][4]) > cutoff then break end
    redis.call('XDEL', stream, head[1][1])
  end
end
local function epoch_of(stream, meta, candidate, meta_ttl)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = candidate
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', epoch, 'last', 0)
    redis.call('PEXPIRE', meta, meta_ttl)
  end
  return epoch
end
"#;

/// KEYS: stream, meta. ARGV: size, ttl ms, epoch candidate, pub/sub
/// channel, envelope head, splice position ('' for none), position
/// prefix, payload, binary ('0'/'1'), meta ttl ms.
const APPEND: &str = r#"
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[3], ARGV[10])
local offset = redis.call('HINCRBY', KEYS[2], 'last', 1)
local digits = string.format('%d', offset)
local now = now_ms()
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], digits .. '-0', 'p', ARGV[8], 't', now, 'b', ARGV[9])
trim(KEYS[1], ARGV[2], now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[10])
local body = ARGV[8]
if ARGV[6] ~= '' then
  body = string.sub(ARGV[8], 1, tonumber(ARGV[6])) .. ARGV[7] .. epoch .. '","offset":' .. digits .. '}'
end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. body .. digits .. string.char(#digits))
return offset
"#;

/// KEYS: stream, meta. ARGV: ttl ms, epoch candidate, 'after' or
/// 'latest', offset, limit, meta ttl ms.
const READ: &str = r#"
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[2], ARGV[6])
local last = tonumber(redis.call('HGET', KEYS[2], 'last'))
trim(KEYS[1], ARGV[1], now_ms())
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local oldest = last + 1
if #first > 0 then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
local items
if ARGV[3] == 'after' then
  items = redis.call('XRANGE', KEYS[1], string.format('%d-0', tonumber(ARGV[4]) + 1), '+', 'COUNT', ARGV[5])
else
  items = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[5])
end
return {epoch, last, oldest, items}
"#;

/// The history store of a [`RedisBackplane`](super::RedisBackplane).
pub(crate) struct RedisHistory {
    prefix: String,
    link: Arc<Link>,
    queue: mpsc::Sender<Outgoing>,
    counters: Arc<Counters>,
}

fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

impl RedisHistory {
    pub(crate) fn new(prefix: &str, link: Arc<Link>, queue: mpsc::Sender<Outgoing>, counters: Arc<Counters>) -> RedisHistory {
        RedisHistory { prefix: prefix.to_string(), link, queue, counters }
    }

    fn keys(&self, topic: &str) -> Vec<String> {
        let stream = format!("{}:history:{topic}", self.prefix);
        let meta = format!("{stream}:meta");
        vec![stream, meta]
    }
}

impl HistoryStore for RedisHistory {
    fn append(&self, append: HistoryAppend) -> Result<(), BackplaneError> {
        let head = {
            let envelope = crate::backplane::Envelope { payload: Bytes::new(), offset: None, ..append.envelope.clone() };
            let mut head = envelope.encode().map_err(|e| BackplaneError::Engine(e.to_string()))?.to_vec();
            head[2] |= 2; // numbered: the script appends the payload and the offset
            Bytes::from(head)
        };
        let args: Vec<Bytes> = vec![
            Bytes::from(append.size.max(1).to_string()),
            Bytes::from(millis(append.ttl).to_string()),
            Bytes::from(crate::ws::new_epoch()),
            Bytes::from(format!("{}:{}", self.prefix, append.topic)),
            head,
            Bytes::from(append.splice_at.map(|n| n.to_string()).unwrap_or_default()),
            Bytes::from(append.position_prefix),
            append.envelope.payload,
            Bytes::from_static(if append.envelope.binary { b"1" } else { b"0" }),
            Bytes::from(millis(META_TTL.max(append.ttl)).to_string()),
        ];
        let script = Outgoing::Script { script: script(APPEND), keys: self.keys(&append.topic), args };
        match self.queue.try_send(script) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Counters::add(&self.counters.dropped, 1);
                Err(BackplaneError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(BackplaneError::Unavailable("the backplane is shut down".into())),
        }
    }

    fn read(
        &self,
        topic: &str,
        ttl: Duration,
        from: ReadFrom,
        limit: usize,
    ) -> BoxFuture<'static, Result<HistoryRead, BackplaneError>> {
        let keys = self.keys(topic);
        let link = self.link.clone();
        let (mode, after) = match from {
            ReadFrom::After(o) => ("after", o),
            ReadFrom::Latest => ("latest", 0),
        };
        let args: Vec<String> = vec![
            millis(ttl).to_string(),
            crate::ws::new_epoch(),
            mode.to_string(),
            after.to_string(),
            limit.max(1).to_string(),
            millis(META_TTL.max(ttl)).to_string(),
        ];
        Box::pin(async move {
            let client = link.commands()?;
            let value: Value = client.eval(script(READ), keys, args).await.map_err(|e| engine_error("reading history", e))?;
            let mut read = parse_read(value).ok_or_else(|| BackplaneError::Engine("unexpected history reply".into()))?;
            if mode == "latest" {
                read.items.reverse();
            }
            Ok(read)
        })
    }
}

/// The helpers, then the script.
fn script(body: &str) -> String {
    format!("{TRIM}{body}")
}

fn bytes_of(value: &Value) -> Option<Bytes> {
    match value {
        Value::Bytes(b) => Some(b.clone()),
        Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        _ => None,
    }
}

fn u64_of(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(&bytes_of(other)?).ok()?.parse().ok(),
    }
}

fn parse_read(value: Value) -> Option<HistoryRead> {
    let Value::Array(parts) = value else { return None };
    let [epoch, last, oldest, items] = <[Value; 4]>::try_from(parts).ok()?;
    let epoch = String::from_utf8(bytes_of(&epoch)?.to_vec()).ok()?;
    let items = match items {
        Value::Array(items) => items.into_iter().map(parse_item).collect::<Option<Vec<_>>>()?,
        Value::Null => Vec::new(),
        _ => return None,
    };
    Some(HistoryRead { epoch, last: u64_of(&last)?, oldest: u64_of(&oldest)?, items })
}

/// `[id, [field, value, ...]]`.
fn parse_item(item: Value) -> Option<HistoryItem> {
    let Value::Array(parts) = item else { return None };
    let [id, fields] = <[Value; 2]>::try_from(parts).ok()?;
    let id = bytes_of(&id)?;
    let offset = std::str::from_utf8(&id).ok()?.split('-').next()?.parse().ok()?;
    let Value::Array(fields) = fields else { return None };
    let (mut payload, mut binary) = (None, false);
    for pair in fields.chunks(2) {
        let [name, value] = pair else { return None };
        match bytes_of(name)?.as_ref() {
            b"p" => payload = bytes_of(value),
            b"b" => binary = bytes_of(value)?.as_ref() == b"1",
            _ => {}
        }
    }
    Some(HistoryItem { offset, payload: payload?, binary })
}
