//! Unit tests of the protocol state machine, bytes in / bytes out.
//!
//! Input frames are built by hand (`frame`) and the output is decoded by a
//! hand-written decoder (`decode_frames`), independently of the crate's own
//! encoder and parser, so a bug shared by both sides cannot hide itself.

use super::{Config, PreparedFrame, Protocol, ProtocolError, Role, State, TransportAction};
use crate::close::{CloseCode, CloseFrame, ClosePayloadError};
use crate::extension::Extension;
use crate::message::{DataKind, Message};
use bytes::Bytes;
use std::io::IoSlice;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod control_rate;
mod read_buffers;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BIN: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;

// ---------------------------------------------------------------------------
// Hand-written frame encoder and decoder
// ---------------------------------------------------------------------------

/// A frame header with the minimal length encoding.
fn header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut v = vec![(if fin { 0x80 } else { 0 }) | (rsv & 0x70) | (opcode & 0x0f)];
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        v.push(m | len as u8);
    } else if len <= 0xffff {
        v.push(m | 126);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        v.push(m | 127);
        v.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        v.extend_from_slice(&k);
    }
    v
}

/// A whole frame; the payload is masked with `mask` if given.
fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut v = header(fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(k) => v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4])),
        None => v.extend_from_slice(payload),
    }
    v
}

/// A final, masked (client) frame.
fn cf(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, Some(KEY), payload)
}

/// A final, unmasked (server) frame.
fn sf(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, None, payload)
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(reason);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A decoded output frame (payload already unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

/// Decodes a byte stream that must consist of whole frames only.
fn decode_frames(mut b: &[u8]) -> Vec<Sent> {
    let mut frames = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 2, "truncated frame header");
        let fin = b[0] & 0x80 != 0;
        let rsv = b[0] & 0x70;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut pos) = match b[1] & 0x7f {
            126 => {
                let l = u16::from_be_bytes([b[2], b[3]]) as usize;
                assert!(l >= 126, "non-minimal 16-bit length {l}");
                (l, 4)
            }
            127 => {
                let l = u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize;
                assert!(l > 0xffff, "non-minimal 64-bit length {l}");
                (l, 10)
            }
            n => (n as usize, 2),
        };
        let mask = if masked {
            let k = [b[pos], b[pos + 1], b[pos + 2], b[pos + 3]];
            pos += 4;
            Some(k)
        } else {
            None
        };
        assert!(b.len() >= pos + len, "truncated frame payload");
        let mut payload = b[pos..pos + len].to_vec();
        if let Some(k) = mask {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= k[i % 4];
            }
        }
        frames.push(Sent { fin, rsv, opcode, mask, payload });
        b = &b[pos + len..];
    }
    frames
}

/// Takes every output byte with `first_chunk` + `advance`.
fn drain(p: &mut Protocol) -> Vec<u8> {
    let out = p.output();
    let mut v = Vec::new();
    while !out.is_empty() {
        let chunk = out.first_chunk();
        let n = chunk.len();
        assert!(n > 0, "non-empty output with an empty first chunk");
        v.extend_from_slice(chunk);
        out.advance(n);
    }
    v
}

/// Takes every output byte with `io_slices` + `advance`.
fn drain_vectored(p: &mut Protocol) -> Vec<u8> {
    let out = p.output();
    let mut v = Vec::new();
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); 4];
        let n = out.io_slices(&mut slices);
        assert!(n > 0);
        let before = v.len();
        for s in &slices[..n] {
            v.extend_from_slice(s);
        }
        let written = v.len() - before;
        out.advance(written);
    }
    v
}

/// The frames queued for sending (consumed).
fn sent(p: &mut Protocol) -> Vec<Sent> {
    decode_frames(&drain(p))
}

fn sent_frame(opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Sent {
    Sent { fin: true, rsv: 0, opcode, mask, payload: payload.to_vec() }
}

/// Polls until `Ok(None)` or an error.
fn poll_all(p: &mut Protocol) -> (Vec<Message>, Option<ProtocolError>) {
    let mut msgs = Vec::new();
    loop {
        match p.poll_message() {
            Ok(Some(m)) => msgs.push(m),
            Ok(None) => return (msgs, None),
            Err(e) => return (msgs, Some(e)),
        }
    }
}

fn server() -> Protocol {
    Protocol::new(Role::Server, Config::default())
}

fn client() -> Protocol {
    Protocol::new(Role::Client, Config::default())
}

fn text(s: &str) -> Message {
    Message::text(s)
}

fn close_msg(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode(code), reason: reason.to_owned() }))
}

// ---------------------------------------------------------------------------
// Feeding input in pieces
// ---------------------------------------------------------------------------

/// Everything observable after feeding some input to a server.
#[derive(Debug, PartialEq)]
struct Outcome {
    msgs: Vec<Message>,
    err: Option<ProtocolError>,
    sent: Vec<Sent>,
    state: State,
}

fn feed_pieces<'a>(cfg: &Config, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut p = Protocol::new(Role::Server, cfg.clone());
    let mut msgs = Vec::new();
    let mut err = None;
    for piece in pieces {
        p.receive(piece);
        let (m, e) = poll_all(&mut p);
        msgs.extend(m);
        if e.is_some() {
            err = e;
            break;
        }
    }
    Outcome { msgs, err, sent: sent(&mut p), state: p.state() }
}

/// Feeds `input` whole, split in two at every point, and one byte at a
/// time: the outcome must always be the same. Returns it.
fn same_at_every_split(cfg: &Config, input: &[u8]) -> Outcome {
    let whole = feed_pieces(cfg, [input]);
    // Large inputs are checked on several threads (debug builds are slow).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let splits: Vec<usize> = (0..=input.len()).collect();
    std::thread::scope(|scope| {
        for part in splits.chunks(splits.len().div_ceil(threads)) {
            let whole = &whole;
            scope.spawn(move || {
                for &k in part {
                    let got = feed_pieces(cfg, [&input[..k], &input[k..]]);
                    if got != *whole {
                        panic!("split at {k} of {}: {:?} / {:?} differs from whole input", input.len(), got.msgs.len(), got.err);
                    }
                }
            });
        }
    });
    let bytewise = feed_pieces(cfg, input.chunks(1));
    assert!(bytewise == whole, "one byte at a time differs from whole input");
    whole
}

#[test]
fn split_single_frame_text() {
    let input = cf(TEXT, "héllo wörld €𝄞".as_bytes());
    let o = same_at_every_split(&Config::default(), &input);
    assert_eq!(o.msgs, vec![text("héllo wörld €𝄞")]);
    assert_eq!((o.err, o.sent, o.state), (None, vec![], State::Open));
}

/// A masked binary frame of `payload`, whose length takes the header's
/// 7-bit code `len_code`, gives the same message at every split point.
fn masked_binary_reads_the_same_at_every_split(payload: Vec<u8>, len_code: u8) {
    let input = cf(BIN, &payload);
    assert_eq!(input[1], 0x80 | len_code);
    let o = same_at_every_split(&Config::default(), &input);
    assert_eq!(o.msgs, vec![Message::binary(payload)]);
    assert_eq!(o.err, None);
}

#[test]
fn split_masked_binary_16bit_length() {
    let payload: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
    masked_binary_reads_the_same_at_every_split(payload, 126);
}

#[test]
fn split_masked_binary_64bit_length() {
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 131 + i / 256) as u8).collect();
    masked_binary_reads_the_same_at_every_split(payload, 127);
}

