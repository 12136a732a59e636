//! The envelope: what one node publishes on the backplane for the others.
//!
//! A small binary format (big-endian lengths), versioned by its first byte
//! so that nodes of different versions recognise what they cannot read:
//!
//! ```text
//!   u8      version = 1
//!   u8      kind: 1 host broadcast, 2 channel broadcast,
//!                 3 presence join, 4 presence leave
//!   u8      flags: bit 0 = the message is binary (else text),
//!           bit 1 = numbered: a history channel's message, whose payload
//!           is followed by its offset (see the last line)
//!   u8 + n  origin node id (n ≤ 255 bytes, UTF-8)
//!   u16 + n namespace: the WebSocket host's path (UTF-8)
//!   u16 + n channel name (UTF-8; empty for a host broadcast)
//!   u8 + n  except: node id of a connection to skip (n = 0: none) ...
//!   u64     ... and that connection's id (present only when n > 0)
//!   u8 + n  filter: the name of a filter every node applies to its own
//!           connections (n = 0: none)
//!   ...     payload, to the end: the message (kinds 1, 2) or the
//!           presence member as JSON (kinds 3, 4)
//!   n + u8  numbered only: the offset in decimal ASCII (n digits), then n
//!           (so Redis' Lua can append it to what it publishes)
//! ```
//!
//! Decoding checks every length against what is there: a truncated or
//! foreign message is an [`EnvelopeError`], never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The format version this node writes and reads.
pub const VERSION: u8 = 1;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A message for every connection of a WebSocket host.
    HostBroadcast,
    /// A message for every member of a channel.
    ChannelBroadcast,
    /// A connection joined a channel (payload: the presence member).
    PresenceJoin,
    /// A connection left a channel (payload: the presence member).
    PresenceLeave,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::HostBroadcast => 1,
            Kind::ChannelBroadcast => 2,
            Kind::PresenceJoin => 3,
            Kind::PresenceLeave => 4,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::HostBroadcast,
            2 => Kind::ChannelBroadcast,
            3 => Kind::PresenceJoin,
            4 => Kind::PresenceLeave,
            _ => return None,
        })
    }
}

/// One decoded (or to be encoded) envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What it carries.
    pub kind: Kind,
    /// The message is binary (else text).
    pub binary: bool,
    /// The node that published it.
    pub node: String,
    /// The WebSocket host's path.
    pub namespace: String,
    /// The channel (empty for a host broadcast).
    pub channel: String,
    /// A connection to skip: `(node id, connection id)`.
    pub except: Option<(String, u64)>,
    /// A named filter to apply on every node (empty: none).
    pub filter: String,
    /// The message, or the presence member's JSON.
    pub payload: Bytes,
    /// A history channel's message numbered by the backplane's history
    /// store: its offset (every node, the publisher included, delivers it).
    pub offset: Option<u64>,
}

