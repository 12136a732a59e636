//! Property tests of the sans-IO protocol: messages sent by one endpoint come
//! out of the other unchanged and in order, whatever the framing and however
//! the bytes are chunked; arbitrary input never panics.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use simples_ws::proto::TransportAction;
use simples_ws::{CloseCode, CloseFrame, Config, DataKind, Message, Protocol, ProtocolError, Role, State};

mod common;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Takes every byte the endpoint has queued.
fn drain(p: &mut Protocol) -> Vec<u8> {
    p.output().take_all().iter().flat_map(|b| b.iter().copied()).collect()
}

/// Feeds `bytes` to `to` in chunks whose sizes cycle through `chunks`,
/// polling after each; returns every message, or the first error.
fn feed(to: &mut Protocol, bytes: &[u8], chunks: &[usize]) -> Result<Vec<Message>, ProtocolError> {
    let mut msgs = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < bytes.len() {
        let n = chunks[i % chunks.len()].max(1).min(bytes.len() - pos);
        to.receive(&bytes[pos..pos + n]);
        pos += n;
        i += 1;
        while let Some(m) = to.poll_message()? {
            msgs.push(m);
        }
    }
    Ok(msgs)
}

/// Moves everything `from` queued to `to`.
fn transfer(from: &mut Protocol, to: &mut Protocol, chunks: &[usize]) -> Result<Vec<Message>, ProtocolError> {
    let bytes = drain(from);
    feed(to, &bytes, chunks)
}

/// A frame decoded from an endpoint's output (payload unmasked).
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

fn decode_frames(mut b: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 2, "truncated header in output");
        let (fin, opcode, masked) = (b[0] & 0x80 != 0, b[0] & 0x0f, b[1] & 0x80 != 0);
        let (len, mut pos) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        let key = if masked {
            pos += 4;
            Some([b[pos - 4], b[pos - 3], b[pos - 2], b[pos - 1]])
        } else {
            None
        };
        assert!(b.len() >= pos + len, "truncated payload in output");
        let mut payload = b[pos..pos + len].to_vec();
        if let Some(k) = key {
            payload.iter_mut().enumerate().for_each(|(i, x)| *x ^= k[i % 4]);
        }
        frames.push(Frame { fin, opcode, masked, payload });
        b = &b[pos + len..];
    }
    frames
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        vec(any::<char>(), 0..3000).prop_map(String::from_iter),
    ]
}

fn arb_control_payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=125).prop_map(Bytes::from)
}

fn arb_data_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => arb_text().prop_map(Message::text),
        4 => vec(any::<u8>(), 0..600).prop_map(Message::binary),
        1 => vec(any::<u8>(), 60_000..70_000).prop_map(Message::binary),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        6 => arb_data_message(),
        1 => arb_control_payload().prop_map(Message::Ping),
        1 => arb_control_payload().prop_map(Message::Pong),
    ]
}

fn arb_close_code() -> impl Strategy<Value = u16> {
    prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999]
}

fn arb_chunks() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![vec(1usize..16, 1..8), vec(1usize..5000, 1..8)]
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