#[test]
fn split_fragmented_text_with_ping_between_fragments() {
    // "é" (C3 A9) and "€" (E2 82 AC) are cut across fragment boundaries.
    let s = "aé€z";
    let b = s.as_bytes();
    let input = cat(&[
        &frame(false, 0, TEXT, Some(KEY), &b[..2]),
        &cf(PING, b"are you there"),
        &frame(false, 0, CONT, Some([9, 8, 7, 6]), &b[2..4]),
        &frame(true, 0, CONT, Some([1, 2, 3, 4]), &b[4..]),
    ]);
    let o = same_at_every_split(&Config::default(), &input);
    assert_eq!(o.msgs, vec![Message::Ping(Bytes::from_static(b"are you there")), text(s)]);
    assert_eq!(o.sent, vec![sent_frame(PONG, None, b"are you there")]);
    assert_eq!((o.err, o.state), (None, State::Open));
}

#[test]
fn split_close_frame() {
    let input = cf(CLOSE, &close_payload(1000, "fin ✓".as_bytes()));
    let o = same_at_every_split(&Config::default(), &input);
    assert_eq!(o.msgs, vec![close_msg(1000, "fin ✓")]);
    assert_eq!(o.sent, vec![sent_frame(CLOSE, None, &1000u16.to_be_bytes())]);
    assert_eq!((o.err, o.state), (None, State::Closed));
}

#[test]
fn read_buf_path_gives_the_same_messages_as_receive() {
    let input = cat(&[&cf(TEXT, b"one"), &cf(BIN, &[0u8; 5000]), &cf(PING, b"p")]);
    let mut s = server();
    for chunk in input.chunks(777) {
        s.read_buf().extend_from_slice(chunk);
        s.notify_received(chunk.len());
    }
    let (msgs, err) = poll_all(&mut s);
    assert_eq!(err, None);
    assert_eq!(msgs, vec![text("one"), Message::binary(vec![0u8; 5000]), Message::Ping(Bytes::from_static(b"p"))]);
}

/// `read_buf` asked for at least 4 KiB of room even when fewer bytes of
/// the frame were missing, so near the end of a large frame it grew the
/// buffer, and `Vec::reserve` doubled it: a copy of the whole buffered
/// frame (1 MiB for a 1 MiB message) and twice its memory. Reads the way
/// the event loop does (a first chunk copied in, then reads into all the
/// room offered) and checks the buffered payload never moves once its room
/// was reserved, and that the room reaches past the frame's end.
#[test]
fn read_buf_does_not_move_a_large_frame_near_its_end() {
    for len in [1 << 20, (1 << 20) + 1000, 100_000, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let input = cf(BIN, &payload);
        let mut s = server();
        let first = 64 * 1024;
        s.receive(&input[..first]);
        assert_eq!(poll_all(&mut s), (vec![], None));
        let mut at = first;
        let mut base: Option<*const u8> = None;
        let mut reserved = 0;
        while at < input.len() {
            let buf = s.read_buf();
            let room = buf.capacity() - buf.len();
            assert!(room > 0, "read_buf offered no room");
            // Room past the frame's end: the read that ends it comes back
            // short when nothing follows (the event loop then stops reading).
            assert!(room > input.len() - at, "len {len}: room {room} for the last {} bytes", input.len() - at);
            if let Some(b) = base {
                assert_eq!(b, buf.as_ptr(), "len {len}: the buffered frame moved at byte {at} of {}", input.len());
            } else {
                base = Some(buf.as_ptr());
                reserved = buf.capacity();
            }
            let n = room.min(64 * 1024).min(input.len() - at);
            buf.extend_from_slice(&input[at..at + n]);
            s.notify_received(n);
            at += n;
            let (msgs, err) = poll_all(&mut s);
            assert_eq!(err, None);
            if at == input.len() {
                assert_eq!(msgs, vec![Message::binary(payload.clone())]);
            } else {
                assert_eq!(msgs, vec![]);
            }
        }
        // The frame, or twice the first chunk (`Vec`'s amortized growth).
        assert!(reserved <= (len + 2 * 4096).max(2 * first), "len {len}: {reserved} bytes reserved");
    }
}

// ---------------------------------------------------------------------------
// Ping / pong
// ---------------------------------------------------------------------------

#[test]
fn ping_answered_by_pong_with_same_payload() {
    let mut s = server();
    let payload: Vec<u8> = (0..125u8).collect();
    s.receive(&cf(PING, &payload));
    assert_eq!(poll_all(&mut s), (vec![Message::Ping(payload.clone().into())], None));
    assert_eq!(sent(&mut s), vec![sent_frame(PONG, None, &payload)]);

    s.receive(&cf(PING, b""));
    assert_eq!(poll_all(&mut s), (vec![Message::Ping(Bytes::new())], None));
    assert_eq!(sent(&mut s), vec![sent_frame(PONG, None, b"")]);
}

#[test]
fn client_answers_ping_with_masked_pong() {
    let mut c = client();
    c.receive(&sf(PING, b"hi"));
    assert_eq!(poll_all(&mut c), (vec![Message::Ping(Bytes::from_static(b"hi"))], None));
    let frames = sent(&mut c);
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].opcode, frames[0].fin, &frames[0].payload[..]), (PONG, true, &b"hi"[..]));
    assert!(frames[0].mask.is_some(), "client pong must be masked");
}

#[test]
fn ping_between_fragments_answered_and_message_intact() {
    let mut s = server();
    s.receive(&frame(false, 0, BIN, Some(KEY), b"abc"));
    assert_eq!(poll_all(&mut s), (vec![], None));
    s.receive(&cf(PING, b"p1"));
    assert_eq!(poll_all(&mut s), (vec![Message::Ping(Bytes::from_static(b"p1"))], None));
    // The pong is queued right away, in the middle of the peer's message.
    assert_eq!(sent(&mut s), vec![sent_frame(PONG, None, b"p1")]);
    s.receive(&frame(true, 0, CONT, Some(KEY), b"def"));
    assert_eq!(poll_all(&mut s), (vec![Message::binary(&b"abcdef"[..])], None));
    assert_eq!(sent(&mut s), vec![]);
}

#[test]
fn unsolicited_pong_is_delivered_and_not_answered() {
    let mut s = server();
    s.receive(&cf(PONG, b"heartbeat"));
    assert_eq!(poll_all(&mut s), (vec![Message::Pong(Bytes::from_static(b"heartbeat"))], None));
    assert_eq!(sent(&mut s), vec![]);
    assert_eq!(s.state(), State::Open);
}

// ---------------------------------------------------------------------------
// Failures: each rule with its close code, and the close frame queued
// ---------------------------------------------------------------------------

/// Asserts the output holds exactly one close frame, last, with `code`, masked
/// exactly when `p` is a client. Earlier frames (pongs) are allowed.
fn assert_close_queued(p: &mut Protocol, code: u16) {
    let frames = sent(p);
    assert_eq!(frames.iter().filter(|f| f.opcode == CLOSE).count(), 1, "{frames:?}");
    let c = frames.last().unwrap();
    assert_eq!(c.opcode, CLOSE);
    assert!(c.fin);
    assert!(c.payload.len() >= 2 && c.payload.len() <= 125);
    assert_eq!(u16::from_be_bytes([c.payload[0], c.payload[1]]), code, "close code queued");
    assert!(std::str::from_utf8(&c.payload[2..]).is_ok());
    assert_eq!(c.mask.is_some(), p.role() == Role::Client);
}

/// Feeds `input` to a fresh endpoint; asserts that the connection fails with
/// `code`, that the close frame is queued, and that it stays failed.
fn expect_failure(role: Role, cfg: Config, input: &[u8], code: u16) -> ProtocolError {
    let mut p = Protocol::new(role, cfg);
    p.receive(input);
    let (msgs, err) = poll_all(&mut p);
    let err = err.unwrap_or_else(|| panic!("no error; messages {msgs:?}"));
    assert_eq!(err.close_code(), Some(CloseCode(code)), "{err:?}");
    assert!(err.is_peer_violation());
    assert_close_queued(&mut p, code);
    assert_eq!(p.state(), State::Closed);
    assert!(p.is_failed());
    assert_eq!(p.transport_action(), TransportAction::ShutdownAndLinger);
    assert_eq!(p.poll_message(), Ok(None));
    // Anything received afterwards is ignored.
    p.receive(&cf(TEXT, b"more"));
    assert_eq!(p.poll_message(), Ok(None));
    assert!(p.output().is_empty());
    err
}

