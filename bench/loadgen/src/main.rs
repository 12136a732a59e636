//! simples-loadgen: the load generator of the simples benchmark suite.
//!
//! ```text
//! simples-loadgen <scenario> --addr 127.0.0.1:PORT [options]
//! ```
//!
//! One thread drives every connection on one epoll (mio). It speaks
//! WebSocket through its own small client codec (`codec`), independent of
//! `simples-ws`. Every run prints exactly one line on stdout:
//!
//! ```text
//! RESULT scenario=echo-small server=x conns=100 inflight=16 size=16 duration=5.00 count=.. rate=.. unit=rt/s
//!        p50_us=.. p99_us=.. gen_cpu=.. srv_cpu=.. srv_cpu_per_msg_ns=.. saturated=no [extra=..] error=none
//! ```
//!
//! and exits 0, or with `error=KIND:DETAIL` and exit status 1 when the
//! server failed a correctness check (or 2 for a usage error, 3 for the
//! watchdog). See bench/README.md for the scenarios.

mod churn;
mod codec;
mod net;
mod report;
mod scenarios;
mod util;

use codec::{OP_BINARY, OP_TEXT};
use net::{Fail, Handler, Net};
use report::Report;
use scenarios::{Broadcast, Cfg, Connect, Echo, Idle, Teardown};
use std::time::Duration;

const USAGE: &str = "usage: simples-loadgen <echo-small|echo-large|broadcast|connect|idle|churn> --addr HOST:PORT
  --conns C         connections (echo-small 100, echo-large 10, idle 10000, churn 10000)
  --inflight K      messages in flight per connection (echo-small 16, echo-large 1)
  --size N          payload bytes (echo-small 16, echo-large 1048576, broadcast 64, churn 32)
  --rate R          churn: new connections per second (500); each lives conns/rate s
  --msgs K          churn: echoes per connection (4), spread over its life
  --abort-every N   churn: every Nth connection dropped after its first echo without
                    a closing handshake, alternately FIN and RST (provoked; 0: none)
  --subs N          broadcast subscribers (1000)
  --window W        broadcast: messages published ahead of full delivery (16)
  --sub-addrs A,B   broadcast: subscribers round-robin on these servers (nodes of one
                    cluster); the publisher stays on --addr
  --parallel P      connect: handshakes in parallel (64)
  --duration S      measured seconds (5)
  --warmup S        seconds before measuring (1)
  --idle-wait S     idle: seconds to wait before reading RSS (2)
  --path P          echo/connect/idle path (/echo)
  --server-pid PID  the server (and its children): CPU from /proc/PID/stat, RSS from /proc/PID/status
  --server-name N   label printed in the RESULT line
  --seed N          PRNG seed (default: clock and pid)
  --timeout S       watchdog: give up after S seconds (default: warmup + duration + 60)";

