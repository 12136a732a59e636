//! The generator's own minimal RFC 6455 client codec.
//!
//! Written independently of `simples-ws` on purpose: a benchmark client that
//! shared the implementation's code could share its bugs and "verify" them.
//! It only does what a client needs: the opening request with a fixed key,
//! the check of the 101 answer, masked frame encoding, and parsing of the
//! server's (unmasked) frame headers. Extensions are never negotiated.

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The key of RFC 6455 section 1.3, and its accept value computed there.
/// A fixed key is allowed for a benchmark client and lets the accept be a
/// constant: no SHA-1 or base64 code to get wrong.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Largest frame payload the generator accepts from a server.
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// The opening handshake request for `path` on `host` (host:port).
pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the server's answer to [`request`]. `Ok(None)`: incomplete, read
/// more. `Ok(Some(n))`: a valid 101 whose head is `buf[..n]`; frames may follow.
pub fn check_response(buf: &[u8]) -> Result<Option<usize>, String> {
    const MAX_HEAD: usize = 16 * 1024;
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err("response head larger than 16 KiB".into());
        }
        return Ok(None);
    };
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if version != "HTTP/1.1" || code != "101" {
        return Err(format!(
            "expected 'HTTP/1.1 101', got '{}'",
            status.chars().take(80).collect::<String>()
        ));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line '{line}'"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            if value != ACCEPT {
                return Err(format!("wrong Sec-WebSocket-Accept '{value}'"));
            }
            accept = true;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            return Err(format!(
                "server chose extensions we did not offer: '{value}'"
            ));
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            return Err(format!(
                "server chose a subprotocol we did not offer: '{value}'"
            ));
        }
    }
    if !upgrade {
        return Err("missing 'Upgrade: websocket'".into());
    }
    if !connection {
        return Err("missing 'Connection: Upgrade'".into());
    }
    if !accept {
        return Err("missing Sec-WebSocket-Accept".into());
    }
    Ok(Some(end + 4))
}

/// Appends one final (FIN) masked client frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    let len = payload.len();
    out.reserve(14 + len);
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    extend_masked(out, payload, key);
}

/// Appends `payload` XOR `key` to `out` in one pass (copy and mask fused).
fn extend_masked(out: &mut Vec<u8>, payload: &[u8], key: [u8; 4]) {
    let (start, len) = (out.len(), payload.len());
    out.reserve(len);
    let k32 = u32::from_ne_bytes(key) as u64;
    let k64 = k32 | (k32 << 32);
    // SAFETY: `reserve` made room for `len` bytes after `start`; every one
    // of them is written below before `set_len`. Unaligned u64 accesses stay
    // within `payload` and within the reserved space.
    unsafe {
        let dst = out.as_mut_ptr().add(start);
        let src = payload.as_ptr();
        let n8 = len / 8;
        for i in 0..n8 {
            let v = (src.add(i * 8) as *const u64).read_unaligned() ^ k64;
            (dst.add(i * 8) as *mut u64).write_unaligned(v);
        }
        for i in n8 * 8..len {
            *dst.add(i) = *src.add(i) ^ key[i & 3];
        }
        out.set_len(start + len);
    }
}

/// Appends a masked close frame with `code` and no reason.
pub fn encode_close(out: &mut Vec<u8>, code: u16, key: [u8; 4]) {
    encode(out, OP_CLOSE, &code.to_be_bytes(), key);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    /// Bytes of the header (2..=10: server frames carry no mask key).
    pub len: usize,
    pub payload_len: usize,
}

impl Header {
    pub fn total(&self) -> usize {
        self.len + self.payload_len
    }
}

/// Parses a server frame header at the start of `buf`. `Ok(None)`: need more
/// bytes. Errors on anything a conforming server without extensions can't send.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(format!(
            "reserved bits set (0x{b0:02x}) without a negotiated extension"
        ));
    }
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin {
                return Err("fragmented control frame".into());
            }
        }
        _ => return Err(format!("reserved opcode {opcode}")),
    }
    if b1 & 0x80 != 0 {
        return Err("server frame is masked".into());
    }
    let (len, payload_len) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as u64)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let n = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            if n >> 63 != 0 {
                return Err("64-bit length with the high bit set".into());
            }
            (10, n)
        }
        n => (2, n as u64),
    };
    if opcode >= OP_CLOSE && payload_len > 125 {
        return Err(format!("control frame of {payload_len} bytes"));
    }
    if payload_len > MAX_PAYLOAD {
        return Err(format!(
            "frame of {payload_len} bytes exceeds the generator's limit"
        ));
    }
    Ok(Some(Header {
        fin,
        opcode,
        len,
        payload_len: payload_len as usize,
    }))
}