/// Sends `msgs` from a `sender_role` endpoint (transferring after each
/// message flagged `true`), checks they arrive equal and in order, that every
/// ping is answered with its pong, and then runs the closing handshake.
fn roundtrip(
    sender_role: Role,
    msgs: &[(Message, bool)],
    max_send_frame_size: Option<usize>,
    chunks: &[usize],
    close: (u16, &str),
) -> Result<(), TestCaseError> {
    let receiver_role = if sender_role == Role::Client { Role::Server } else { Role::Client };
    let mut tx = Protocol::new(sender_role, Config { max_send_frame_size, ..Config::default() });
    let mut rx = Protocol::new(receiver_role, Config::default());
    let mut got = Vec::new();
    let mut pongs = Vec::new();
    for (m, flush) in msgs {
        tx.send(m.clone()).unwrap();
        if *flush {
            got.extend(transfer(&mut tx, &mut rx, chunks).unwrap());
            pongs.extend(transfer(&mut rx, &mut tx, chunks).unwrap());
        }
    }
    got.extend(transfer(&mut tx, &mut rx, chunks).unwrap());
    pongs.extend(transfer(&mut rx, &mut tx, chunks).unwrap());

    let sent: Vec<Message> = msgs.iter().map(|(m, _)| m.clone()).collect();
    prop_assert_eq!(got, sent);
    let expected_pongs: Vec<Message> = msgs
        .iter()
        .filter_map(|(m, _)| match m {
            Message::Ping(p) => Some(Message::Pong(p.clone())),
            _ => None,
        })
        .collect();
    prop_assert_eq!(pongs, expected_pongs);

    // Closing handshake, initiated by the sender.
    let (code, reason) = close;
    tx.close(CloseCode(code), reason).unwrap();
    prop_assert_eq!(tx.state(), State::Closing);
    let got = transfer(&mut tx, &mut rx, chunks).unwrap();
    let frame = CloseFrame { code: CloseCode(code), reason: truncate(reason, 123).to_owned() };
    prop_assert_eq!(got, vec![Message::Close(Some(frame))]);
    prop_assert_eq!(rx.state(), State::Closed);
    let got = transfer(&mut rx, &mut tx, chunks).unwrap();
    prop_assert_eq!(got, vec![Message::Close(Some(CloseFrame { code: CloseCode(code), reason: String::new() }))]);
    prop_assert_eq!(tx.state(), State::Closed);
    let (server, client) = if sender_role == Role::Server { (&tx, &rx) } else { (&rx, &tx) };
    // RFC 6455 §7.1.1: the server closes TCP first, the client waits for it.
    prop_assert_eq!(server.transport_action(), TransportAction::Close);
    prop_assert_eq!(client.transport_action(), TransportAction::AwaitPeerClose);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Both ways on the same input: client to server, server to client.
    #[test]
    fn messages_arrive_equal_and_in_order_both_ways(
        msgs in vec((arb_message(), any::<bool>()), 0..16),
        max_send_frame_size in prop::option::of(1usize..400),
        chunks in arb_chunks(),
        code in arb_close_code(),
        reason in arb_text(),
    ) {
        for sender in [Role::Client, Role::Server] {
            roundtrip(sender, &msgs, max_send_frame_size, &chunks, (code, &reason))?;
        }
    }

    /// A streaming receiver hands out pieces that reassemble into the
    /// messages sent.
    #[test]
    fn streaming_receiver_reassembles_messages(
        msgs in vec(arb_data_message(), 0..10),
        max_send_frame_size in prop::option::of(1usize..400),
        chunks in arb_chunks(),
    ) {
        let mut c = Protocol::new(Role::Client, Config { max_send_frame_size, ..Config::default() });
        let mut s = Protocol::new(Role::Server, Config { stream_messages: true, ..Config::default() });
        for m in &msgs {
            c.send(m.clone()).unwrap();
        }
        let pieces = transfer(&mut c, &mut s, &chunks).unwrap();
        let mut got = Vec::new();
        let mut current: Option<(DataKind, Vec<u8>)> = None;
        for p in pieces {
            let Message::Fragment { kind, data, last } = p else {
                return Err(TestCaseError::fail(format!("not a fragment: {p:?}")));
            };
            let entry = current.get_or_insert_with(|| (kind, Vec::new()));
            prop_assert_eq!(entry.0, kind);
            entry.1.extend_from_slice(&data);
            if last {
                let (kind, bytes) = current.take().unwrap();
                got.push(match kind {
                    DataKind::Text => Message::text(String::from_utf8(bytes).expect("validated text")),
                    DataKind::Binary => Message::binary(bytes),
                });
            }
        }
        prop_assert!(current.is_none(), "unterminated message");
        prop_assert_eq!(got, msgs);
    }

    /// Messages sent as application fragments arrive whole.
    #[test]
    fn sent_fragments_arrive_as_one_message(
        s in arb_text(),
        cuts in vec(any::<prop::sample::Index>(), 0..6),
        chunks in arb_chunks(),
    ) {
        let bytes = s.as_bytes();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut c = Protocol::new(Role::Client, Config::default());
        let mut start = 0;
        for cut in cuts {
            let data = Bytes::copy_from_slice(&bytes[start..cut]);
            c.send(Message::Fragment { kind: DataKind::Text, data, last: false }).unwrap();
            start = cut;
        }
        let data = Bytes::copy_from_slice(&bytes[start..]);
        c.send(Message::Fragment { kind: DataKind::Text, data, last: true }).unwrap();
        let mut srv = Protocol::new(Role::Server, Config::default());
        let got = transfer(&mut c, &mut srv, &chunks).unwrap();
        prop_assert_eq!(got, vec![Message::text(s)]);
    }
}

// ---------------------------------------------------------------------------
// Arbitrary input never panics
// ---------------------------------------------------------------------------

