//! Frame header parsing and encoding (RFC 6455 §5.2).

use super::{OpCode, MAX_CONTROL_PAYLOAD};
use crate::proto::ProtocolError;
use bytes::BufMut;

/// Longest possible header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// RSV1-3 as they sit in the first byte (mask 0x70).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub len: u64,
}

/// Parses a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold the whole header yet (a normal
/// result: call again with more bytes), `Ok(Some((header, header_len)))`
/// otherwise. Checks made here, each failing with close code 1002:
/// - the opcode is not reserved (RFC 6455 §5.2);
/// - control frames are not fragmented and carry at most 125 bytes (§5.5);
/// - the most significant bit of a 64-bit length is 0 (§5.2);
/// - the length uses the minimal encoding (§5.2: "the minimal number of
///   bytes MUST be used to encode the length").
#[inline]
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let rsv = b0 & 0x70;
    let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(ProtocolError::UnknownOpcode(b0 & 0x0f))?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() {
        // RFC 6455 §5.5: all control frames MUST have a payload length of 125
        // bytes or less and MUST NOT be fragmented.
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if len7 as usize > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooLong);
        }
    }
    let (len, mut pos) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let len = u16::from_be_bytes([buf[2], buf[3]]) as u64;
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            // RFC 6455 §5.2: the most significant bit MUST be 0.
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            if len <= u16::MAX as u64 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(key)
    } else {
        None
    };
    Ok(Some((FrameHeader { fin, rsv, opcode, mask, len }, pos)))
}

/// Appends a frame header to `dst`, with the minimal length encoding.
#[inline]
pub fn encode_header(dst: &mut impl BufMut, fin: bool, rsv: u8, opcode: OpCode, mask: Option<[u8; 4]>, len: u64) {
    let b0 = (if fin { 0x80 } else { 0 }) | (rsv & 0x70) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    dst.put_u8(b0);
    if len < 126 {
        dst.put_u8(mask_bit | len as u8);
    } else if len <= u16::MAX as u64 {
        dst.put_u8(mask_bit | 126);
        dst.put_u16(len as u16);
    } else {
        dst.put_u8(mask_bit | 127);
        dst.put_u64(len);
    }
    if let Some(key) = mask {
        dst.put_slice(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(fin: bool, rsv: u8, op: OpCode, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
        let mut v = Vec::new();
        encode_header(&mut v, fin, rsv, op, mask, len);
        v
    }

    #[test]
    fn round_trip_every_length_class_at_every_split() {
        for &len in &[0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = encoded(true, 0, OpCode::Binary, mask, len);
                for split in 0..bytes.len() {
                    assert_eq!(parse_header(&bytes[..split]).unwrap(), None, "len {len} split {split}");
                }
                let (h, n) = parse_header(&bytes).unwrap().unwrap();
                assert_eq!(n, bytes.len());
                assert_eq!(h, FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask, len });
            }
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
        let (h, n) = parse_header(&[0x81, 0x05]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.len, h.mask, n), (true, OpCode::Text, 5, None, 2));
        // A masked "Hello".
        let (h, n) = parse_header(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]).unwrap().unwrap();
        assert_eq!((h.mask, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        // 256 bytes binary in a single unmasked frame.
        let (h, _) = parse_header(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!(h.len, 256);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(parse_header(&[0x83, 0x00]), Err(ProtocolError::UnknownOpcode(3)));
        assert_eq!(parse_header(&[0x8b, 0x00]), Err(ProtocolError::UnknownOpcode(0xb)));
        assert_eq!(parse_header(&[0x09, 0x00]), Err(ProtocolError::FragmentedControlFrame));
        assert_eq!(parse_header(&[0x89, 0x7e]), Err(ProtocolError::ControlFrameTooLong));
        assert_eq!(parse_header(&[0x82, 0x7e, 0x00, 0x10]), Err(ProtocolError::NonMinimalLength));
        let mut big = vec![0x82, 0x7f];
        big.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(parse_header(&big), Err(ProtocolError::LengthOverflow));
        let mut small = vec![0x82, 0x7f];
        small.extend_from_slice(&100u64.to_be_bytes());
        assert_eq!(parse_header(&small), Err(ProtocolError::NonMinimalLength));
    }

    #[test]
    fn rsv_bits_are_reported() {
        let (h, _) = parse_header(&[0xc1, 0x00]).unwrap().unwrap();
        assert_eq!(h.rsv, 0x40);
    }
}
