//! Receive-side throughput: parse + unmask + UTF-8 validation of masked
//! client-to-server text messages, simples-ws vs tungstenite 0.28.
//!
//! Each iteration starts a fresh server-side connection and hands it one
//! pre-built buffer of masked text frames (about 1 MiB of payload: 65536
//! messages of 16 B, 1024 of 1 KiB, 16 of 64 KiB or 1 of 1 MiB), then reads
//! every message out and drops it. Throughput counts payload bytes.
//!
//! Both sides do the same work per message: copy the bytes from the
//! "socket" into the connection's buffer, parse the header, unmask, validate
//! the whole payload as UTF-8 and hand out an owned text message.
//!
//! - `simples/whole`: `receive(&all_bytes)` once, then `poll_message` until
//!   `None` (the sans-IO core given everything at once).
//! - `simples/128k`: `receive` 128 KiB at a time, polling after each, like a
//!   driver reading a socket with a 128 KiB buffer.
//! - `tungstenite`: `WebSocket::from_raw_socket` over an in-memory stream
//!   (reads served from the buffer, writes discarded), `read()` once per
//!   message; tungstenite reads the stream into its own buffer of
//!   `read_buffer_size` = 128 KiB (its default).
//!
//! Run: `cargo bench -p simples-ws --bench parse -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simples_ws::mask::{apply_mask, apply_mask_reference};
use simples_ws::{Config, Message, Protocol, Role};
use std::hint::black_box;
use std::io::{self, Read, Write};

/// Payload bytes per iteration (the buffer holds this many / size frames).
const TOTAL: usize = 1 << 20;
/// Limits for both implementations (both are above the largest message).
const MAX_FRAME: usize = 4 << 20;
const MAX_MESSAGE: usize = 4 << 20;
/// Read size of the chunked variant; tungstenite's default read buffer.
const READ_CHUNK: usize = 128 << 10;

/// Text of exactly `len` bytes mixing ASCII and 2-, 3- and 4-byte UTF-8
/// sequences (about a third of the bytes are in multi-byte characters), so
/// validation cannot take the all-ASCII fast path.
fn text(len: usize, seed: usize) -> Vec<u8> {
    const PIECES: &[&str] = &[
        "The quick brown fox ", "jumps over ", "naïve café ", "Grüße ", "日本語の", "テキスト ",
        "🦀 ", "Ελληνικά ", "lazy dog. ", "€100 ", "Привет ", "0123456789 ",
    ];
    let mut s = String::with_capacity(len + 16);
    let mut i = seed;
    loop {
        let p = PIECES[i % PIECES.len()];
        i += 1;
        for ch in p.chars() {
            if s.len() + ch.len_utf8() > len {
                while s.len() < len {
                    s.push('a');
                }
                return s.into_bytes();
            }
            s.push(ch);
        }
    }
}

/// One masked, final text frame (what a client sends).
fn masked_text_frame(out: &mut Vec<u8>, payload: &[u8], key: [u8; 4]) {
    out.push(0x81);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask_reference(&mut out[start..], key, 0);
}

/// The wire bytes of `TOTAL / size` masked text messages of `size` bytes.
fn stream(size: usize) -> (Vec<u8>, usize) {
    let count = (TOTAL / size).max(1);
    // A few distinct payloads so the buffer is not one repeated pattern.
    let payloads: Vec<Vec<u8>> = (0..7).map(|i| text(size, i)).collect();
    let mut out = Vec::with_capacity(count * (size + 14));
    for i in 0..count {
        let key = (0x9e37_79b9u32.wrapping_mul(i as u32 + 1)).to_be_bytes();
        masked_text_frame(&mut out, &payloads[i % payloads.len()], key);
    }
    (out, count)
}

fn simples_config() -> Config {
    Config { max_frame_size: MAX_FRAME, max_message_size: MAX_MESSAGE, ..Config::default() }
}

/// Polls every available message; returns how many text messages came out.
fn drain_messages(p: &mut Protocol) -> usize {
    let mut n = 0;
    while let Some(m) = p.poll_message().expect("valid stream") {
        match m {
            Message::Text(t) => {
                black_box(&t);
                n += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    n
}

fn simples_whole(bytes: &[u8], count: usize) {
    let mut p = Protocol::new(Role::Server, simples_config());
    p.receive(bytes);
    let n = drain_messages(&mut p);
    assert_eq!(n, count);
    black_box(&p);
}

fn simples_chunked(bytes: &[u8], count: usize) {
    let mut p = Protocol::new(Role::Server, simples_config());
    let mut n = 0;
    for chunk in bytes.chunks(READ_CHUNK) {
        p.receive(chunk);
        n += drain_messages(&mut p);
    }
    assert_eq!(n, count);
    black_box(&p);
}

/// An in-memory socket: reads come from the buffer, writes are discarded.
struct MemStream<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Read for MemStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite_read(bytes: &[u8], count: usize) {
    use tungstenite::protocol::{Role as TRole, WebSocket, WebSocketConfig};
    let config = WebSocketConfig::default().max_frame_size(Some(MAX_FRAME)).max_message_size(Some(MAX_MESSAGE));
    let mut ws = WebSocket::from_raw_socket(MemStream { data: bytes, pos: 0 }, TRole::Server, Some(config));
    for _ in 0..count {
        match ws.read().expect("valid stream") {
            tungstenite::Message::Text(t) => {
                black_box(&t);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ws.get_ref().pos, bytes.len(), "tungstenite did not read everything");
    black_box(&ws);
}

fn receive_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("receive_text");
    for &(size, label) in &[(16usize, "16B"), (1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")] {
        let (bytes, count) = stream(size);
        // Sanity: both implementations accept the stream and agree.
        simples_whole(&bytes, count);
        simples_chunked(&bytes, count);
        tungstenite_read(&bytes, count);
        group.throughput(Throughput::Bytes((size * count) as u64));
        group.bench_with_input(BenchmarkId::new("simples/whole", label), &bytes, |b, bytes| {
            b.iter(|| simples_whole(black_box(bytes), count))
        });
        group.bench_with_input(BenchmarkId::new("simples/128k", label), &bytes, |b, bytes| {
            b.iter(|| simples_chunked(black_box(bytes), count))
        });
        group.bench_with_input(BenchmarkId::new("tungstenite", label), &bytes, |b, bytes| {
            b.iter(|| tungstenite_read(black_box(bytes), count))
        });
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    let len = 64 << 10;
    let mut buf = text(len, 3);
    let key = [0x37, 0xfa, 0x21, 0x3d];
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("apply_mask/64KiB", |b| b.iter(|| apply_mask(black_box(&mut buf), black_box(key), 0)));
    group.bench_function("apply_mask_reference/64KiB", |b| {
        b.iter(|| apply_mask_reference(black_box(&mut buf), black_box(key), 0))
    });
    group.finish();
}

/// Where most of the gap comes from: the UTF-8 validators alone on the same
/// mixed text (simples-ws' incremental validator, simdutf8 inside, vs
/// `std::str::from_utf8`, which tungstenite uses for a single-frame text).
fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let len = 1 << 20;
    let buf = text(len, 0);
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("simples_validator/1MiB", |b| {
        b.iter(|| {
            let mut v = simples_ws::utf8::Utf8Validator::new();
            v.feed(black_box(&buf)).unwrap();
            v.finish().unwrap();
        })
    });
    group.bench_function("std_from_utf8/1MiB", |b| b.iter(|| std::str::from_utf8(black_box(&buf)).unwrap().len()));
    group.finish();
}

criterion_group!(benches, receive_text, mask, utf8);
criterion_main!(benches);
