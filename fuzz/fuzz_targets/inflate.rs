//! Fuzzes permessage-deflate's receive path: compressed frames built from
//! arbitrary bytes into a server `Protocol` with the `DeflateExtension`, and
//! a round trip of arbitrary messages through a compressing client.
//!
//! Input layout: byte 0 picks the configuration, the rest is a list of
//! records `[flags, len, payload (len bytes)]`.
//! - config bit 0: mode. 0 = raw frames (the payload bytes are the frame's
//!   compressed data as is); 1 = round trip (the payload is plaintext that a
//!   client-side extension compresses, and the server must give it back).
//! - bits 1-2: `server_no_context_takeover` / `client_no_context_takeover`.
//! - bits 3-5: window bits 8 + n (both directions, capped at 15).
//! - bit 6: `stream_messages`. bit 7: a small message limit (4 KiB instead
//!   of 256 KiB), so "inflates past the limit" is reached often.
//! - record flags: bit 0 FIN, bit 1 RSV1 (raw mode; round trip sets it as
//!   the encoder says), bit 2 text (else binary), bit 3 continuation,
//!   bits 4-7: repeat the payload 2^n times (up to 32 KiB of input makes
//!   highly compressible or long data reachable).
//!
//! Checked:
//! - no panic (debug assertions and overflow checks on);
//! - every message respects `max_message_size` (after inflation), text is
//!   UTF-8, an error carries 1002, 1007 or 1009 and later polls return
//!   `Ok(None)`;
//! - `extension_memory()` never exceeds one deflate plus one inflate
//!   context;
//! - round trip: the server receives exactly the messages the client sent.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use simples_ws::deflate::{deflate_memory, inflate_memory, DeflateConfig, DeflateExtension, DeflateParams};
use simples_ws::{CloseCode, Config, DataKind, Extension, Message, Protocol, Role};

const MAX_FRAME: usize = 1 << 20;

fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn records(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let (flags, len) = (rest[0], rest[1] as usize);
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        let reps = 1usize << (flags >> 4).min(15);
        let mut payload = Vec::with_capacity(body.len() * reps);
        for _ in 0..reps {
            payload.extend_from_slice(body);
            if payload.len() > 32 << 10 {
                break;
            }
        }
        v.push((flags, payload));
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else { return };
    let round_trip = config & 1 != 0;
    let bits = (8 + ((config >> 3) & 7)).min(15);
    let params = DeflateParams {
        server_no_context_takeover: config & 2 != 0,
        client_no_context_takeover: config & 4 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    };
    let limit = if config & 0x80 != 0 { 4 << 10 } else { 256 << 10 };
    let stream = config & 0x40 != 0;
    let cfg = DeflateConfig { min_size: 0, ..DeflateConfig::default() };
    let mut server = Protocol::new(
        Role::Server,
        Config { max_frame_size: MAX_FRAME, max_message_size: limit, stream_messages: stream, ..Config::default() },
    );
    server.set_extension(Box::new(DeflateExtension::new(Role::Server, params, &cfg)));
    let max_memory = deflate_memory(bits) + inflate_memory(bits);

    let mut client = DeflateExtension::new(Role::Client, params, &cfg);
    let mut sent: Vec<(DataKind, Vec<u8>)> = Vec::new();
    let mut got: Vec<(DataKind, Vec<u8>)> = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut failed = false;

    for (flags, payload) in records(rest) {
        let text = flags & 4 != 0;
        if round_trip {
            // Plaintext: text must be UTF-8 for the comparison.
            let payload = if text { String::from_utf8_lossy(&payload).into_owned().into_bytes() } else { payload };
            let kind = if text { DataKind::Text } else { DataKind::Binary };
            if payload.len() > limit {
                continue;
            }
            let (rsv, data) = client.encode(kind, Bytes::from(payload.clone())).expect("encode");
            // Split the compressed payload into 1 + (flags & 3) frames.
            let pieces = 1 + (flags & 3) as usize;
            let step = data.len().div_ceil(pieces).max(1);
            let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(step).collect() };
            for (i, c) in chunks.iter().enumerate() {
                let opcode = if i > 0 { 0 } else if text { 1 } else { 2 };
                server.receive(&frame(i + 1 == chunks.len(), i == 0 && rsv != 0, opcode, c));
            }
            sent.push((kind, payload));
        } else {
            let opcode = if flags & 8 != 0 { 0 } else if text { 1 } else { 2 };
            server.receive(&frame(flags & 1 != 0, flags & 2 != 0, opcode, &payload));
        }
        loop {
            match server.poll_message() {
                Ok(Some(m)) => {
                    assert!(!failed, "a message after an error");
                    match m {
                        Message::Text(t) => {
                            assert!(t.len() <= limit);
                            got.push((DataKind::Text, t.as_bytes().to_vec()));
                        }
                        Message::Binary(b) => {
                            assert!(b.len() <= limit);
                            got.push((DataKind::Binary, b.to_vec()));
                        }
                        Message::Fragment { kind, data, last } => {
                            partial.extend_from_slice(&data);
                            assert!(partial.len() <= limit);
                            if last {
                                if kind == DataKind::Text {
                                    assert!(std::str::from_utf8(&partial).is_ok());
                                }
                                got.push((kind, std::mem::take(&mut partial)));
                            }
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!failed, "two errors");
                    let code = e.close_code();
                    assert!(
                        matches!(code, Some(CloseCode::PROTOCOL_ERROR | CloseCode::INVALID_PAYLOAD | CloseCode::MESSAGE_TOO_BIG)),
                        "{e}: {code:?}"
                    );
                    assert!(!round_trip, "round trip failed: {e}");
                    failed = true;
                }
            }
        }
        assert!(server.extension_memory() <= max_memory);
        let out = server.output();
        while !out.is_empty() {
            let n = out.first_chunk().len();
            out.advance(n);
        }
    }
    if round_trip && !failed {
        assert_eq!(got, sent);
    }
});
