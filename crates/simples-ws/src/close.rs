//! Close codes and close frames (RFC 6455 §5.5.1, §7.4).

use crate::utf8::Utf8Validator;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// A close status code (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose for which the connection was established is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (e.g. invalid UTF-8 text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message is too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// RFC 6455 §7.4.1/§7.4.2: 1000-1003 and 1007-1011 are defined, 1012-1014
    /// are registered with IANA, 3000-3999 are for libraries and frameworks
    /// and 4000-4999 for applications. 1004 is reserved, 1005, 1006 and 1015
    /// MUST NOT be set in a close frame, and everything else below 3000 is
    /// reserved: receiving one is a protocol error.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        CloseCode(v)
    }
}

/// The body of a close frame: a code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8 (125 minus the code).
    pub reason: String,
}

/// Why a received close payload is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosePayloadError {
    /// A one-byte payload (RFC 6455 §5.5.1: the code is two bytes).
    Truncated,
    /// A code that must not appear on the wire.
    InvalidCode(u16),
    /// The reason is not UTF-8.
    InvalidUtf8,
}

impl CloseFrame {
    /// Maximum reason length in bytes: a control frame carries at most 125
    /// bytes (RFC 6455 §5.5), two of which are the code.
    pub const MAX_REASON: usize = 123;

    /// Parses a received close payload. An empty payload means no code.
    ///
    /// RFC 6455 §5.5.1: if there is a body, its first two bytes are the code,
    /// followed by a UTF-8 reason.
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, ClosePayloadError> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(ClosePayloadError::Truncated),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(ClosePayloadError::InvalidCode(code.0));
                }
                let mut v = Utf8Validator::new();
                v.feed(&payload[2..]).and_then(|_| v.finish()).map_err(|_| ClosePayloadError::InvalidUtf8)?;
                // The bytes were just validated.
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// Encodes the payload: the code, then the reason cut to at most
    /// [`Self::MAX_REASON`] bytes on a character boundary.
    pub fn encode(&self) -> Bytes {
        let reason = truncate_utf8(&self.reason, Self::MAX_REASON);
        let mut b = BytesMut::with_capacity(2 + reason.len());
        b.put_u16(self.code.0);
        b.put_slice(reason.as_bytes());
        b.freeze()
    }
}

/// Cuts `s` to at most `max` bytes without splitting a character.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_of_every_code() {
        for code in 0..=u16::MAX {
            let valid = CloseCode(code).is_valid_on_wire();
            let expected = matches!(code, 1000 | 1001 | 1002 | 1003 | 1007 | 1008 | 1009 | 1010 | 1011 | 1012 | 1013 | 1014)
                || (3000..=4999).contains(&code);
            assert_eq!(valid, expected, "code {code}");
        }
    }

    #[test]
    fn parse_rules() {
        assert_eq!(CloseFrame::parse(b""), Ok(None));
        assert_eq!(CloseFrame::parse(b"\x03"), Err(ClosePayloadError::Truncated));
        assert_eq!(CloseFrame::parse(b"\x03\xed"), Err(ClosePayloadError::InvalidCode(1005)));
        assert_eq!(CloseFrame::parse(b"\x03\xe8\xff"), Err(ClosePayloadError::InvalidUtf8));
        let f = CloseFrame::parse(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!(f.code, CloseCode::NORMAL);
        assert_eq!(f.reason, "bye");
    }

    #[test]
    fn encode_truncates_long_reason_on_char_boundary() {
        let f = CloseFrame { code: CloseCode::NORMAL, reason: "é".repeat(100) };
        let b = f.encode();
        assert!(b.len() <= 125);
        let back = CloseFrame::parse(&b).unwrap().unwrap();
        assert_eq!(back.reason.len(), 122);
    }
}