fn expect_server_failure(input: &[u8], code: u16) -> ProtocolError {
    expect_failure(Role::Server, Config::default(), input, code)
}

#[test]
fn unmasked_client_frame_fails_1002() {
    let err = expect_server_failure(&sf(TEXT, b"hello"), 1002);
    assert_eq!(err, ProtocolError::UnmaskedFrame);
    // Detected from the two header bytes alone.
    let err = expect_server_failure(&sf(TEXT, b"hello")[..2], 1002);
    assert_eq!(err, ProtocolError::UnmaskedFrame);
}

#[test]
fn masked_server_frame_fails_1002() {
    let err = expect_failure(Role::Client, Config::default(), &cf(TEXT, b"hello"), 1002);
    assert_eq!(err, ProtocolError::MaskedFrame);
}

#[test]
fn rsv_bits_without_extension_fail_1002() {
    for rsv in [RSV1, RSV2, RSV3, RSV1 | RSV2, RSV1 | RSV2 | RSV3] {
        for op in [TEXT, BIN, PING] {
            let err = expect_server_failure(&frame(true, rsv, op, Some(KEY), b"x"), 1002);
            assert_eq!(err, ProtocolError::ReservedBits(rsv));
        }
    }
}

#[test]
fn reserved_opcodes_fail_1002() {
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        let err = expect_server_failure(&cf(op, b"x"), 1002);
        assert_eq!(err, ProtocolError::UnknownOpcode(op));
    }
}

#[test]
fn fragmented_ping_fails_1002() {
    let err = expect_server_failure(&frame(false, 0, PING, Some(KEY), b"x"), 1002);
    assert_eq!(err, ProtocolError::FragmentedControlFrame);
}

#[test]
fn fragmented_close_fails_1002() {
    let err = expect_server_failure(&frame(false, 0, CLOSE, Some(KEY), &close_payload(1000, b"")), 1002);
    assert_eq!(err, ProtocolError::FragmentedControlFrame);
}

#[test]
fn ping_with_126_bytes_fails_1002_from_header() {
    let input = cf(PING, &[7u8; 126]);
    assert_eq!(expect_server_failure(&input, 1002), ProtocolError::ControlFrameTooLong);
    // Only the header: the payload never needs to arrive.
    assert_eq!(expect_server_failure(&input[..8], 1002), ProtocolError::ControlFrameTooLong);
}

#[test]
fn non_minimal_length_fails_1002() {
    let mut input = vec![0x82, 0x80 | 126, 0, 5];
    input.extend_from_slice(&KEY);
    input.extend_from_slice(&[0; 5]);
    assert_eq!(expect_server_failure(&input, 1002), ProtocolError::NonMinimalLength);
}

#[test]
fn continuation_without_start_fails_1002() {
    let err = expect_server_failure(&cf(CONT, b"orphan"), 1002);
    assert_eq!(err, ProtocolError::UnexpectedContinuation);
    // Also after a complete message.
    let input = cat(&[&cf(TEXT, b"done"), &cf(CONT, b"orphan")]);
    let mut s = server();
    s.receive(&input);
    let (msgs, err) = poll_all(&mut s);
    assert_eq!(msgs, vec![text("done")]);
    assert_eq!(err, Some(ProtocolError::UnexpectedContinuation));
    assert_close_queued(&mut s, 1002);
}

#[test]
fn new_data_frame_while_fragmented_message_open_fails_1002() {
    for op in [TEXT, BIN] {
        let input = cat(&[&frame(false, 0, TEXT, Some(KEY), b"part"), &cf(op, b"new")]);
        assert_eq!(expect_server_failure(&input, 1002), ProtocolError::ExpectedContinuation);
    }
}

#[test]
fn frame_over_max_frame_size_fails_1009_from_header() {
    let cfg = Config { max_frame_size: 1000, ..Config::default() };
    // A frame of exactly the limit is accepted.
    let mut s = Protocol::new(Role::Server, cfg.clone());
    s.receive(&cf(BIN, &[1u8; 1000]));
    assert_eq!(poll_all(&mut s), (vec![Message::binary(vec![1u8; 1000])], None));
    // One byte more: only the header is fed.
    let hdr = header(true, 0, BIN, Some(KEY), 1001);
    let err = expect_failure(Role::Server, cfg.clone(), &hdr, 1009);
    assert_eq!(err, ProtocolError::FrameTooBig { size: 1001, max: 1000 });
    // A 64-bit length far beyond memory is refused without allocating.
    let hdr = header(true, 0, BIN, Some(KEY), 1 << 62);
    let err = expect_failure(Role::Server, cfg, &hdr, 1009);
    assert_eq!(err, ProtocolError::FrameTooBig { size: 1 << 62, max: 1000 });
}

#[test]
fn message_over_max_message_size_across_fragments_fails_1009_from_header() {
    let cfg = Config { max_message_size: 100, ..Config::default() };
    // 60 + 40 = 100 bytes is exactly the limit and accepted.
    let ok = cat(&[&frame(false, 0, BIN, Some(KEY), &[1; 60]), &frame(true, 0, CONT, Some(KEY), &[2; 40])]);
    let mut s = Protocol::new(Role::Server, cfg.clone());
    s.receive(&ok);
    let (msgs, err) = poll_all(&mut s);
    assert_eq!(err, None);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload().len(), 100);
    // 60 + 41: the second frame's header alone makes the message too big.
    let input = cat(&[&frame(false, 0, BIN, Some(KEY), &[1; 60]), &header(true, 0, CONT, Some(KEY), 41)]);
    let err = expect_failure(Role::Server, cfg.clone(), &input, 1009);
    assert_eq!(err, ProtocolError::MessageTooBig { size: 101, max: 100 });
    // A single first frame over the message limit (but under the frame limit).
    let err = expect_failure(Role::Server, cfg, &header(true, 0, TEXT, Some(KEY), 101), 1009);
    assert_eq!(err, ProtocolError::MessageTooBig { size: 101, max: 100 });
}

#[test]
fn invalid_utf8_fails_1007_in_the_middle_of_a_frame() {
    // A 200-byte text frame whose 3rd byte is invalid: feed only the header
    // and the first 3 payload bytes.
    let mut payload = b"ab\xffcd".to_vec();
    payload.resize(200, b'x');
    let full = cf(TEXT, &payload);
    let hdr_len = 2 + 2 + 4;
    let err = expect_server_failure(&full[..hdr_len + 3], 1007);
    assert_eq!(err, ProtocolError::InvalidUtf8);
    // A code point that is invalid after its second byte (a surrogate).
    let mut payload = b"ok\xed\xa0".to_vec();
    payload.resize(200, b'x');
    let err = expect_server_failure(&cf(TEXT, &payload)[..hdr_len + 4], 1007);
    assert_eq!(err, ProtocolError::InvalidUtf8);
}

#[test]
fn invalid_utf8_split_across_fragments_fails_1007() {
    // F4 ends fragment 1 (a valid prefix); 90 starts fragment 2 and makes it
    // U+110000, which is not Unicode.
    let first = frame(false, 0, TEXT, Some(KEY), b"abc\xf4");
    let mut s = server();
    s.receive(&first);
    assert_eq!(poll_all(&mut s), (vec![], None));
    let second = frame(true, 0, CONT, Some(KEY), b"\x90\x80\x80z");
    let err = expect_server_failure(&cat(&[&first, &second]), 1007);
    assert_eq!(err, ProtocolError::InvalidUtf8);
}

