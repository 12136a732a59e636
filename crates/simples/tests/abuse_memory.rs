//! Every abuse at once against one framework server, over real sockets in
//! this process: slowloris heads, ping floods, clients that never read
//! while a broadcast runs, inflation bombs (permessage-deflate) and
//! fragment storms. Each gets its specific answer (cut off by the header
//! read timeout, 1008, 1008 from the slow-client policy, 1009, 1009), the
//! process's RSS growth stays under the bound computed from the
//! configuration as `LIMITS.md` does it, and a well-behaved client's echo
//! round trip stays within a stated factor of its unloaded round trip.
//!
//! RSS is the whole process's (`/proc/self/status`): test clients and
//! server share it, so the clients' own buffers count against the server's
//! bound; the bound is a worst case far above what these abusers can
//! reach, which is the margin. The run needs the real clock (RSS), about
//! 5 s.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ws::{closed_with, connect, send, stalled_client, text, Client};
use common::ws_extra::{ping_flood, raw_ws};
use simples::ws::{CloseCode, DeflateConfig, Message, SlowAction, WsOptions};
use simples::ServerOptions;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::tokio::connect_with_deflate;
use simples_ws::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const SLOWLORIS: usize = 100;
const PING_FLOODS: usize = 5;
const STALLED: usize = 20;
const BOMBS: usize = 5;
const STORMS: usize = 5;
/// The well-behaved client's loaded round trip may be this many times its
/// unloaded one (or `RTT_FLOOR`, whichever is larger: an unloaded loopback
/// round trip is tens of microseconds, below the scheduling noise of a
/// shared two-core machine).
const RTT_FACTOR: u32 = 20;
const RTT_FLOOR: Duration = Duration::from_millis(25);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Worst-case bytes one WebSocket connection holds (`LIMITS.md`), with
/// `M = max_message_size`: read buffer (a frame, reserved up to twice) 2M,
/// message assembly (inflated) M, pending handler messages 2M (reading
/// stops once they total M; the one crossing it is whole), outbox
/// max(max_queued_bytes, M), protocol output 64 KiB + M, deflate contexts
/// (416 KiB at 15-bit windows), pong backlog 64 KiB, the task and its
/// structures 16 KiB.
fn ws_connection_bound(o: &WsOptions) -> usize {
    let m = o.max_message_size;
    let deflate = if o.deflate.is_some() { 416 << 10 } else { 0 };
    2 * m + m + 2 * m + o.max_queued_bytes.max(m) + (64 << 10) + m + deflate + (64 << 10) + (16 << 10)
}

