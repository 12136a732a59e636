//! permessage-deflate: echo throughput, compression ratio and memory per
//! connection on a JSON-heavy workload.
//!
//! The workload is 775 JSON messages (API-style objects from about 150 B
//! to 3 KiB, 1 MiB in all) made by a seeded generator: repeated keys,
//! varying numbers, names and timestamps.
//!
//! `echo/<variant>`: each iteration sends every message from a client
//! `Protocol` to a server `Protocol` (compress + mask, then inflate +
//! validate), and back (compress, then inflate), through the sans-IO core
//! only. Throughput counts the JSON bytes once. Variants: `plain` (no
//! extension), `lN` (zlib level N with context takeover), `lN-nct` (level
//! N, no context takeover either way).
//!
//! Before the benchmarks, it prints the wire size per variant (the ratio)
//! and the memory a connection holds after a message each way, measured
//! with a counting allocator over 200 server connections.
//!
//! Run: `cargo bench -p simples-ws --bench deflate -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simples_ws::deflate::{DeflateConfig, DeflateExtension, DeflateParams};
use simples_ws::{Config, Message, Protocol, Role};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CURRENT.fetch_add(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CURRENT.fetch_add(layout.size(), Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CURRENT.fetch_add(new_size, Relaxed);
        CURRENT.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: [&str; 12] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"];
const STATUS: [&str; 4] = ["active", "pending", "suspended", "closed"];
const TAGS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "prod", "staging", "eu-west", "us-east"];

/// JSON messages totalling about `total` bytes.
fn workload(total: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let mut size = 0;
    while size < total {
        let items = rng.below(30) as usize;
        let mut s = format!(
            "{{\"type\":\"update\",\"seq\":{},\"ts\":\"2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"user\":{{\"id\":{},\"name\":\"{}\",\"status\":\"{}\"}},\"items\":[",
            rng.below(1 << 40),
            rng.below(28) + 1,
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000),
            rng.below(1_000_000),
            NAMES[rng.below(12) as usize],
            STATUS[rng.below(4) as usize],
        );
        for i in 0..items {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "{{\"sku\":\"SKU-{:06}\",\"qty\":{},\"price\":{}.{:02},\"tags\":[\"{}\",\"{}\"],\"in_stock\":{}}}",
                rng.below(1_000_000),
                rng.below(20) + 1,
                rng.below(500),
                rng.below(100),
                TAGS[rng.below(8) as usize],
                TAGS[rng.below(8) as usize],
                rng.below(2) == 0
            ));
        }
        s.push_str("]}");
        size += s.len();
        out.push(s);
    }
    out
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    deflate: Option<(u32, bool)>,
}

const VARIANTS: [Variant; 9] = [
    Variant { name: "plain", deflate: None },
    Variant { name: "l1", deflate: Some((1, false)) },
    Variant { name: "l2", deflate: Some((2, false)) },
    Variant { name: "l3", deflate: Some((3, false)) },
    Variant { name: "l4", deflate: Some((4, false)) },
    Variant { name: "l6", deflate: Some((6, false)) },
    Variant { name: "l9", deflate: Some((9, false)) },
    Variant { name: "l1-nct", deflate: Some((1, true)) },
    Variant { name: "l4-nct", deflate: Some((4, true)) },
];

fn params(nct: bool) -> DeflateParams {
    DeflateParams { server_no_context_takeover: nct, client_no_context_takeover: nct, ..DeflateParams::default() }
}

fn pair(v: Variant) -> (Protocol, Protocol) {
    let config = Config::default();
    let mut server = Protocol::new(Role::Server, config.clone());
    let mut client = Protocol::new(Role::Client, config);
    if let Some((level, nct)) = v.deflate {
        let cfg = DeflateConfig { level, ..DeflateConfig::default() };
        server.set_extension(Box::new(DeflateExtension::new(Role::Server, params(nct), &cfg)));
        client.set_extension(Box::new(DeflateExtension::new(Role::Client, params(nct), &cfg)));
    }
    (server, client)
}

/// Moves `from`'s output into `to`; returns the bytes moved.
fn transfer(from: &mut Protocol, to: &mut Protocol) -> usize {
    let out = from.output();
    let mut n = 0;
    while !out.is_empty() {
        let chunk = out.first_chunk();
        n += chunk.len();
        to.receive(chunk);
        let len = chunk.len();
        out.advance(len);
    }
    n
}

/// One echo round of every message; returns the wire bytes each way.
fn echo(server: &mut Protocol, client: &mut Protocol, messages: &[Message]) -> (usize, usize) {
    let (mut up, mut down) = (0, 0);
    for chunk in messages.chunks(16) {
        for m in chunk {
            client.send(m.clone()).unwrap();
        }
        up += transfer(client, server);
        while let Some(m) = server.poll_message().unwrap() {
            server.send(black_box(m)).unwrap();
        }
        down += transfer(server, client);
        while let Some(m) = client.poll_message().unwrap() {
            black_box(m);
        }
    }
    (up, down)
}

fn report(messages: &[Message], json_bytes: usize) {
    eprintln!("workload: {} JSON messages, {} bytes", messages.len(), json_bytes);
    for v in VARIANTS {
        let (mut server, mut client) = pair(v);
        let (up, down) = echo(&mut server, &mut client, messages);
        eprintln!(
            "wire {:>7}: client->server {:>8} B ({:>5.1}%), server->client {:>8} B ({:>5.1}%)",
            v.name,
            up,
            100.0 * up as f64 / json_bytes as f64,
            down,
            100.0 * down as f64 / json_bytes as f64
        );
    }
    // Memory per server connection after one message each way.
    const CONNS: usize = 200;
    let m = &messages[..1];
    for v in VARIANTS {
        let before = CURRENT.load(Relaxed);
        let mut conns = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let (mut server, mut client) = pair(v);
            echo(&mut server, &mut client, m);
            server.shrink_buffers();
            let reported = server.extension_memory();
            drop(client);
            conns.push((server, reported));
        }
        let per = (CURRENT.load(Relaxed) - before) / CONNS;
        let reported = conns.iter().map(|c| c.1).sum::<usize>() / CONNS;
        eprintln!("memory {:>7}: {:>7} B per server connection (extension_memory() reports {:>7} B)", v.name, per, reported);
        drop(conns);
    }
}

fn bench(c: &mut Criterion) {
    let json = workload(1 << 20);
    let json_bytes: usize = json.iter().map(|s| s.len()).sum();
    let messages: Vec<Message> = json.into_iter().map(Message::text).collect();
    // Only when benchmarking (`cargo test --all-targets` runs each
    // benchmark once, unoptimised: skip the report there).
    if std::env::args().any(|a| a == "--bench") {
        report(&messages, json_bytes);
    }
    let mut group = c.benchmark_group("echo");
    group.throughput(Throughput::Bytes(json_bytes as u64));
    for v in VARIANTS {
        group.bench_function(BenchmarkId::from_parameter(v.name), |b| {
            let (mut server, mut client) = pair(v);
            b.iter(|| echo(&mut server, &mut client, &messages));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
