//! Shared by the Rust benchmark servers (`bench/servers/*`), so that every
//! peer runs under the same rules:
//!
//! - started as `<command> <port>`, listening on `127.0.0.1:<port>`;
//! - one core: a current-thread tokio runtime;
//! - the open-files limit raised to its hard limit (Node does the same at
//!   start, so the Node peers get it for free);
//! - messages up to [`MAX_MESSAGE`] bytes;
//! - a slow subscriber never slows a publisher: each subscriber may have at
//!   most [`MAX_QUEUED`] bytes waiting; past that a broadcast message is
//!   dropped for it and counted ([`DROPS`]), and the count is printed to
//!   stderr when the server is stopped (SIGINT/SIGTERM).

pub mod subscribers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest message accepted (2 MiB), the same for every server.
pub const MAX_MESSAGE: usize = 2 << 20;

/// Bytes that may wait in one subscriber's send queue before broadcast
/// messages are dropped for it (16 MiB), the same for every server.
pub const MAX_QUEUED: usize = 16 << 20;

/// Broadcast deliveries dropped because a subscriber's queue was full.
pub static DROPS: AtomicU64 = AtomicU64::new(0);

/// Counts one dropped delivery.
pub fn count_drop() {
    DROPS.fetch_add(1, Ordering::Relaxed);
}

/// Server threads from `BENCH_THREADS` (default 1: the comparison runs
/// every server on one core). An unparsable or zero value is refused.
pub fn threads() -> usize {
    match std::env::var("BENCH_THREADS") {
        Err(_) => 1,
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("BENCH_THREADS={v:?}: expected a number of threads, at least 1");
                std::process::exit(2);
            }
        },
    }
}

/// The listen address from the one argument, a port.
pub fn listen_addr() -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let port: u16 = match (args.next().map(|a| a.parse()), args.next()) {
        (Some(Ok(p)), None) => p,
        _ => {
            let name = std::env::args().next().unwrap_or_default();
            eprintln!("usage: {name} <port>");
            std::process::exit(2);
        }
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Raises the soft limit of open files to the hard limit.
pub fn raise_nofile_limit() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs `server` on a current-thread runtime (multi-thread with
/// `BENCH_THREADS` > 1; see [`threads`]) inside a `LocalSet` (so servers
/// may use `spawn_local` and `Rc`) until SIGINT or SIGTERM, then
/// prints the drop count and exits.
pub fn run<F>(name: &str, server: F) -> !
where
    F: Future<Output = std::io::Result<()>>,
{
    run_counting(name, server, || DROPS.load(Ordering::Relaxed))
}

/// [`run`] for a server that counts its dropped deliveries itself (e.g. a
/// framework's statistics): `dropped` is called once, after the stop
/// signal, and its value printed in the same words.
pub fn run_counting<F, D>(name: &str, server: F, dropped: D) -> !
where
    F: Future<Output = std::io::Result<()>>,
    D: FnOnce() -> u64,
{
    raise_nofile_limit();
    // `BENCH_THREADS=N` (N > 1): tokio's multi-thread runtime with N workers
    // (spawned tasks run there; the `LocalSet` stays on this thread).
    let runtime = match threads() {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    }
    .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = server => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    });
    eprintln!("{name}: dropped broadcast deliveries: {}", dropped());
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}

/// What a server does with a connection, chosen by the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Any path but the two below: echo every data message.
    Echo,
    /// `/sub`: receive every broadcast message.
    Subscriber,
    /// `/pub`: every data message goes to every subscriber.
    Publisher,
}

impl Role {
    /// The role for a request path (the query is not part of it).
    pub fn for_path(path: &str) -> Role {
        match path {
            "/sub" => Role::Subscriber,
            "/pub" => Role::Publisher,
            _ => Role::Echo,
        }
    }
}

/// Accepts the next connection with TCP_NODELAY set; on errors such as
/// EMFILE it waits 10 ms and keeps serving the connections it has.
pub async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                return tcp;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}