fn parse_args(args: &[String]) -> Result<(Cfg, f64), String> {
    let scenario = args.first().ok_or("missing scenario")?.clone();
    let (conns, inflight, size) = match scenario.as_str() {
        "echo-small" => (100, 16, 16),
        "echo-large" => (10, 1, 1 << 20),
        "broadcast" => (0, 0, 64),
        "connect" => (0, 0, 0),
        "idle" => (10_000, 1, 16),
        "churn" => (10_000, 0, 32),
        "-h" | "--help" => return Err(String::new()),
        other => return Err(format!("unknown scenario '{other}'")),
    };
    let mut cfg = Cfg {
        scenario,
        addr: "127.0.0.1:9001".parse().unwrap(),
        conns,
        inflight,
        size,
        subs: 1000,
        window: 16,
        parallel: 64,
        duration: 5.0,
        warmup: 1.0,
        idle_wait: 2.0,
        path: None,
        server_pid: None,
        server_name: String::new(),
        seed: util::Rng::from_entropy().next_u64(),
        sub_addrs: Vec::new(),
        rate: 500.0,
        msgs: 4,
        abort_every: 0,
    };
    let mut timeout = None;
    let mut addr = None;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: bad value '{v}'"))
        }
        match flag.as_str() {
            "--addr" => {
                let v = val()?;
                addr = Some(
                    v.parse()
                        .map_err(|_| format!("--addr: '{v}' is not IP:PORT"))?,
                )
            }
            "--sub-addrs" => {
                let v = val()?;
                cfg.sub_addrs = v
                    .split(',')
                    .map(|a| {
                        a.parse()
                            .map_err(|_| format!("--sub-addrs: '{a}' is not IP:PORT"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--conns" => cfg.conns = num(flag, val()?)?,
            "--inflight" => cfg.inflight = num(flag, val()?)?,
            "--size" => cfg.size = num(flag, val()?)?,
            "--subs" => cfg.subs = num(flag, val()?)?,
            "--window" => cfg.window = num(flag, val()?)?,
            "--parallel" => cfg.parallel = num(flag, val()?)?,
            "--duration" => cfg.duration = num(flag, val()?)?,
            "--warmup" => cfg.warmup = num(flag, val()?)?,
            "--idle-wait" => cfg.idle_wait = num(flag, val()?)?,
            "--path" => cfg.path = Some(val()?),
            "--server-pid" => cfg.server_pid = Some(num(flag, val()?)?),
            "--server-name" => cfg.server_name = val()?,
            "--seed" => cfg.seed = num(flag, val()?)?,
            "--rate" => cfg.rate = num(flag, val()?)?,
            "--msgs" => cfg.msgs = num(flag, val()?)?,
            "--abort-every" => cfg.abort_every = num(flag, val()?)?,
            "--timeout" => timeout = Some(num::<f64>(flag, val()?)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    cfg.addr = addr.ok_or("--addr is required")?;
    match cfg.scenario.as_str() {
        "echo-small" | "echo-large" if cfg.conns == 0 || cfg.inflight == 0 => {
            return Err("--conns and --inflight must be > 0".into())
        }
        "broadcast" if cfg.subs == 0 || cfg.window == 0 || cfg.size < 17 => {
            return Err("broadcast needs --subs > 0, --window > 0, --size >= 17".into())
        }
        "connect" if cfg.parallel == 0 => return Err("--parallel must be > 0".into()),
        "idle" if cfg.conns == 0 => return Err("--conns must be > 0".into()),
        "churn" if cfg.conns == 0 || cfg.msgs == 0 || cfg.rate.is_nan() || cfg.rate <= 0.0 => {
            return Err("churn needs --conns > 0, --msgs > 0, --rate > 0".into())
        }
        _ => {}
    }
    if cfg.size > 64 << 20 {
        return Err("--size is limited to 64 MiB".into());
    }
    let idle_extra = if cfg.scenario == "idle" {
        120.0 + cfg.conns as f64 / 100.0 + 2.0 * cfg.idle_wait
    } else {
        0.0
    };
    let churn_extra = if cfg.scenario == "churn" { 60.0 } else { 0.0 };
    let timeout = timeout.unwrap_or(cfg.warmup + cfg.duration + 60.0 + idle_extra + churn_extra);
    Ok((cfg, timeout))
}

/// The RESULT line's parameter fields for `cfg`.
fn base_report(cfg: &Cfg) -> Report {
    let params: Vec<(&'static str, String)> = match cfg.scenario.as_str() {
        "echo-small" | "echo-large" => {
            vec![
                ("conns", cfg.conns.to_string()),
                ("inflight", cfg.inflight.to_string()),
                ("size", cfg.size.to_string()),
            ]
        }
        "broadcast" => vec![
            ("subs", cfg.subs.to_string()),
            ("window", cfg.window.to_string()),
            ("size", cfg.size.to_string()),
        ],
        "connect" => vec![("parallel", cfg.parallel.to_string())],
        "idle" => vec![("conns", cfg.conns.to_string())],
        "churn" => vec![
            ("conns", cfg.conns.to_string()),
            ("rate", cfg.rate.to_string()),
            ("msgs", cfg.msgs.to_string()),
            ("size", cfg.size.to_string()),
            ("abort_every", cfg.abort_every.to_string()),
        ],
        _ => vec![],
    };
    Report {
        scenario: cfg.scenario.clone(),
        server: cfg.server_name.clone(),
        params,
        ..Report::default()
    }
}

/// Runs `h` to completion, then closes every connection (bounded time).
fn drive<H: Handler>(net: &mut Net, h: &mut H) -> Result<(), Fail> {
    let r = net.run(h);
    if r.is_ok() {
        let mut t = Teardown {
            deadline: None,
            limit: Duration::from_secs(3),
        };
        let _ = net.run(&mut t);
    }
    r
}

/// Runs one scenario; the report carries the error, if any.
pub fn run(cfg: &Cfg) -> Report {
    let mut report = base_report(cfg);
    let mut net = match Net::new(cfg.addr, cfg.seed) {
        Ok(n) => n,
        Err(e) => {
            report.error = Some(Fail {
                kind: "io",
                detail: format!("epoll: {e}"),
            });
            return report;
        }
    };
    let result = match cfg.scenario.as_str() {
        "echo-small" | "echo-large" => {
            let mut h = Echo::new(
                cfg,
                if cfg.scenario == "echo-small" {
                    OP_TEXT
                } else {
                    OP_BINARY
                },
            );
            let r = drive(&mut net, &mut h);
            h.report(&mut report);
            r
        }
        "broadcast" => {
            let mut h = Broadcast::new(cfg);
            let r = drive(&mut net, &mut h);
            h.report(&mut report);
            r
        }
        "connect" => {
            net.max_in_progress = cfg.parallel;
            let mut h = Connect::new(cfg);
            let r = drive(&mut net, &mut h);
            h.report(&mut report);
            r
        }
        "idle" => match Idle::new(cfg) {
            Ok(mut h) => {
                let r = drive(&mut net, &mut h);
                h.report(&mut report);
                r
            }
            Err(e) => Err(e),
        },
        "churn" => {
            let mut h = churn::Churn::new(cfg);
            let r = drive(&mut net, &mut h);
            h.report(&mut report);
            r.and_then(|()| h.verdict())
        }
        _ => unreachable!(),
    };
    let st = net.out.stats;
    if st.reads > 0 && st.msgs_in > 0 {
        report.extra.push((
            "msgs_per_read",
            format!("{:.2}", st.msgs_in as f64 / st.reads as f64),
        ));
    }
    report.error = result.err();
    if report.error.is_none() {
        if let Some(pid) = cfg.server_pid {
            if !(util::ServerProc { pid }).alive() {
                report.error = Some(Fail {
                    kind: "server-died",
                    detail: format!("server pid {pid} exited during the run"),
                });
            }
        }
    }
    report
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, timeout) = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("simples-loadgen: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    let nofile = util::raise_nofile();
    if matches!(cfg.scenario.as_str(), "idle" | "churn") && (nofile as usize) < cfg.conns + 64 {
        eprintln!(
            "simples-loadgen: warning: RLIMIT_NOFILE is {nofile}, below {} connections",
            cfg.conns
        );
    }
    // The watchdog: a stuck server must not hang the suite.
    let line = base_report(&cfg);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(timeout));
        let mut r = line;
        r.error = Some(Fail {
            kind: "timeout",
            detail: format!("watchdog: run exceeded {timeout:.0} s"),
        });
        println!("{}", r.line());
        std::process::exit(3);
    });
    let report = run(&cfg);
    println!("{}", report.line());
    if let Some(e) = &report.error {
        eprintln!("simples-loadgen: {}: {}", e.kind, e.detail);
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests;