/// Reassembles fragmented messages; single-frame messages pass through
/// without a copy.
#[derive(Debug, Default)]
pub struct Assembler {
    /// A fragmented message is in progress.
    active: bool,
    opcode: u8,
    buf: Vec<u8>,
}

/// What one frame means to the receiver.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete data message (text or binary).
    Message(u8, &'a [u8]),
    /// A fragment was stored; nothing to deliver yet.
    Fragment,
    Ping(&'a [u8]),
    Pong,
    /// A close frame: its code, if any.
    Close(Option<u16>),
}

impl Assembler {
    /// Interprets one complete frame (`header`, `payload`).
    pub fn frame<'a>(
        &'a mut self,
        header: &Header,
        payload: &'a [u8],
    ) -> Result<Event<'a>, String> {
        match header.opcode {
            OP_TEXT | OP_BINARY => {
                if self.active {
                    return Err("new data frame inside a fragmented message".into());
                }
                if header.fin {
                    Ok(Event::Message(header.opcode, payload))
                } else {
                    self.active = true;
                    self.opcode = header.opcode;
                    self.buf.clear();
                    self.buf.extend_from_slice(payload);
                    Ok(Event::Fragment)
                }
            }
            OP_CONT => {
                if !self.active {
                    return Err("continuation frame outside a fragmented message".into());
                }
                if (self.buf.len() + payload.len()) as u64 > MAX_PAYLOAD {
                    return Err("fragmented message exceeds the generator's limit".into());
                }
                self.buf.extend_from_slice(payload);
                if header.fin {
                    self.active = false;
                    Ok(Event::Message(self.opcode, &self.buf))
                } else {
                    Ok(Event::Fragment)
                }
            }
            OP_PING => Ok(Event::Ping(payload)),
            OP_PONG => Ok(Event::Pong),
            OP_CLOSE => match payload.len() {
                0 => Ok(Event::Close(None)),
                1 => Err("close frame with a 1-byte payload".into()),
                _ => Ok(Event::Close(Some(u16::from_be_bytes([
                    payload[0], payload[1],
                ])))),
            },
            _ => unreachable!("parse_header rejects other opcodes"),
        }
    }

    pub fn in_message(&self) -> bool {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one masked client frame (as a server would): (fin, opcode, payload, bytes used).
    fn decode_client(buf: &[u8]) -> (bool, u8, Vec<u8>, usize) {
        assert!(buf[1] & 0x80 != 0, "client frames must be masked");
        let (mut pos, len) = match buf[1] & 0x7F {
            126 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
            127 => (
                10,
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, n as usize),
        };
        let key: [u8; 4] = buf[pos..pos + 4].try_into().unwrap();
        pos += 4;
        let payload: Vec<u8> = buf[pos..pos + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        (buf[0] & 0x80 != 0, buf[0] & 0x0F, payload, pos + len)
    }

    #[test]
    fn encode_lengths_and_mask_round_trip() {
        for len in [
            0usize,
            1,
            7,
            8,
            9,
            16,
            125,
            126,
            127,
            65535,
            65536,
            70000,
            1 << 20,
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut out = Vec::new();
            encode(&mut out, OP_BINARY, &payload, [0x12, 0x34, 0x56, 0x78]);
            let hdr = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), hdr + 4 + len, "len {len}");
            let (fin, op, got, used) = decode_client(&out);
            assert!(fin);
            assert_eq!(op, OP_BINARY);
            assert_eq!(used, out.len());
            assert_eq!(got, payload, "len {len}");
        }
    }

    #[test]
    fn rfc_masked_hello_example() {
        // RFC 6455 5.7: a single-frame masked text message "Hello".
        let mut out = Vec::new();
        encode(&mut out, OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn mask_matches_bytewise_at_every_length() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = vec![0xAA];
            extend_masked(&mut fast, &data, key);
            let fast = &fast[1..];
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn close_frame() {
        let mut out = Vec::new();
        encode_close(&mut out, 1000, [1, 2, 3, 4]);
        let (_, op, payload, _) = decode_client(&out);
        assert_eq!(op, OP_CLOSE);
        assert_eq!(payload, 1000u16.to_be_bytes());
    }

    #[test]
    fn parse_server_headers() {
        // RFC 6455 5.7 examples, unmasked.
        assert_eq!(
            parse_header(&[0x81, 0x05, b'H']).unwrap(),
            Some(Header {
                fin: true,
                opcode: OP_TEXT,
                len: 2,
                payload_len: 5
            })
        );
        assert_eq!(
            parse_header(&[0x01, 0x03]).unwrap(),
            Some(Header {
                fin: false,
                opcode: OP_TEXT,
                len: 2,
                payload_len: 3
            })
        );
        assert_eq!(
            parse_header(&[0x82, 0x7E, 0x01, 0x00]).unwrap(),
            Some(Header {
                fin: true,
                opcode: OP_BINARY,
                len: 4,
                payload_len: 256
            })
        );
        assert_eq!(
            parse_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap(),
            Some(Header {
                fin: true,
                opcode: OP_BINARY,
                len: 10,
                payload_len: 65536
            })
        );
        // Incomplete headers.
        assert_eq!(parse_header(&[0x82]).unwrap(), None);
        assert_eq!(parse_header(&[0x82, 0x7E, 0x01]).unwrap(), None);
        assert_eq!(parse_header(&[0x82, 0x7F, 0, 0, 0]).unwrap(), None);
    }

    #[test]
    fn parse_rejects_bad_server_frames() {
        assert!(parse_header(&[0x81, 0x85]).is_err(), "masked server frame");
        assert!(
            parse_header(&[0xC1, 0x05]).is_err(),
            "RSV1 without extension"
        );
        assert!(parse_header(&[0x83, 0x00]).is_err(), "reserved opcode");
        assert!(parse_header(&[0x09, 0x00]).is_err(), "fragmented ping");
        assert!(
            parse_header(&[0x89, 0x7E, 0x00, 0x7E]).is_err(),
            "long ping"
        );
        assert!(
            parse_header(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "high bit"
        );
    }

    #[test]
    fn assembler_fragments() {
        let mut a = Assembler::default();
        let h = |fin, opcode, n| Header {
            fin,
            opcode,
            len: 2,
            payload_len: n,
        };
        assert_eq!(
            a.frame(&h(false, OP_TEXT, 3), b"Hel").unwrap(),
            Event::Fragment
        );
        assert_eq!(
            a.frame(&h(true, OP_PING, 0), b"").unwrap(),
            Event::Ping(b"")
        );
        assert_eq!(
            a.frame(&h(true, OP_CONT, 2), b"lo").unwrap(),
            Event::Message(OP_TEXT, b"Hello")
        );
        assert!(!a.in_message());
        assert_eq!(
            a.frame(&h(true, OP_BINARY, 2), b"ab").unwrap(),
            Event::Message(OP_BINARY, b"ab")
        );
        assert!(a.frame(&h(true, OP_CONT, 1), b"x").is_err());
        let mut b = Assembler::default();
        b.frame(&h(false, OP_BINARY, 1), b"x").unwrap();
        assert!(b.frame(&h(true, OP_TEXT, 1), b"y").is_err());
        assert_eq!(
            a.frame(&h(true, OP_CLOSE, 2), &[0x03, 0xE8]).unwrap(),
            Event::Close(Some(1000))
        );
    }

    #[test]
    fn handshake_response_checks() {
        let good = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\nX-Other: 1\r\n\r\n\u{1}\u{0}"
        );
        let n = check_response(good.as_bytes()).unwrap().unwrap();
        assert_eq!(&good.as_bytes()[n..], b"\x01\x00");
        assert_eq!(check_response(&good.as_bytes()[..20]).unwrap(), None);
        let wrong_accept = good.replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(check_response(wrong_accept.as_bytes()).is_err());
        assert!(check_response(b"HTTP/1.1 400 Bad Request\r\n\r\n").is_err());
        let no_upgrade = good.replace("upgrade: WebSocket\r\n", "");
        assert!(check_response(no_upgrade.as_bytes()).is_err());
        let ext = good.replace("X-Other: 1", "Sec-WebSocket-Extensions: permessage-deflate");
        assert!(check_response(ext.as_bytes()).is_err());
        let req = String::from_utf8(request("127.0.0.1:9", "/echo")).unwrap();
        assert!(req.starts_with("GET /echo HTTP/1.1\r\n") && req.ends_with("\r\n\r\n"));
        assert!(req.contains(KEY));
    }
}
