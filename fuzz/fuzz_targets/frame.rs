//! Fuzzes the receive path of the sans-IO state machine: arbitrary bytes
//! into `Protocol::receive` / `read_buf`, messages out of `poll_message`.
//!
//! Input layout: byte 0 picks the configuration, the rest is the byte stream.
//! - bit 0: role (0 = server, expects masked frames; 1 = client)
//! - bit 1: `stream_messages`
//! - bits 2-7 (`c`, 0..=63): chunk size the stream is split into before it
//!   is handed over: `c + 1` bytes for `c < 48` (1..=48), else
//!   `2^(c - 42)` bytes (64 B .. 2 MiB, i.e. "all at once").
//!
//! Chunks alternate between `receive(&chunk)` and appending to `read_buf()`
//! followed by `notify_received(n)`, so both ways in are exercised.
//!
//! Checked after every call:
//! - no panic (including debug assertions and overflow checks);
//! - delivered messages respect the configured limits and control payloads
//!   are at most 125 bytes; complete text messages are UTF-8;
//! - once `poll_message` returned `Err`, it returns `Ok(None)` forever, even
//!   after more input;
//! - the output queue is consistent (`len` == bytes in `io_slices`) and can
//!   be drained with `first_chunk` / `advance`;
//! - the output backlog after one chunk stays under 64 KiB + two control
//!   frames (pongs are not queued past a 64 KiB backlog);
//! - the drained output is a valid frame stream for the peer: its pongs
//!   echo received pings in order (a subsequence: pings may be skipped
//!   while the output is backlogged, RFC 6455 §5.5.3), the latest ping is
//!   answered when the stream just ends, and a close frame, if sent,
//!   carries the expected code.

#![no_main]

use libfuzzer_sys::fuzz_target;
use simples_ws::{Config, DataKind, Message, Protocol, Role};
use std::io::IoSlice;

const MAX_FRAME: usize = 64 << 10;
const MAX_MESSAGE: usize = 256 << 10;
/// `recv::PONG_BACKLOG` (64 KiB) plus two control frames.
const OUTPUT_BOUND: usize = (64 << 10) + 2 * 131;

/// Drains everything waiting in `p.output()` into `sink`, checking the
/// queue's bookkeeping on the way. `partial` advances by half the first
/// chunk first, to exercise partial writes.
fn drain(p: &mut Protocol, sink: &mut Vec<u8>, partial: bool) {
    let out = p.output();
    let mut slices = [IoSlice::new(&[]); 64];
    let n = out.io_slices(&mut slices);
    let listed: usize = slices[..n].iter().map(|s| s.len()).sum();
    if n < slices.len() {
        assert_eq!(listed, out.len(), "io_slices do not cover Output::len");
    }
    assert_eq!(out.is_empty(), out.len() == 0);
    if partial && out.len() > 1 {
        let half = out.first_chunk().len() / 2;
        sink.extend_from_slice(&out.first_chunk()[..half]);
        out.advance(half);
    }
    let mut guard = 0;
    while !out.is_empty() {
        let chunk = out.first_chunk();
        assert!(!chunk.is_empty(), "non-empty output with an empty first chunk");
        let len = chunk.len();
        sink.extend_from_slice(chunk);
        out.advance(len);
        guard += 1;
        assert!(guard < 1_000_000, "output never drains");
    }
    assert_eq!(out.len(), 0);
    assert!(out.first_chunk().is_empty());
}