/// Feeds `input` in chunks, optionally followed by EOF, and checks the
/// invariants that hold whatever the input: no panic, an error leaves the
/// connection closed and silent, and the output is whole frames with the
/// error's close code last.
fn check_arbitrary_input(role: Role, cfg: Config, input: &[u8], chunks: &[usize], eof: bool) -> Result<(), TestCaseError> {
    let mut p = Protocol::new(role, cfg);
    let mut result = feed(&mut p, input, chunks);
    if eof {
        if let Ok(msgs) = &mut result {
            p.notify_received(0);
            loop {
                match p.poll_message() {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
    }
    let out = drain(&mut p);
    let frames = decode_frames(&out);
    prop_assert!(frames.iter().all(|f| f.masked == (role == Role::Client)));
    prop_assert!(frames.iter().filter(|f| f.opcode == 0x8).count() <= 1);
    prop_assert!(frames.iter().all(|f| f.fin && f.payload.len() <= 125), "only control frames are sent");
    match result {
        Ok(msgs) => {
            let pings = msgs.iter().filter(|m| matches!(m, Message::Ping(_))).count();
            let pongs = frames.iter().filter(|f| f.opcode == 0xA).count();
            prop_assert!(pongs <= pings);
            for m in &msgs {
                if let Message::Text(t) = m {
                    prop_assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                }
            }
        }
        Err(e) => {
            prop_assert_eq!(p.state(), State::Closed);
            // Failed: linger for the close frame in flight, or close at once
            // when the peer's end of stream came already.
            let action = p.transport_action();
            prop_assert!(matches!(action, TransportAction::ShutdownAndLinger | TransportAction::Close), "{:?}", action);
            prop_assert_eq!(p.poll_message(), Ok(None));
            match e.close_code() {
                Some(code) => {
                    let last = frames.last().expect("a close frame for the error");
                    prop_assert_eq!(last.opcode, 0x8);
                    prop_assert_eq!(u16::from_be_bytes([last.payload[0], last.payload[1]]), code.0);
                }
                None => prop_assert_eq!(e, ProtocolError::ConnectionReset),
            }
        }
    }
    Ok(())
}

/// One frame of arbitrary, often invalid, shape.
/// `masked`: whether frames are usually masked (client to server).
fn arb_raw_frame(masked: bool) -> impl Strategy<Value = Vec<u8>> {
    let (masked_weight, unmasked_weight) = if masked { (12, 1) } else { (1, 12) };
    let opcode = prop_oneof![8 => prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]), 1 => 0u8..16];
    let rsv = prop_oneof![8 => Just(0u8), 1 => (0u8..8).prop_map(|r| r << 4)];
    let mask = prop_oneof![masked_weight => any::<[u8; 4]>().prop_map(Some), unmasked_weight => Just(None)];
    let payload = prop_oneof![
        4 => vec(any::<u8>(), 0..130),
        2 => arb_text().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..2000),
    ];
    (any::<bool>(), rsv, opcode, mask, payload, any::<bool>()).prop_map(|(fin, rsv, opcode, mask, mut payload, close_like)| {
        if opcode == 0x8 && close_like && payload.len() >= 2 {
            // Often a well-formed close code.
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        let fin = fin || (opcode & 0x8 != 0 && close_like);
        common::encode_frame_rsv(fin, rsv >> 4, opcode, mask, &payload)
    })
}

fn arb_config() -> impl Strategy<Value = Config> {
    (prop::option::of(0usize..3000), prop::option::of(0usize..5000), any::<bool>()).prop_map(|(frame, msg, stream)| Config {
        max_frame_size: frame.unwrap_or(16 << 20),
        max_message_size: msg.unwrap_or(64 << 20),
        stream_messages: stream,
        ..Config::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The same bytes to a server and to a client.
    #[test]
    fn random_bytes_never_panic(
        input in vec(any::<u8>(), 0..4096),
        chunks in arb_chunks(),
        cfg in arb_config(),
        eof in any::<bool>(),
    ) {
        for role in [Role::Server, Role::Client] {
            check_arbitrary_input(role, cfg.clone(), &input, &chunks, eof)?;
        }
    }

    /// Random frame sequences get past the first header, so they exercise
    /// fragmentation, control frames, limits and UTF-8 checks: mostly
    /// masked frames to a server, mostly unmasked ones to a client (what
    /// each expects), on the same chunking and configuration.
    #[test]
    fn random_frames_never_panic(
        to_server in vec(arb_raw_frame(true), 0..24),
        to_client in vec(arb_raw_frame(false), 0..24),
        chunks in arb_chunks(),
        cfg in arb_config(),
        eof in any::<bool>(),
    ) {
        check_arbitrary_input(Role::Server, cfg.clone(), &to_server.concat(), &chunks, eof)?;
        check_arbitrary_input(Role::Client, cfg, &to_client.concat(), &chunks, eof)?;
    }
}
