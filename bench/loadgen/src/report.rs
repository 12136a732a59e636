//! The one RESULT line each run prints, and the measured-interval meter.

use crate::net::Fail;
use crate::util::{self, ServerProc};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The generator's CPU share at or above which the result measures the
/// generator rather than the server.
pub const SATURATED: f64 = 0.95;

#[derive(Default)]
pub struct Report {
    pub scenario: String,
    pub server: String,
    /// Scenario parameters, printed in order after `server=`.
    pub params: Vec<(&'static str, String)>,
    pub secs: f64,
    pub count: u64,
    pub rate: f64,
    pub unit: &'static str,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub gen_cpu: Option<f64>,
    pub srv_cpu: Option<f64>,
    /// Server CPU time per unit counted (round trip, delivery, handshake...).
    pub srv_ns_per_msg: Option<f64>,
    /// The generator's CPU time per unit counted.
    pub gen_ns_per_msg: Option<f64>,
    pub extra: Vec<(&'static str, String)>,
    pub error: Option<Fail>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "na".into())
}

impl Report {
    pub fn line(&self) -> String {
        let mut s = format!(
            "RESULT scenario={} server={}",
            self.scenario,
            if self.server.is_empty() {
                "-"
            } else {
                &self.server
            }
        );
        for (k, v) in &self.params {
            let _ = write!(s, " {k}={v}");
        }
        let _ = write!(
            s,
            " duration={:.2} count={} rate={} unit={} p50_us={} p99_us={} gen_cpu={} srv_cpu={} srv_cpu_per_msg_ns={} saturated={} gen_cpu_per_msg_ns={}",
            self.secs,
            self.count,
            fmt_rate(self.rate),
            if self.unit.is_empty() { "-" } else { self.unit },
            opt(self.p50_ns.map(|n| format!("{:.1}", n as f64 / 1000.0))),
            opt(self.p99_ns.map(|n| format!("{:.1}", n as f64 / 1000.0))),
            opt(self.gen_cpu.map(|c| format!("{c:.2}"))),
            opt(self.srv_cpu.map(|c| format!("{c:.2}"))),
            opt(self.srv_ns_per_msg.map(|n| format!("{n:.0}"))),
            match self.gen_cpu {
                Some(c) if c >= SATURATED => "yes",
                Some(_) => "no",
                None => "na",
            },
            opt(self.gen_ns_per_msg.map(|n| format!("{n:.0}"))),
        );
        for (k, v) in &self.extra {
            let _ = write!(s, " {k}={v}");
        }
        match &self.error {
            None => s.push_str(" error=none"),
            Some(f) => {
                let detail: String = f
                    .detail
                    .chars()
                    .map(|c| {
                        if c.is_whitespace() || c == '=' {
                            '_'
                        } else {
                            c
                        }
                    })
                    .take(200)
                    .collect();
                let _ = write!(s, " error={}:{}", f.kind, detail);
            }
        }
        s
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

/// CPU and wall clock over one measured interval.
pub struct Meter {
    t0: Instant,
    cpu0: Duration,
    srv0: Option<Duration>,
}

pub struct Measured {
    pub secs: f64,
    pub gen_cpu: f64,
    /// Server CPU time in the interval, when its pid is known.
    pub srv_cpu: Option<Duration>,
}

impl Meter {
    pub fn start(srv: Option<&(ServerProc, Vec<u32>)>) -> Meter {
        let srv0 = srv.map(|(p, tree)| p.cpu(tree));
        Meter {
            t0: Instant::now(),
            cpu0: util::self_cpu(),
            srv0,
        }
    }

    pub fn stop(&self, srv: Option<&(ServerProc, Vec<u32>)>) -> Measured {
        let cpu = util::self_cpu() - self.cpu0;
        let srv_cpu = match (srv, self.srv0) {
            (Some((p, tree)), Some(c0)) => Some(p.cpu(tree).saturating_sub(c0)),
            _ => None,
        };
        let secs = self.t0.elapsed().as_secs_f64();
        Measured {
            secs,
            gen_cpu: cpu.as_secs_f64() / secs,
            srv_cpu,
        }
    }
}

impl Measured {
    /// Fills the timing fields of `r` for `count` units.
    pub fn fill(&self, r: &mut Report, count: u64, rate: f64) {
        r.secs = self.secs;
        r.count = count;
        r.rate = rate;
        r.gen_cpu = Some(self.gen_cpu);
        if count > 0 {
            r.gen_ns_per_msg = Some(self.gen_cpu * self.secs * 1e9 / count as f64);
        }
        if let Some(c) = self.srv_cpu {
            r.srv_cpu = Some(c.as_secs_f64() / self.secs);
            if count > 0 {
                r.srv_ns_per_msg = Some(c.as_nanos() as f64 / count as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_format() {
        let mut r = Report {
            scenario: "echo-small".into(),
            server: "x".into(),
            params: vec![("conns", "10".into())],
            unit: "rt/s",
            ..Report::default()
        };
        Measured {
            secs: 2.0,
            gen_cpu: 0.97,
            srv_cpu: Some(Duration::from_secs(1)),
        }
        .fill(&mut r, 1000, 500.0);
        let l = r.line();
        assert!(l.starts_with("RESULT scenario=echo-small server=x conns=10 duration=2.00 count=1000 rate=500 unit=rt/s"), "{l}");
        assert!(l.contains(" gen_cpu=0.97 srv_cpu=0.50 srv_cpu_per_msg_ns=1000000 saturated=yes gen_cpu_per_msg_ns=1940000 error=none"), "{l}");
        r.error = Some(Fail {
            kind: "mismatch",
            detail: "byte 3 differs: a=b".into(),
        });
        assert!(
            r.line().ends_with(" error=mismatch:byte_3_differs:_a_b"),
            "{}",
            r.line()
        );
    }
}