#[test]
fn text_ending_mid_code_point_fails_1007() {
    // "€" is E2 82 AC; the message ends after E2 82.
    let err = expect_server_failure(&cf(TEXT, b"price: \xe2\x82"), 1007);
    assert_eq!(err, ProtocolError::InvalidUtf8);
    let input = cat(&[&frame(false, 0, TEXT, Some(KEY), b"x\xe2"), &frame(true, 0, CONT, Some(KEY), b"\x82")]);
    assert_eq!(expect_server_failure(&input, 1007), ProtocolError::InvalidUtf8);
}

#[test]
fn binary_message_is_not_utf8_checked() {
    let mut s = server();
    s.receive(&cf(BIN, b"\xff\xfe\xe2"));
    assert_eq!(poll_all(&mut s), (vec![Message::binary(&b"\xff\xfe\xe2"[..])], None));
}

#[test]
fn close_with_one_byte_payload_fails_1002() {
    let err = expect_server_failure(&cf(CLOSE, &[0x03]), 1002);
    assert_eq!(err, ProtocolError::InvalidClose(ClosePayloadError::Truncated));
}

#[test]
fn close_codes_0_to_5000_echoed_or_refused() {
    for code in 0u16..=5000 {
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        let input = cf(CLOSE, &close_payload(code, b"why"));
        if valid {
            let mut s = server();
            s.receive(&input);
            assert_eq!(poll_all(&mut s), (vec![close_msg(code, "why")], None), "code {code}");
            assert_eq!(sent(&mut s), vec![sent_frame(CLOSE, None, &code.to_be_bytes())], "code {code}");
            assert_eq!(s.state(), State::Closed);
            assert!(!s.is_failed());
        } else {
            let err = expect_server_failure(&input, 1002);
            assert_eq!(err, ProtocolError::InvalidClose(ClosePayloadError::InvalidCode(code)));
        }
    }
}

#[test]
fn close_reason_not_utf8_fails_1007() {
    let err = expect_server_failure(&cf(CLOSE, &close_payload(1000, b"bad \xc3\x28")), 1007);
    assert_eq!(err, ProtocolError::InvalidClose(ClosePayloadError::InvalidUtf8));
}

#[test]
fn violation_while_closing_sends_no_second_close() {
    let mut s = server();
    s.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(sent(&mut s).len(), 1);
    s.receive(&sf(TEXT, b"unmasked"));
    assert_eq!(poll_all(&mut s), (vec![], Some(ProtocolError::UnmaskedFrame)));
    assert_eq!(sent(&mut s), vec![]);
    assert_eq!(s.state(), State::Closed);
}

// ---------------------------------------------------------------------------
// Closing handshake
// ---------------------------------------------------------------------------

#[test]
fn server_echoes_close_then_closes_transport() {
    let mut s = server();
    s.receive(&cf(CLOSE, &close_payload(1001, b"going")));
    assert_eq!(s.transport_action(), TransportAction::KeepOpen);
    assert_eq!(poll_all(&mut s), (vec![close_msg(1001, "going")], None));
    assert_eq!(sent(&mut s), vec![sent_frame(CLOSE, None, &1001u16.to_be_bytes())]);
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.transport_action(), TransportAction::Close);
    assert!(!s.is_failed());
    assert_eq!(s.close_frame_received(), Some(&Some(CloseFrame { code: CloseCode(1001), reason: "going".into() })));
}

#[test]
fn empty_close_is_echoed_empty() {
    let mut s = server();
    s.receive(&cf(CLOSE, b""));
    assert_eq!(poll_all(&mut s), (vec![Message::Close(None)], None));
    assert_eq!(sent(&mut s), vec![sent_frame(CLOSE, None, b"")]);
    assert_eq!(s.close_frame_received(), Some(&None));
    assert_eq!(s.transport_action(), TransportAction::Close);
}

#[test]
fn server_initiated_close_completes_on_reply() {
    let mut s = server();
    s.close(CloseCode::NORMAL, "shutting down").unwrap();
    assert_eq!(s.state(), State::Closing);
    assert_eq!(sent(&mut s), vec![sent_frame(CLOSE, None, &close_payload(1000, b"shutting down"))]);
    assert_eq!(s.transport_action(), TransportAction::KeepOpen);
    // Messages still arrive while closing.
    s.receive(&cat(&[&cf(TEXT, b"last words"), &cf(CLOSE, &close_payload(1000, b""))]));
    assert_eq!(poll_all(&mut s), (vec![text("last words"), close_msg(1000, "")], None));
    assert_eq!(sent(&mut s), vec![], "no second close");
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.transport_action(), TransportAction::Close);
}

#[test]
fn client_close_waits_for_eof_before_closing_transport() {
    let mut c = client();
    c.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(c.state(), State::Closing);
    let frames = sent(&mut c);
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].opcode, &frames[0].payload[..]), (CLOSE, &close_payload(1000, b"done")[..]));
    assert!(frames[0].mask.is_some());

    c.receive(&sf(CLOSE, &close_payload(1000, b"")));
    assert_eq!(poll_all(&mut c), (vec![close_msg(1000, "")], None));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(sent(&mut c), vec![]);
    // RFC 6455 §7.1.1: the server closes TCP first.
    assert_eq!(c.transport_action(), TransportAction::AwaitPeerClose);
    c.notify_received(0);
    assert_eq!(c.transport_action(), TransportAction::Close);
    // EOF after a clean closing handshake is not an error.
    assert_eq!(c.poll_message(), Ok(None));
    assert!(!c.is_failed());
}

#[test]
fn client_close_closes_transport_after_close_timeout() {
    let cfg = Config { close_timeout: Duration::from_secs(3), ..Config::default() };
    let mut c = Protocol::new(Role::Client, cfg);
    let t0 = Instant::now();
    assert_eq!(c.poll_timeout(t0), None);
    c.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(c.poll_timeout(t0), Some(t0 + Duration::from_secs(3)));
    c.receive(&sf(CLOSE, &close_payload(1000, b"")));
    assert_eq!(poll_all(&mut c), (vec![close_msg(1000, "")], None));
    assert_eq!(c.state(), State::Closed);
    c.handle_timeout(t0 + Duration::from_millis(2999));
    assert_eq!(c.transport_action(), TransportAction::AwaitPeerClose);
    c.handle_timeout(t0 + Duration::from_secs(3));
    assert_eq!(c.transport_action(), TransportAction::CloseNow);
    assert_eq!(c.poll_message(), Ok(None), "a completed handshake is not a timeout");
    assert!(!c.is_failed());
    assert_eq!(c.poll_timeout(t0 + Duration::from_secs(3)), None);
}

#[test]
fn client_answers_server_close_and_waits_for_transport() {
    let mut c = client();
    c.receive(&sf(CLOSE, &close_payload(4000, b"app")));
    assert_eq!(poll_all(&mut c), (vec![close_msg(4000, "app")], None));
    let frames = sent(&mut c);
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].opcode, &frames[0].payload[..]), (CLOSE, &4000u16.to_be_bytes()[..]));
    assert!(frames[0].mask.is_some());
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.transport_action(), TransportAction::AwaitPeerClose);
    c.notify_received(0);
    assert_eq!(c.transport_action(), TransportAction::Close);
}

#[test]
fn data_after_close_frame_is_ignored() {
    let mut s = server();
    s.receive(&cat(&[&cf(CLOSE, &close_payload(1000, b"")), &cf(TEXT, b"late"), &cf(PING, b"late")]));
    assert_eq!(poll_all(&mut s), (vec![close_msg(1000, "")], None));
    s.receive(&cf(TEXT, b"later"));
    s.receive(&sf(TEXT, b"invalid too"));
    assert_eq!(poll_all(&mut s), (vec![], None));
    assert_eq!(sent(&mut s), vec![sent_frame(CLOSE, None, &1000u16.to_be_bytes())], "no pong, one close");
}