/// Worst-case bytes of one HTTP connection still sending its head: hyper's
/// read buffer (`max(max_head_size, 8192)`) plus its write buffer and the
/// task (16 KiB).
fn head_bound(o: &ServerOptions) -> usize {
    o.max_head_size.max(8192) + (16 << 10)
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// The median of `n` echo round trips, `gap` apart.
async fn median_rtt(ws: &mut Client, n: usize, gap: Duration) -> Duration {
    let mut times = Vec::new();
    for i in 0..n {
        tokio::time::sleep(gap).await;
        let started = Instant::now();
        let msg = format!("rtt {i}");
        send(ws, &msg).await;
        assert_eq!(text(ws).await, msg);
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

/// A masked (zero key) client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close frame; its code.
async fn raw_close_code(tcp: &mut TcpStream) -> u16 {
    loop {
        let mut h = [0u8; 2];
        tcp.read_exact(&mut h).await.expect("a frame header");
        let len = match h[1] & 0x7f {
            126 => tcp.read_u16().await.unwrap() as usize,
            127 => tcp.read_u64().await.unwrap() as usize,
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.unwrap();
        if h[0] & 0x0f == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_abuse_at_once_stays_under_the_computed_memory_bound() {
    let server_options = ServerOptions { header_read_timeout: HEADER_READ_TIMEOUT, ..ServerOptions::default() };
    let ws_options = WsOptions { deflate: Some(DeflateConfig::default()), ..WsOptions::default() };
    let mut server = simples::Server::with_options("127.0.0.1:0", server_options.clone());
    server.get("/", |conn: simples::Conn| async move { conn.send("ok") });
    let echo = server.ws("/ws", ws_options.clone(), |_conn| async move {});
    echo.on_message(|conn, message| async move {
        let _ = conn.send(message);
    });
    let feed = server.ws("/feed", ws_options.clone(), |_conn| async move {});
    let slow_closes = Arc::new(AtomicUsize::new(0));
    let counter = slow_closes.clone();
    feed.on_slow(move |_, action| {
        if action == SlowAction::Closed(CloseCode::POLICY_VIOLATION) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let running = common::start(server).await;
    let addr = running.local_addr();

    // Warm up (the runtime's threads, the allocator's arenas), then measure.
    let mut good = connect(addr, "/ws").await;
    median_rtt(&mut good, 50, Duration::ZERO).await;
    let unloaded = median_rtt(&mut good, 21, Duration::from_millis(5)).await;
    let baseline = rss();
    let peak = Arc::new(AtomicUsize::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::SeqCst) {
                peak.fetch_max(rss(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();

    // Slowloris: a head byte every 300 ms, never finished.
    let slowloris: Vec<_> = (0..SLOWLORIS)
        .map(|_| {
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                let t = Instant::now();
                for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
                    if tcp.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 512];
                    match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(n)) => assert!(buf[..n].starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&buf[..n])),
                        Err(_) => {}
                    }
                    assert!(t.elapsed() < Duration::from_secs(10), "a slowloris head was never cut off");
                }
                t.elapsed()
            })
        })
        .collect();

    // Clients that never read, on a host broadcasting 16 KiB messages.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(stalled_client(addr, "/feed").await);
    }
    common::ws::wait_for(&feed, STALLED).await;
    let broadcasting = Arc::new(AtomicBool::new(true));
    let broadcaster = {
        let (feed, broadcasting) = (feed.clone(), broadcasting.clone());
        tokio::spawn(async move {
            let payload = vec![0x5a_u8; 16 << 10];
            while broadcasting.load(Ordering::SeqCst) {
                feed.broadcast(Message::binary(payload.clone()));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    // Ping floods: 1008 past 1,000 control frames a second.
    let floods: Vec<_> = (0..PING_FLOODS).map(|_| tokio::spawn(ping_flood(addr, "/ws", 3000))).collect();

    // Inflation bombs: 8 MiB of zeros, a few KiB on the wire; 1009 past
    // max_message_size (1 MiB) of inflated bytes.
    let bombs: Vec<_> = (0..BOMBS)
        .map(|_| {
            tokio::spawn(async move {
                let (mut ws, response) =
                    connect_with_deflate(&format!("ws://{addr}/ws"), &ClientConfig::default(), Config::default(), &DeflateConfig::default())
                        .await
                        .unwrap();
                assert!(!response.extensions.is_empty(), "permessage-deflate was negotiated");
                let _ = ws.send(Message::binary(vec![0u8; 8 << 20])).await;
                closed_with(&mut ws).await
            })
        })
        .collect();

    // Fragment storms: one message in 16-byte fragments, past 1 MiB: 1009.
    let storms: Vec<_> = (0..STORMS)
        .map(|_| {
            tokio::spawn(async move {
                let mut tcp = raw_ws(addr, "/ws").await;
                let mut storm = frame(false, 0x2, &[1u8; 16]);
                for _ in 0..(1 << 16) + 10 {
                    storm.extend_from_slice(&frame(false, 0x0, &[2u8; 16]));
                }
                let _ = tcp.write_all(&storm).await;
                raw_close_code(&mut tcp).await
            })
        })
        .collect();

    // Meanwhile, the well-behaved client: round trips spread over the
    // abuse (the slowloris heads last 2 s).
    let loaded = median_rtt(&mut good, 21, Duration::from_millis(60)).await;

    for f in floods {
        assert_eq!(f.await.unwrap(), 1008, "ping flood");
    }
    for b in bombs {
        assert_eq!(b.await.unwrap(), 1009, "inflation bomb");
    }
    for s in storms {
        assert_eq!(s.await.unwrap(), 1009, "fragment storm");
    }
    for s in slowloris {
        let cut = s.await.unwrap();
        assert!(cut >= HEADER_READ_TIMEOUT - Duration::from_millis(100) && cut < HEADER_READ_TIMEOUT * 2, "slowloris cut after {cut:?}");
    }
    for _ in 0..500 {
        if slow_closes.load(Ordering::SeqCst) == STALLED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(slow_closes.load(Ordering::SeqCst), STALLED, "every client that never read was closed with 1008");
    broadcasting.store(false, Ordering::SeqCst);
    broadcaster.await.unwrap();
    let loaded_after = median_rtt(&mut good, 21, Duration::from_millis(5)).await;
    sampling.store(false, Ordering::SeqCst);
    sampler.join().unwrap();
    drop(stalled);

    let ws_connections = PING_FLOODS + STALLED + BOMBS + STORMS;
    let bound = ws_connections * ws_connection_bound(&ws_options) + SLOWLORIS * head_bound(&server_options);
    let growth = peak.load(Ordering::SeqCst).saturating_sub(baseline);
    println!(
        "RSS growth {:.1} MiB, bound {:.1} MiB ({ws_connections} WebSocket connections x {:.2} MiB + {SLOWLORIS} heads x {} KiB); \
         round trip unloaded {unloaded:?}, under abuse {loaded:?}, after {loaded_after:?}; {:?} in all",
        growth as f64 / (1 << 20) as f64,
        bound as f64 / (1 << 20) as f64,
        ws_connection_bound(&ws_options) as f64 / (1 << 20) as f64,
        head_bound(&server_options) >> 10,
        started.elapsed(),
    );
    assert!(growth <= bound, "RSS grew by {growth} bytes, over the computed bound of {bound}");
    let allowed = (unloaded * RTT_FACTOR).max(RTT_FLOOR);
    assert!(loaded <= allowed, "round trip under abuse {loaded:?} > {allowed:?} (unloaded {unloaded:?})");
    assert_eq!(common::get(addr, "/").await.text(), "ok");
}
