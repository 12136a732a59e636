//! What the echo examples share (the tokio driver's `echo_server`, the
//! event loop's `loop_echo_server` and the framework's `ws_echo_server`),
//! so the Autobahn runs against each server path (`scripts/autobahn`)
//! test the same server as far as the paths allow: the command line, the
//! message limit and the runtime.
//!
//! Included with `#[path = ...] mod echo;` by each example.

#![allow(dead_code)] // each example uses what its path supports

/// Largest message and frame accepted (64 MiB): enough for the Autobahn
/// TestSuite, whose largest messages (cases 9.1.6, 9.2.6) are 16 MiB.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The command line: `[ADDR] [--threads N] [--no-deflate] [--stats]`.
pub struct Args {
    /// The address to listen on. Default: `127.0.0.1:9001`.
    pub addr: String,
    /// Worker threads (`--threads N`). Default: 1, as the benchmarks
    /// compare servers on one core each.
    pub threads: usize,
    /// Accept permessage-deflate from clients that offer it (RFC 7692),
    /// unless `--no-deflate`. Default: `true`.
    pub deflate: bool,
    /// Answer `GET /_stats` with the server's live counters
    /// (`--stats`; for `bench/soak/run`). Default: `false`.
    pub stats: bool,
}

/// A flag an example takes besides the address.
#[derive(PartialEq, Eq)]
pub enum Flag {
    /// `--threads N`
    Threads,
    /// `--no-deflate`
    NoDeflate,
    /// `--stats`
    Stats,
}

impl Args {
    /// Parses the process's arguments; `flags` are the ones this example
    /// supports (any other is an error).
    pub fn parse(flags: &[Flag]) -> Result<Args, String> {
        let mut args = std::env::args().skip(1);
        let mut parsed = Args { addr: "127.0.0.1:9001".to_string(), threads: 1, deflate: true, stats: false };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--threads" if flags.contains(&Flag::Threads) => {
                    parsed.threads = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--threads takes a positive number")?;
                }
                "--no-deflate" if flags.contains(&Flag::NoDeflate) => parsed.deflate = false,
                "--stats" if flags.contains(&Flag::Stats) => parsed.stats = true,
                a if !a.starts_with('-') => parsed.addr = a.to_string(),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(parsed)
    }

    /// A current-thread runtime for one thread, else a multi-thread one.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        if self.threads <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(self.threads).enable_all().build()
        }
    }
}