fn check_message(m: &Message, stream: bool) {
    match m {
        Message::Text(t) => {
            assert!(!stream, "whole message delivered in streaming mode");
            assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "Text message is not UTF-8");
            assert!(t.len() <= MAX_MESSAGE, "text message of {} bytes over the limit", t.len());
        }
        Message::Binary(b) => {
            assert!(!stream, "whole message delivered in streaming mode");
            assert!(b.len() <= MAX_MESSAGE, "binary message of {} bytes over the limit", b.len());
        }
        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125, "control payload of {} bytes", p.len()),
        Message::Close(_) => {}
        Message::Fragment { data, .. } => {
            assert!(stream, "fragment delivered without stream_messages");
            assert!(data.len() <= MAX_FRAME, "fragment of {} bytes over the frame limit", data.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, stream)) = data.split_first() else {
        return;
    };
    let role = if cfg_byte & 1 == 0 { Role::Server } else { Role::Client };
    let stream_messages = cfg_byte & 2 != 0;
    let c = (cfg_byte >> 2) as usize;
    let chunk = if c < 48 { c + 1 } else { 1usize << (c - 42) };

    let config = Config {
        max_frame_size: MAX_FRAME,
        max_message_size: MAX_MESSAGE,
        stream_messages,
        ..Config::default()
    };
    let mut p = Protocol::new(role, config);
    let mut sent = Vec::new();
    let mut pings = Vec::new();
    let mut close_received: Option<Option<simples_ws::CloseFrame>> = None;
    let mut error: Option<simples_ws::ProtocolError> = None;
    // Streaming mode: bytes of the current message so far, and its kind.
    let mut streamed: Option<(DataKind, Vec<u8>)> = None;

    for (i, piece) in stream.chunks(chunk).enumerate() {
        if i % 2 == 0 {
            p.receive(piece);
        } else {
            p.read_buf().extend_from_slice(piece);
            p.notify_received(piece.len());
        }
        loop {
            match p.poll_message() {
                Ok(Some(m)) => {
                    assert!(error.is_none(), "message {m:?} after an error");
                    assert!(close_received.is_none(), "message {m:?} after a close frame");
                    check_message(&m, stream_messages);
                    match m {
                        Message::Ping(payload) => pings.push(payload),
                        Message::Close(f) => close_received = Some(f),
                        Message::Fragment { kind, data, last } => {
                            let (k, buf) = streamed.get_or_insert_with(|| (kind, Vec::new()));
                            assert_eq!(*k, kind, "fragment kind changed within a message");
                            buf.extend_from_slice(&data);
                            assert!(buf.len() <= MAX_MESSAGE, "streamed message over the limit");
                            if last {
                                if kind == DataKind::Text {
                                    assert!(std::str::from_utf8(buf).is_ok(), "streamed text is not UTF-8");
                                }
                                streamed = None;
                            }
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(error.is_none(), "second error {e:?} after {error:?}");
                    assert!(e.close_code().is_some(), "peer error {e:?} without a close code");
                    error = Some(e);
                    // After an error, the connection stays failed.
                    assert_eq!(p.poll_message(), Ok(None));
                    assert_eq!(p.poll_message(), Ok(None));
                    assert_ne!(p.transport_action(), simples_ws::proto::TransportAction::KeepOpen);
                    assert_eq!(p.state(), simples_ws::State::Closed);
                    break;
                }
            }
        }
        // The output stays bounded whatever the peer sends: pongs stop being
        // queued past a 64 KiB backlog; beyond that only the pong that
        // crossed it and a close frame (each at most 2 + 4 + 125 bytes).
        let backlog = p.output().len();
        assert!(backlog <= OUTPUT_BOUND, "output backlog of {backlog} bytes after one chunk");
        drain(&mut p, &mut sent, i % 3 == 1);
    }

    // The end of the stream: an open connection fails with 1006 (nothing
    // sent), a closed one stays quiet.
    p.notify_received(0);
    match p.poll_message() {
        Ok(None) => assert!(error.is_some() || close_received.is_some(), "eof on an open connection ignored"),
        Ok(Some(m)) => panic!("message {m:?} after eof"),
        Err(e) => {
            assert!(error.is_none() && close_received.is_none(), "error {e:?} after the connection ended");
            assert_eq!(e, simples_ws::ProtocolError::ConnectionReset);
        }
    }
    assert_eq!(p.poll_message(), Ok(None));
    p.receive(b"\x81\x80\x00\x00\x00\x00");
    assert_eq!(p.poll_message(), Ok(None));
    drain(&mut p, &mut sent, false);

    // What we sent must be a valid stream for the peer.
    let peer_role = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut peer = Protocol::new(peer_role, Config::default());
    peer.receive(&sent);
    let mut pongs = Vec::new();
    let mut close_sent = None;
    loop {
        match peer.poll_message() {
            Ok(Some(Message::Pong(b))) => {
                assert!(close_sent.is_none(), "pong after close");
                pongs.push(b)
            }
            Ok(Some(Message::Close(f))) => close_sent = Some(f),
            Ok(Some(m)) => panic!("unexpected frame in our output: {m:?}"),
            Ok(None) => break,
            Err(e) => panic!("our output is not a valid frame stream: {e:?}; bytes {sent:02x?}"),
        }
    }
    // RFC 6455 §5.5.3: every pong echoes a ping, in order; an endpoint may
    // skip pings while its output is backlogged (answering only the latest
    // one later), so the pongs are a subsequence of the pings.
    let mut rest = pings.iter();
    for pong in &pongs {
        assert!(rest.any(|ping| ping == pong), "pong {pong:?} answers no ping (pings {pings:?})");
    }
    // A connection that just reached eof (no close, no violation) answered
    // the latest ping before giving up.
    if error.is_none() && close_received.is_none() && !pings.is_empty() {
        assert_eq!(pongs.last(), pings.last(), "latest ping never answered");
    }
    match (&close_received, &error) {
        (Some(received), None) => {
            // RFC 6455 §5.5.1: echo the code (no reason), or an empty close.
            let expected = received.as_ref().map(|f| f.code);
            let got = close_sent.as_ref().map(|f| f.as_ref().map(|f| f.code));
            assert_eq!(got, Some(expected), "close reply does not echo the received close");
        }
        (None, Some(e)) => {
            let got = close_sent.as_ref().and_then(|f| f.as_ref().map(|f| f.code));
            assert_eq!(got, e.close_code(), "failure close code differs from the error's");
        }
        (None, None) => {
            assert!(close_sent.is_none(), "close sent on a connection that only reached eof");
        }
        (Some(_), Some(e)) => panic!("error {e:?} after a close frame"),
    }
});