#[test]
fn send_after_close_is_refused() {
    let mut s = server();
    s.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(s.send(text("x")), Err(ProtocolError::SendAfterClose));
    assert_eq!(s.send(Message::binary(&b"x"[..])), Err(ProtocolError::SendAfterClose));
    assert_eq!(s.send(Message::Ping(Bytes::new())), Err(ProtocolError::SendAfterClose));
    assert_eq!(s.send(Message::Pong(Bytes::new())), Err(ProtocolError::SendAfterClose));
    let frag = Message::Fragment { kind: DataKind::Text, data: Bytes::from_static(b"x"), last: true };
    assert_eq!(s.send(frag), Err(ProtocolError::SendAfterClose));
    assert_eq!(s.close(CloseCode::NORMAL, ""), Err(ProtocolError::SendAfterClose));
    assert_eq!(s.send(Message::Close(None)), Err(ProtocolError::SendAfterClose));
    let prepared = PreparedFrame::new(&text("x")).unwrap();
    assert_eq!(s.send_prepared(&prepared), Err(ProtocolError::SendAfterClose));
    assert_eq!(sent(&mut s).len(), 1, "only the first close");

    // Also after the peer's close was received and answered.
    let mut s = server();
    s.receive(&cf(CLOSE, b""));
    poll_all(&mut s);
    assert_eq!(s.send(text("x")), Err(ProtocolError::SendAfterClose));
    assert_eq!(sent(&mut s), vec![sent_frame(CLOSE, None, b"")]);
}

#[test]
fn sending_reserved_close_codes_is_refused() {
    let mut c = client();
    for code in [1005u16, 1006, 1015, 0, 999, 1004, 2999, 5000] {
        assert!(matches!(c.close(CloseCode(code), "x"), Err(ProtocolError::InvalidSend(_))), "code {code}");
        let msg = Message::Close(Some(CloseFrame { code: CloseCode(code), reason: String::new() }));
        assert!(matches!(c.send(msg), Err(ProtocolError::InvalidSend(_))), "code {code}");
    }
    assert_eq!(c.state(), State::Open);
    assert!(c.output().is_empty());
    c.close(CloseCode(4999), "").unwrap();
    assert_eq!(c.state(), State::Closing);
}

#[test]
fn close_reason_is_cut_to_123_bytes_on_a_char_boundary() {
    let mut s = server();
    s.close(CloseCode::NORMAL, &"€".repeat(50)).unwrap();
    let frames = sent(&mut s);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].payload.len(), 2 + 123);
    assert_eq!(std::str::from_utf8(&frames[0].payload[2..]).unwrap(), "€".repeat(41));
}

// ---------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn ping_interval_queues_a_keepalive_ping() {
    let cfg = Config { ping_interval: Some(secs(10)), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    let t0 = Instant::now();
    assert_eq!(s.poll_timeout(t0), Some(t0 + secs(10)));
    s.handle_timeout(t0 + secs(9));
    assert!(s.output().is_empty());
    s.handle_timeout(t0 + secs(10));
    assert_eq!(sent(&mut s), vec![sent_frame(PING, None, b"")]);
    assert_eq!(s.poll_timeout(t0 + secs(10)), Some(t0 + secs(20)));
    // The answer to the ping postpones the next one.
    s.receive(&cf(PONG, b""));
    assert_eq!(poll_all(&mut s), (vec![Message::Pong(Bytes::new())], None));
    // (first, the end of the control-frame window the pong opened)
    assert_eq!(s.poll_timeout(t0 + secs(15)), Some(t0 + secs(16)));
    s.handle_timeout(t0 + secs(16));
    assert_eq!(s.poll_timeout(t0 + secs(16)), Some(t0 + secs(25)));
    s.handle_timeout(t0 + secs(20));
    assert!(s.output().is_empty());
    assert_eq!(s.state(), State::Open);
}

/// `p` timed out with `error`: closed and failed, its transport to be
/// closed now, and nothing more to read or write.
fn assert_timed_out(p: &mut Protocol, error: ProtocolError) {
    assert_eq!(p.poll_message(), Err(error));
    assert_eq!(p.state(), State::Closed);
    assert!(p.is_failed());
    assert_eq!(p.transport_action(), TransportAction::CloseNow);
    assert_eq!(p.poll_message(), Ok(None));
    assert!(p.output().is_empty());
}