/// Why an envelope could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Written by a version this node does not read.
    Version(u8),
    /// An unknown kind.
    Kind(u8),
    /// Shorter than its lengths say.
    Truncated,
    /// A name is not UTF-8.
    NotUtf8,
    /// A field is longer than its length prefix allows.
    TooLong(&'static str),
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Version(v) => write!(f, "envelope version {v} is not supported (this node reads {VERSION})"),
            EnvelopeError::Kind(k) => write!(f, "unknown envelope kind {k}"),
            EnvelopeError::Truncated => f.write_str("truncated envelope"),
            EnvelopeError::NotUtf8 => f.write_str("envelope field is not UTF-8"),
            EnvelopeError::TooLong(field) => write!(f, "envelope field {field} is too long"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl Envelope {
    /// The encoded bytes.
    pub fn encode(&self) -> Result<Bytes, EnvelopeError> {
        let except_node = self.except.as_ref().map_or("", |(n, _)| n.as_str());
        let mut out = BytesMut::with_capacity(
            16 + self.node.len() + self.namespace.len() + self.channel.len() + except_node.len() + self.filter.len()
                + self.payload.len(),
        );
        out.put_u8(VERSION);
        out.put_u8(self.kind.code());
        out.put_u8(u8::from(self.binary) | (u8::from(self.offset.is_some()) << 1));
        put_short(&mut out, &self.node, "node")?;
        put_long(&mut out, &self.namespace, "namespace")?;
        put_long(&mut out, &self.channel, "channel")?;
        put_short(&mut out, except_node, "except")?;
        if let Some((_, id)) = &self.except {
            if except_node.is_empty() {
                return Err(EnvelopeError::TooLong("except (empty node id)"));
            }
            out.put_u64(*id);
        }
        put_short(&mut out, &self.filter, "filter")?;
        out.put_slice(&self.payload);
        if let Some(offset) = self.offset {
            let digits = offset.to_string();
            out.put_slice(digits.as_bytes());
            out.put_u8(digits.len() as u8);
        }
        Ok(out.freeze())
    }

    /// Reads an envelope; the payload shares `bytes`' memory.
    pub fn decode(mut bytes: Bytes) -> Result<Envelope, EnvelopeError> {
        let version = take_u8(&mut bytes)?;
        if version != VERSION {
            return Err(EnvelopeError::Version(version));
        }
        let code = take_u8(&mut bytes)?;
        let kind = Kind::from_code(code).ok_or(EnvelopeError::Kind(code))?;
        let flags = take_u8(&mut bytes)?;
        let binary = flags & 1 == 1;
        let node = take_str(&mut bytes, 1)?;
        let namespace = take_str(&mut bytes, 2)?;
        let channel = take_str(&mut bytes, 2)?;
        let except_node = take_str(&mut bytes, 1)?;
        let except = if except_node.is_empty() {
            None
        } else {
            if bytes.remaining() < 8 {
                return Err(EnvelopeError::Truncated);
            }
            Some((except_node, bytes.get_u64()))
        };
        let filter = take_str(&mut bytes, 1)?;
        let offset = if flags & 2 == 2 {
            let n = usize::from(*bytes.last().ok_or(EnvelopeError::Truncated)?);
            if n == 0 || n > 20 || bytes.len() < n + 1 {
                return Err(EnvelopeError::Truncated);
            }
            let digits = &bytes[bytes.len() - 1 - n..bytes.len() - 1];
            let offset = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or(EnvelopeError::NotUtf8)?;
            bytes.truncate(bytes.len() - 1 - n);
            Some(offset)
        } else {
            None
        };
        Ok(Envelope { kind, binary, node, namespace, channel, except, filter, payload: bytes, offset })
    }
}

fn put_short(out: &mut BytesMut, s: &str, field: &'static str) -> Result<(), EnvelopeError> {
    let len = u8::try_from(s.len()).map_err(|_| EnvelopeError::TooLong(field))?;
    out.put_u8(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_long(out: &mut BytesMut, s: &str, field: &'static str) -> Result<(), EnvelopeError> {
    let len = u16::try_from(s.len()).map_err(|_| EnvelopeError::TooLong(field))?;
    out.put_u16(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn take_u8(bytes: &mut Bytes) -> Result<u8, EnvelopeError> {
    if bytes.remaining() < 1 {
        return Err(EnvelopeError::Truncated);
    }
    Ok(bytes.get_u8())
}

/// A string with a length prefix of `width` bytes (1 or 2).
fn take_str(bytes: &mut Bytes, width: usize) -> Result<String, EnvelopeError> {
    if bytes.remaining() < width {
        return Err(EnvelopeError::Truncated);
    }
    let len = if width == 1 { usize::from(bytes.get_u8()) } else { usize::from(bytes.get_u16()) };
    if bytes.remaining() < len {
        return Err(EnvelopeError::Truncated);
    }
    let raw = bytes.split_to(len);
    String::from_utf8(raw.to_vec()).map_err(|_| EnvelopeError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            kind: Kind::ChannelBroadcast,
            binary: false,
            node: "n1a2b3".into(),
            namespace: "/chat".into(),
            channel: "lobby".into(),
            except: Some(("n1a2b3".into(), 42)),
            filter: "awake".into(),
            payload: Bytes::from_static(b"{\"event\":\"said\"}"),
            offset: None,
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Envelope::decode(e.encode().unwrap()).unwrap(), e);
        let plain = Envelope { except: None, filter: String::new(), binary: true, ..sample() };
        assert_eq!(Envelope::decode(plain.encode().unwrap()).unwrap(), plain);
        let numbered = Envelope { offset: Some(1234567), ..sample() };
        assert_eq!(Envelope::decode(numbered.encode().unwrap()).unwrap(), numbered);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode().unwrap();
        let payload_start = bytes.len() - sample().payload.len();
        for cut in 0..payload_start {
            assert_eq!(Envelope::decode(bytes.slice(..cut)), Err(EnvelopeError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn foreign_versions_and_kinds_are_refused() {
        let mut bytes = sample().encode().unwrap().to_vec();
        bytes[0] = 2;
        assert_eq!(Envelope::decode(Bytes::from(bytes.clone())), Err(EnvelopeError::Version(2)));
        bytes[0] = VERSION;
        bytes[1] = 9;
        assert_eq!(Envelope::decode(Bytes::from(bytes)), Err(EnvelopeError::Kind(9)));
    }

    #[test]
    fn too_long_fields_are_refused_when_encoding() {
        let e = Envelope { node: "x".repeat(256), ..sample() };
        assert_eq!(e.encode(), Err(EnvelopeError::TooLong("node")));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Envelope::decode(Bytes::from(bytes));
        }

        #[test]
        fn any_envelope_round_trips(
            node in "[a-z0-9]{1,20}", ns in "/[a-z]{0,10}", ch in ".{0,12}", filter in "[a-z]{0,8}",
            except in proptest::option::of(("[a-z0-9]{1,8}", any::<u64>())),
            binary in any::<bool>(), kind in 1u8..=4, payload in proptest::collection::vec(any::<u8>(), 0..40),
            offset in proptest::option::of(any::<u64>()),
        ) {
            let e = Envelope {
                kind: Kind::from_code(kind).unwrap(), binary, node, namespace: ns, channel: ch, except, filter,
                payload: Bytes::from(payload), offset,
            };
            prop_assert_eq!(Envelope::decode(e.encode().unwrap()).unwrap(), e);
        }
    }
}
