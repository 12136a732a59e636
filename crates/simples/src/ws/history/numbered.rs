//! A numbered message of a history channel: its wire form (object mode
//! adds the position as the object's last fields) and its delivery to the
//! channel's members, through a recovery's buffer when the member is
//! recovering. Used by both backends (`mod.rs`'s memory publication and
//! `store`), so below both.

use std::sync::Arc;

use bytes::Bytes;
use simples_ws::{Message, PreparedFrame, Utf8Bytes};

use super::Position;
use crate::ws::options::{Mode, SlowAction};
use crate::ws::outbox::Pushed;
use crate::ws::state::{WsConn, WsShared};

/// `,"channel":<name>,"epoch":"`: what precedes the epoch in a numbered
/// object-mode message.
pub(crate) fn channel_fields(channel: &str) -> String {
    let channel = serde_json::to_string(channel).unwrap_or_else(|_| "\"\"".into());
    format!(",\"channel\":{channel},\"epoch\":\"")
}

/// The fields an object-mode message of a history channel carries after
/// its own: `,"channel":..,"epoch":..,"offset":` (the offset follows).
fn position_fields(channel: &str, epoch: &str) -> String {
    format!("{}{epoch}\",\"offset\":", channel_fields(channel))
}

/// `text` (a JSON object) with the position added as its last fields;
/// `None` when `text` is not a JSON object (plain mode's free text).
pub(crate) fn splice(text: &str, channel: &str, epoch: &str, offset: u64) -> Option<String> {
    let (head, empty) = object_head(text)?;
    let fields = position_fields(channel, epoch);
    let fields = if empty { &fields[1..] } else { &fields[..] };
    Some(format!("{head}{fields}{offset}}}"))
}

/// The JSON object `text` without its closing brace, and whether it is
/// empty (`{}`); `None` if `text` is not `{...}`.
pub(crate) fn object_head(text: &str) -> Option<(&str, bool)> {
    let t = text.trim_end();
    if !t.trim_start().starts_with('{') || !t.ends_with('}') {
        return None;
    }
    let head = &t[..t.len() - 1];
    let empty = head.trim_start().strip_prefix('{').is_some_and(|rest| rest.trim().is_empty());
    Some((head, empty))
}

/// The message a member receives for a history entry: with its position
/// in object mode when it is a JSON object, as published otherwise.
pub(crate) fn wire_message(mode: Mode, channel: &str, position: &Position, payload: &Bytes, binary: bool) -> Message {
    if binary {
        return Message::Binary(payload.clone());
    }
    let Ok(text) = std::str::from_utf8(payload) else { return Message::Binary(payload.clone()) };
    if mode == Mode::Object {
        if let Some(spliced) = splice(text, channel, &position.epoch, position.offset) {
            return Message::text(spliced);
        }
    }
    match Utf8Bytes::try_from_bytes(payload.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Binary(payload.clone()),
    }
}

/// Delivers one numbered frame to `targets` (see
/// [`publish_local`](super::publish_local));
/// slow-client actions are collected in `slow` for after the locks.
pub(crate) fn deliver_all<'a>(
    host: &WsShared,
    channel: &str,
    offset: u64,
    frame: &Arc<PreparedFrame>,
    targets: impl Iterator<Item = &'a WsConn>,
    slow: &mut Vec<(WsConn, SlowAction)>,
) -> usize {
    let metrics = host.metrics();
    metrics.broadcasts.increment(1);
    let mut queued = 0;
    for conn in targets {
        match host.history.recovering.deliver(host, conn, channel, offset, frame) {
            None => queued += 1, // buffered for the recovery
            Some(pushed) => {
                if pushed.wakes() {
                    conn.inner.wake.notify();
                }
                if matches!(pushed, Pushed::Queued | Pushed::QueuedBehind | Pushed::QueuedDropping(_)) {
                    queued += 1;
                }
                if let Some(action) = pushed.slow_action() {
                    slow.push((conn.clone(), action));
                }
            }
        }
    }
    metrics.sent(queued, frame.as_bytes().len());
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_spliced_into_objects_only() {
        assert_eq!(
            splice(r#"{"event":"said","data":1}"#, "lobby", "e1", 7).unwrap(),
            r#"{"event":"said","data":1,"channel":"lobby","epoch":"e1","offset":7}"#
        );
        assert_eq!(splice("{ }", "a\"b", "e", 1).unwrap(), r#"{ "channel":"a\"b","epoch":"e","offset":1}"#);
        assert_eq!(splice("hello", "c", "e", 1), None);
        assert_eq!(splice("[1]", "c", "e", 1), None);
        let spliced = splice(r#"{"event":"x"}"#, "ch", "ep", 3).unwrap();
        let value: serde_json::Value = serde_json::from_str(&spliced).unwrap();
        assert_eq!(value["offset"], 3);
        assert_eq!(value["channel"], "ch");
    }
}