#[test]
fn idle_timeout_sends_1001_then_fails_with_idle_timeout() {
    let cfg = Config { idle_timeout: Some(secs(30)), close_timeout: secs(5), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    let t0 = Instant::now();
    assert_eq!(s.poll_timeout(t0), Some(t0 + secs(30)));
    s.handle_timeout(t0 + secs(30));
    assert_eq!(s.state(), State::Closing);
    assert_close_queued(&mut s, 1001);
    assert_eq!(s.poll_message(), Ok(None));
    assert_eq!(s.poll_timeout(t0 + secs(30)), Some(t0 + secs(35)));
    s.handle_timeout(t0 + secs(34));
    assert_eq!(s.state(), State::Closing);
    s.handle_timeout(t0 + secs(35));
    assert_timed_out(&mut s, ProtocolError::IdleTimeout);
}

#[test]
fn received_data_postpones_idle_timeout() {
    let cfg = Config { idle_timeout: Some(secs(30)), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    let t0 = Instant::now();
    s.poll_timeout(t0);
    s.receive(&cf(TEXT, b"alive"));
    assert_eq!(poll_all(&mut s), (vec![text("alive")], None));
    assert_eq!(s.poll_timeout(t0 + secs(20)), Some(t0 + secs(50)));
    s.handle_timeout(t0 + secs(30));
    assert_eq!(s.state(), State::Open);
    assert!(s.output().is_empty());
}

#[test]
fn peer_that_never_answers_close_fails_with_close_timeout() {
    let mut c = client();
    let t0 = Instant::now();
    c.poll_timeout(t0);
    c.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(sent(&mut c).len(), 1);
    assert_eq!(c.poll_timeout(t0), Some(t0 + secs(5)));
    c.handle_timeout(t0 + secs(4));
    assert_eq!(c.poll_message(), Ok(None));
    c.handle_timeout(t0 + secs(5));
    assert_timed_out(&mut c, ProtocolError::CloseTimeout);
}

#[test]
fn close_timeout_runs_from_the_last_write_while_a_backlog_drains() {
    // A graceful close behind a backlog: the peer is still reading what was
    // queued before our close frame, so it is not cut off while the output
    // makes progress; once nothing more is written, the usual timeout.
    let mut s = server();
    let t0 = Instant::now();
    s.poll_timeout(t0);
    for _ in 0..4 {
        s.send(Message::binary(vec![7u8; 1000])).unwrap();
    }
    s.close(CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(s.poll_timeout(t0), Some(t0 + secs(5)));
    // 4 s later the peer has read a part: the timeout restarts.
    s.output().advance(1500);
    assert_eq!(s.poll_timeout(t0 + secs(4)), Some(t0 + secs(9)));
    s.handle_timeout(t0 + secs(5));
    assert_eq!(s.poll_message(), Ok(None), "cut off while the backlog drains");
    assert_eq!(s.state(), State::Closing);
    // The rest, close frame included, is written at 8 s; no answer follows.
    let rest = s.output().len();
    s.output().advance(rest);
    assert_eq!(s.poll_timeout(t0 + secs(8)), Some(t0 + secs(13)));
    s.handle_timeout(t0 + secs(12));
    assert_eq!(s.poll_message(), Ok(None));
    s.handle_timeout(t0 + secs(13));
    assert_eq!(s.poll_message(), Err(ProtocolError::CloseTimeout));
    assert_eq!(s.transport_action(), TransportAction::CloseNow);
}

// ---------------------------------------------------------------------------
// End of stream
// ---------------------------------------------------------------------------

#[test]
fn eof_mid_frame_is_connection_reset() {
    let mut s = server();
    s.receive(&cf(TEXT, b"hello")[..5]);
    assert_eq!(s.poll_message(), Ok(None));
    s.notify_received(0);
    assert_eq!(s.poll_message(), Err(ProtocolError::ConnectionReset));
    assert_eq!(s.poll_message(), Ok(None));
    assert_eq!(s.state(), State::Closed);
    assert!(s.is_failed());
    assert_eq!(s.transport_action(), TransportAction::Close);
    assert_eq!(sent(&mut s), vec![], "1006 is never sent");
}

#[test]
fn eof_after_complete_messages_delivers_them_first() {
    let mut s = server();
    s.receive(&cat(&[&cf(TEXT, b"a"), &cf(TEXT, b"b")]));
    s.notify_received(0);
    let (msgs, err) = poll_all(&mut s);
    assert_eq!(msgs, vec![text("a"), text("b")]);
    assert_eq!(err, Some(ProtocolError::ConnectionReset));
}

// ---------------------------------------------------------------------------
// Streaming mode
// ---------------------------------------------------------------------------

fn streaming() -> Config {
    Config { stream_messages: true, ..Config::default() }
}

/// Checks a list of fragments forms one message: same kind, `last` only at
/// the end; returns the concatenated bytes.
fn join_fragments(msgs: &[Message], want_kind: DataKind) -> Vec<u8> {
    assert!(!msgs.is_empty());
    let mut all = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let Message::Fragment { kind, data, last } = m else { panic!("not a fragment: {m:?}") };
        assert_eq!(*kind, want_kind);
        assert_eq!(*last, i == msgs.len() - 1, "last flag on piece {i} of {}", msgs.len());
        all.extend_from_slice(data);
    }
    all
}

#[test]
fn streaming_fragmented_text_delivered_in_pieces() {
    let s = "héllo, wörld: €€ 𝄞!";
    let b = s.as_bytes();
    // Cut inside "é" and inside "𝄞".
    let (c1, c2) = (2, b.len() - 2);
    let input = cat(&[
        &frame(false, 0, TEXT, Some(KEY), &b[..c1]),
        &frame(false, 0, CONT, Some(KEY), &b[c1..c2]),
        &frame(true, 0, CONT, Some(KEY), &b[c2..]),
    ]);
    let whole = feed_pieces(&streaming(), [&input[..]]);
    assert_eq!((&whole.err, whole.msgs.len()), (&None, 3));
    assert_eq!(join_fragments(&whole.msgs, DataKind::Text), b);

    let bytewise = feed_pieces(&streaming(), input.chunks(1));
    assert_eq!(bytewise.err, None);
    assert!(bytewise.msgs.len() >= 3);
    assert_eq!(join_fragments(&bytewise.msgs, DataKind::Text), b);
}

#[test]
fn streaming_large_binary_frame_fed_in_chunks() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let input = cf(BIN, &payload);
    let mut s = Protocol::new(Role::Server, streaming());
    let mut msgs = Vec::new();
    let mut received = 0;
    for chunk in input.chunks(1000) {
        s.receive(chunk);
        received += chunk.len();
        let (m, err) = poll_all(&mut s);
        assert_eq!(err, None);
        assert!(m.len() <= 1, "one piece per read");
        msgs.extend(m);
        // Everything received so far (minus the 14-byte header) was handed out.
        let delivered: usize = msgs.iter().map(|m| m.payload().len()).sum();
        assert_eq!(delivered, received - 14);
    }
    assert_eq!(msgs.len(), input.len().div_ceil(1000));
    assert!(msgs.iter().all(|m| m.payload().len() <= 1000));
    assert_eq!(join_fragments(&msgs, DataKind::Binary), payload);
}

#[test]
fn streaming_invalid_utf8_fails_before_the_piece_is_delivered() {
    let mut s = Protocol::new(Role::Server, streaming());
    let full = cf(TEXT, b"ok\xc0rest");
    s.receive(&full[..6 + 2]);
    let (msgs, err) = poll_all(&mut s);
    assert_eq!(err, None);
    assert_eq!(join_fragments_prefix(&msgs), b"ok");
    s.receive(&full[8..]);
    assert_eq!(poll_all(&mut s), (vec![], Some(ProtocolError::InvalidUtf8)));
    assert_close_queued(&mut s, 1007);
}

/// Concatenates non-final text fragments.
fn join_fragments_prefix(msgs: &[Message]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| match m {
            Message::Fragment { kind: DataKind::Text, data, last: false } => data.to_vec(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn streaming_message_size_limit_still_applies() {
    let cfg = Config { max_message_size: 100, ..streaming() };
    let input = cat(&[&frame(false, 0, BIN, Some(KEY), &[0; 80]), &header(true, 0, CONT, Some(KEY), 21)]);
    let err = expect_failure(Role::Server, cfg, &input, 1009);
    assert_eq!(err, ProtocolError::MessageTooBig { size: 101, max: 100 });
}

// ---------------------------------------------------------------------------
// Outgoing frames
// ---------------------------------------------------------------------------

#[test]
fn max_send_frame_size_splits_messages() {
    let cfg = Config { max_send_frame_size: Some(4), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    s.send(text("hello world")).unwrap();
    let f = |fin, opcode, p: &[u8]| Sent { fin, rsv: 0, opcode, mask: None, payload: p.to_vec() };
    assert_eq!(sent(&mut s), vec![f(false, TEXT, b"hell"), f(false, CONT, b"o wo"), f(true, CONT, b"rld")]);
    s.send(Message::binary(&b"12345678"[..])).unwrap();
    assert_eq!(sent(&mut s), vec![f(false, BIN, b"1234"), f(true, CONT, b"5678")]);
    s.send(text("abcd")).unwrap();
    assert_eq!(sent(&mut s), vec![f(true, TEXT, b"abcd")]);
    s.send(text("")).unwrap();
    assert_eq!(sent(&mut s), vec![f(true, TEXT, b"")]);
    // Control frames are never split.
    s.send(Message::Ping(Bytes::from_static(b"0123456789"))).unwrap();
    assert_eq!(sent(&mut s), vec![f(true, PING, b"0123456789")]);
}

#[test]
fn client_frames_are_masked_and_round_trip() {
    let cfg = Config { max_send_frame_size: Some(100), ..Config::default() };
    let mut c = Protocol::new(Role::Client, cfg);
    let payload: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
    c.send(Message::binary(payload.clone())).unwrap();
    c.send(Message::Ping(Bytes::from_static(b"p"))).unwrap();
    let bytes = drain(&mut c);
    let frames = decode_frames(&bytes);
    assert_eq!(frames.len(), 4);
    assert!(frames.iter().all(|f| f.mask.is_some()), "every client frame is masked");
    let joined: Vec<u8> = frames[..3].iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(joined, payload);
    let mut s = server();
    s.receive(&bytes);
    assert_eq!(poll_all(&mut s), (vec![Message::binary(payload), Message::Ping(Bytes::from_static(b"p"))], None));
}

#[test]
fn server_frames_are_unmasked() {
    let mut s = server();
    s.send(text("plain")).unwrap();
    s.send(Message::binary(vec![9u8; 20_000])).unwrap();
    let bytes = drain(&mut s);
    assert_eq!(&bytes[..7], b"\x81\x05plain");
    let frames = decode_frames(&bytes);
    assert!(frames.iter().all(|f| f.mask.is_none()));
    assert_eq!(frames[1].payload, vec![9u8; 20_000]);
    let mut c = client();
    c.receive(&bytes);
    assert_eq!(poll_all(&mut c), (vec![text("plain"), Message::binary(vec![9u8; 20_000])], None));
}

#[test]
fn prepared_frame_bytes_equal_server_send() {
    let messages = [
        text("broadcast"),
        Message::binary(vec![0xabu8; 20_000]),
        Message::binary(vec![1u8; 70_000]),
        Message::Ping(Bytes::from_static(b"ping")),
        Message::Pong(Bytes::new()),
    ];
    for m in messages {
        let prepared = PreparedFrame::new(&m).unwrap();
        let mut a = server();
        a.send(m.clone()).unwrap();
        let via_send = drain(&mut a);
        assert_eq!(prepared.as_bytes()[..], via_send[..]);
        let mut b = server();
        b.send_prepared(&prepared).unwrap();
        b.send_prepared(&prepared).unwrap();
        assert_eq!(drain_vectored(&mut b), [&via_send[..], &via_send[..]].concat());
    }
    assert!(PreparedFrame::new(&Message::Close(None)).is_err());
    assert!(PreparedFrame::new(&Message::Ping(vec![0u8; 126].into())).is_err());
}

#[test]
fn send_prepared_is_refused_on_a_client() {
    let prepared = PreparedFrame::new(&text("x")).unwrap();
    let mut c = client();
    assert!(matches!(c.send_prepared(&prepared), Err(ProtocolError::InvalidSend(_))));
    assert!(c.output().is_empty());
}

#[test]
fn sent_fragments_form_one_message() {
    let mut s = server();
    let piece = |data: &'static [u8], last| Message::Fragment { kind: DataKind::Text, data: Bytes::from_static(data), last };
    s.send(piece(b"ab", false)).unwrap();
    // A whole message may not interleave with the open one.
    assert!(matches!(s.send(text("no")), Err(ProtocolError::InvalidSend(_))));
    let bin = Message::Fragment { kind: DataKind::Binary, data: Bytes::new(), last: true };
    assert!(matches!(s.send(bin), Err(ProtocolError::InvalidSend(_))));
    s.send(Message::Ping(Bytes::new())).unwrap();
    s.send(piece(b"cd", true)).unwrap();
    let f = |fin, opcode, p: &[u8]| Sent { fin, rsv: 0, opcode, mask: None, payload: p.to_vec() };
    assert_eq!(sent(&mut s), vec![f(false, TEXT, b"ab"), f(true, PING, b""), f(true, CONT, b"cd")]);
}

#[test]
fn control_payload_over_125_is_refused_on_send() {
    let mut s = server();
    assert!(matches!(s.send(Message::Ping(vec![0u8; 126].into())), Err(ProtocolError::InvalidSend(_))));
    assert!(matches!(s.send(Message::Pong(vec![0u8; 126].into())), Err(ProtocolError::InvalidSend(_))));
    assert!(s.output().is_empty());
    assert_eq!(s.state(), State::Open);
}

// ---------------------------------------------------------------------------
// Extension hook
// ---------------------------------------------------------------------------

/// Calls seen by the test extension's `decode`: (message_rsv, input, last, limit).
type DecodeLog = Arc<Mutex<Vec<(u8, Vec<u8>, bool, usize)>>>;

/// A test extension on RSV1 that XORs every payload byte with 0x80: ASCII
/// text becomes invalid UTF-8 on the wire, so it shows the order of decoding
/// and validation.
struct XorExt {
    log: DecodeLog,
}

fn xor80(b: &[u8]) -> Vec<u8> {
    b.iter().map(|x| x ^ 0x80).collect()
}

impl Extension for XorExt {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn decode(&mut self, message_rsv: u8, payload: Bytes, last: bool, limit: usize) -> Result<Bytes, ProtocolError> {
        self.log.lock().unwrap().push((message_rsv, payload.to_vec(), last, limit));
        if payload.as_ref() == b"FAIL" {
            return Err(ProtocolError::Extension { reason: "refused".into(), code: CloseCode::POLICY_VIOLATION });
        }
        Ok(xor80(&payload).into())
    }

    fn encode(&mut self, _kind: DataKind, payload: Bytes) -> Result<(u8, Bytes), ProtocolError> {
        Ok((RSV1, xor80(&payload).into()))
    }
}

fn with_ext(role: Role, cfg: Config) -> (Protocol, DecodeLog) {
    let log = DecodeLog::default();
    let mut p = Protocol::new(role, cfg);
    p.set_extension(Box::new(XorExt { log: log.clone() }));
    (p, log)
}

#[test]
fn extension_rsv1_on_first_frame_accepted_and_decoded() {
    let (mut s, log) = with_ext(Role::Server, Config::default());
    s.receive(&cat(&[
        &frame(false, RSV1, TEXT, Some(KEY), &xor80(b"hel")),
        &cf(PING, b"p"),
        &frame(true, 0, CONT, Some(KEY), &xor80(b"lo")),
    ]));
    assert_eq!(poll_all(&mut s), (vec![Message::Ping(Bytes::from_static(b"p")), text("hello")], None));
    let max = Config::default().max_message_size;
    assert_eq!(
        *log.lock().unwrap(),
        vec![(RSV1, xor80(b"hel"), false, max), (RSV1, xor80(b"lo"), true, max - 3)],
        "decode sees unmasked frames in order, control frames never"
    );
    // A message without RSV1 bypasses the extension.
    s.receive(&cf(BIN, b"raw"));
    assert_eq!(poll_all(&mut s), (vec![Message::binary(&b"raw"[..])], None));
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[test]
fn extension_payload_decoded_before_utf8_validation() {
    let wire = xor80(b"abc");
    assert!(std::str::from_utf8(&wire).is_err());
    let (mut s, _) = with_ext(Role::Server, Config::default());
    s.receive(&frame(true, RSV1, TEXT, Some(KEY), &wire));
    assert_eq!(poll_all(&mut s), (vec![text("abc")], None));
    // Valid on the wire, invalid once decoded: 1007.
    let (mut s, _) = with_ext(Role::Server, Config::default());
    s.receive(&frame(true, RSV1, TEXT, Some(KEY), b"\x7f"));
    assert_eq!(poll_all(&mut s), (vec![], Some(ProtocolError::InvalidUtf8)));
    assert_close_queued(&mut s, 1007);
}

#[test]
fn extension_rsv1_on_continuation_rejected_1002() {
    for first_rsv in [RSV1, 0] {
        let (mut s, _) = with_ext(Role::Server, Config::default());
        s.receive(&cat(&[
            &frame(false, first_rsv, BIN, Some(KEY), b"a"),
            &frame(true, RSV1, CONT, Some(KEY), b"b"),
        ]));
        assert_eq!(poll_all(&mut s), (vec![], Some(ProtocolError::ReservedBits(RSV1))));
        assert_close_queued(&mut s, 1002);
    }
}

#[test]
fn extension_rsv1_on_control_frame_rejected_1002() {
    for op in [PING, PONG, CLOSE] {
        let (mut s, log) = with_ext(Role::Server, Config::default());
        s.receive(&frame(true, RSV1, op, Some(KEY), b""));
        assert_eq!(poll_all(&mut s), (vec![], Some(ProtocolError::ReservedBits(RSV1))), "opcode {op}");
        assert_close_queued(&mut s, 1002);
        assert!(log.lock().unwrap().is_empty());
    }
}

#[test]
fn extension_does_not_allow_other_rsv_bits() {
    let (mut s, _) = with_ext(Role::Server, Config::default());
    s.receive(&frame(true, RSV1 | RSV2, TEXT, Some(KEY), b""));
    assert_eq!(poll_all(&mut s), (vec![], Some(ProtocolError::ReservedBits(RSV1 | RSV2))));
    assert_close_queued(&mut s, 1002);
}

#[test]
fn extension_error_fails_with_its_close_code() {
    let (mut s, _) = with_ext(Role::Server, Config::default());
    s.receive(&frame(true, RSV1, BIN, Some(KEY), b"FAIL"));
    let (_, err) = poll_all(&mut s);
    assert!(matches!(err, Some(ProtocolError::Extension { .. })));
    assert_close_queued(&mut s, 1008);
}

#[test]
fn extension_encode_sets_rsv1_on_first_frame_only() {
    let cfg = Config { max_send_frame_size: Some(3), ..Config::default() };
    let (mut s, _) = with_ext(Role::Server, cfg);
    s.send(text("hello!!")).unwrap();
    s.send(Message::Ping(Bytes::from_static(b"p"))).unwrap();
    let f = |fin, rsv, opcode, p: &[u8]| Sent { fin, rsv, opcode, mask: None, payload: p.to_vec() };
    assert_eq!(
        sent(&mut s),
        vec![
            f(false, RSV1, TEXT, &xor80(b"hel")),
            f(false, 0, CONT, &xor80(b"lo!")),
            f(true, 0, CONT, &xor80(b"!")),
            f(true, 0, PING, b"p"),
        ]
    );
    // A client with the same extension reads it back.
    let (mut c, _) = with_ext(Role::Client, Config::default());
    s.send(Message::binary(&b"round trip"[..])).unwrap();
    c.receive(&drain(&mut s));
    assert_eq!(poll_all(&mut c), (vec![Message::binary(&b"round trip"[..])], None));
}

// ---------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------

/// After the closing handshake a client keeps reading until the server closes
/// TCP (RFC 6455 §7.1.1). `receive` drops what arrives then, but bytes a
/// driver reads into `read_buf` are never consumed nor dropped: a peer that
/// keeps sending grows the buffer without bound until `close_timeout`.
#[test]
fn regression_read_buf_after_close_keeps_growing() {
    let mut c = client();
    c.close(CloseCode::NORMAL, "").unwrap();
    drain(&mut c);
    c.receive(&sf(CLOSE, &close_payload(1000, b"")));
    assert_eq!(poll_all(&mut c), (vec![close_msg(1000, "")], None));
    assert_eq!(c.transport_action(), TransportAction::AwaitPeerClose, "the client waits for the server's EOF");
    for _ in 0..256 {
        c.read_buf().extend_from_slice(&[0u8; 4096]);
        c.notify_received(4096);
        assert_eq!(c.poll_message(), Ok(None));
    }
    assert!(c.buffered_capacity() <= 64 * 1024, "{} bytes buffered after close", c.buffered_capacity());
}

/// A peer that floods pings and never reads must not grow our output
/// without bound; the latest ping is still answered once the backlog drains.
#[test]
fn regression_ping_flood_without_reading_is_bounded() {
    use crate::{Config, Message, Protocol, Role};
    // Without the rate limit (which would end this flood at 1,000): the
    // memory bound holds on its own.
    let mut server = Protocol::new(Role::Server, Config { max_control_frames_per_second: None, ..Config::default() });
    let mut client = Protocol::new(Role::Client, Config::default());
    for i in 0..20_000u32 {
        client.send(Message::Ping(bytes::Bytes::from(format!("{i:0>100}")))).unwrap();
    }
    let mut wire = Vec::new();
    while !client.output().is_empty() {
        let chunk = client.output().first_chunk().to_vec();
        client.output().advance(chunk.len());
        wire.extend_from_slice(&chunk);
    }
    server.receive(&wire);
    let mut pings = 0;
    while let Some(m) = server.poll_message().unwrap() {
        assert!(matches!(m, Message::Ping(_)));
        pings += 1;
    }
    assert_eq!(pings, 20_000);
    let backlog = server.output().len();
    assert!(backlog <= super::recv::PONG_BACKLOG + 200, "output grew to {backlog} bytes");
    // Drain the output: the most recent ping is answered next.
    let n = server.output().len();
    server.output().advance(n);
    assert_eq!(server.poll_message().unwrap(), None);
    let pong = server.output().first_chunk().to_vec();
    assert_eq!(&pong[..2], &[0x8a, 100]);
    assert_eq!(&pong[2..], format!("{:0>100}", 19_999).as_bytes());
}

// ---------------------------------------------------------------------------
// The transport action (the one closing sequence every driver follows)
// ---------------------------------------------------------------------------

#[test]
fn failed_connection_lingers_until_eof() {
    let mut s = server();
    s.receive(&sf(TEXT, b"unmasked"));
    assert!(s.poll_message().is_err());
    assert_eq!(s.transport_action(), TransportAction::ShutdownAndLinger);
    assert!(s.transport_action().shuts_down() && s.transport_action().reads_until_eof());
    // Bytes read while lingering are discarded, and are not activity.
    s.receive(&cf(TEXT, b"late"));
    assert_eq!(s.poll_message(), Ok(None));
    s.notify_received(0);
    assert_eq!(s.transport_action(), TransportAction::Close);
    assert!(!s.transport_action().reads_until_eof());
}

#[test]
fn failed_connection_lingers_until_close_timeout() {
    let cfg = Config { close_timeout: secs(2), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    let t0 = Instant::now();
    s.poll_timeout(t0);
    s.receive(&sf(TEXT, b"unmasked"));
    assert!(s.poll_message().is_err());
    assert_eq!(s.poll_timeout(t0 + secs(1)), Some(t0 + secs(3)));
    s.handle_timeout(t0 + secs(2));
    assert_eq!(s.transport_action(), TransportAction::ShutdownAndLinger);
    s.handle_timeout(t0 + secs(3));
    assert_eq!(s.transport_action(), TransportAction::CloseNow);
    assert_eq!(s.poll_timeout(t0 + secs(3)), None, "nothing left to wait for");
}

#[test]
fn close_timeout_on_a_closing_server_closes_now() {
    let cfg = Config { close_timeout: secs(2), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    let t0 = Instant::now();
    s.close(CloseCode::NORMAL, "").unwrap();
    // Our close frame is queued; the handshake is not done.
    assert_eq!(s.transport_action(), TransportAction::KeepOpen);
    assert_eq!(s.poll_timeout(t0), Some(t0 + secs(2)));
    s.handle_timeout(t0 + secs(2));
    assert_eq!(s.poll_message(), Err(ProtocolError::CloseTimeout));
    assert_eq!(s.transport_action(), TransportAction::CloseNow);
}

#[test]
fn timers_start_at_the_first_clock_reading() {
    // The core reads no clock: a connection created long before its driver
    // first tells the time starts its idle timer then.
    let cfg = Config { idle_timeout: Some(secs(10)), ..Config::default() };
    let mut s = Protocol::new(Role::Server, cfg);
    let t0 = Instant::now() + secs(3600);
    assert_eq!(s.poll_timeout(t0), Some(t0 + secs(10)));
    s.handle_timeout(t0 + secs(9));
    assert_eq!(s.state(), State::Open);
}

/// A small message read alone (`receive` copies it into a buffer of its
/// exact size) was split off its buffer: the split made the buffer shared,
/// one allocation more per message (K=1 echo, issue 14). It is now handed
/// out whole: the payload owns its bytes, nothing is left behind.
#[test]
fn regression_a_message_read_alone_is_not_split_off_its_buffer() {
    let mut s = server();
    s.receive(&cf(BIN, b"sixteen bytes!!!"));
    let msg = s.poll_message().unwrap().expect("a message");
    let Message::Binary(payload) = msg else { panic!("{msg:?}") };
    assert_eq!(&payload[..], b"sixteen bytes!!!");
    assert!(payload.is_unique(), "the payload shares its buffer");
    assert_eq!(s.buffered_capacity(), 0);
    // Two frames in one read: the first is split off, the second still
    // arrives whole.
    s.receive(&cat(&[&cf(BIN, b"one"), &cf(TEXT, b"two")]));
    let (msgs, err) = poll_all(&mut s);
    assert_eq!(err, None);
    assert_eq!(msgs, vec![Message::binary(b"one".to_vec()), text("two")]);
}
