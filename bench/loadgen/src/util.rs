//! Small helpers: a fast PRNG, a log-linear latency histogram, CPU and RSS
//! readings, and the file-descriptor limit.

use std::time::Duration;

/// wyrand: a fast non-cryptographic PRNG (passes BigCrush/PractRand).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded once from the clock and the pid.
    pub fn from_entropy() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Rng(t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }

    #[inline]
    pub fn mask_key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        (((self.next_u64() >> 32) * n) >> 32).min(n - 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_ne_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next_u64().to_ne_bytes();
        let n = rest.len();
        rest.copy_from_slice(&v[..n]);
    }
}

/// Log-linear histogram of durations in nanoseconds: 32 sub-buckets per
/// power of two, so any reported percentile is within ~3% of the truth.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
        }
    }
}

impl Histogram {
    #[inline]
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = msb - SUB_BITS;
        let sub = (v >> shift) & (SUB - 1);
        (((shift + 1) as u64) * SUB + sub) as usize
    }

    /// The middle of bucket `i`'s range.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = i / SUB - 1;
        let sub = i % SUB;
        let low = (SUB + sub) << shift;
        low + ((1u64 << shift) >> 1)
    }

    #[inline]
    pub fn record(&mut self, d: Duration) {
        self.record_ns(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1) in nanoseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i);
            }
        }
        unreachable!()
    }
}

/// user+sys CPU time of this process.
pub fn self_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur as u64
    }
}

/// The server under test: a pid and its descendants (the run command may
/// be a wrapper such as a shell or `npm`), read from /proc.
pub struct ServerProc {
    pub pid: u32,
}

/// (pid, ppid) of every process, from /proc/*/stat.
fn all_parents() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(f) = stat_fields(pid) {
            if let Some(ppid) = f.get(1).and_then(|s| s.parse().ok()) {
                out.push((pid, ppid));
            }
        }
    }
    out
}

/// The fields of /proc/<pid>/stat after the `(comm)`: index 0 is the state
/// (field 3), 1 the ppid (field 4), 11 utime (field 14), 12 stime (field 15).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

impl ServerProc {
    pub fn tree(&self) -> Vec<u32> {
        let parents = all_parents();
        let mut tree = vec![self.pid];
        let mut i = 0;
        while i < tree.len() {
            let p = tree[i];
            tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
            i += 1;
        }
        tree
    }

    pub fn alive(&self) -> bool {
        matches!(stat_fields(self.pid), Some(f) if f.first().map(String::as_str) != Some("Z"))
    }

    /// utime+stime of the tree, all threads included.
    pub fn cpu(&self, tree: &[u32]) -> Duration {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let ticks: u64 = tree
            .iter()
            .filter_map(|&p| stat_fields(p))
            .map(|f| {
                f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                    + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            })
            .sum();
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }

    /// VmRSS of the tree, in bytes.
    pub fn rss(&self, tree: &[u32]) -> u64 {
        status_kb(tree, "VmRSS:").unwrap_or(0) * 1024
    }

    /// RssAnon of the tree, in bytes: VmRSS without the pages mapped from
    /// files (the program's code, paged in on first use, and shared
    /// libraries) and shared memory. `None` where the kernel does not
    /// report it (before Linux 4.5) for every process of the tree.
    pub fn rss_anon(&self, tree: &[u32]) -> Option<u64> {
        status_kb(tree, "RssAnon:").map(|kb| kb * 1024)
    }
}

/// The sum over `tree` of a `/proc/PID/status` field given in kB; `None`
/// if a process of the tree is gone or does not report it.
fn status_kb(tree: &[u32], field: &str) -> Option<u64> {
    tree.iter()
        .map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record_ns(v * 10);
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.01, 10_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.04, "q{q}: {got} vs {want}");
        }
        assert_eq!(Histogram::default().quantile(0.5), 0);
        let mut small = Histogram::default();
        small.record_ns(3);
        assert_eq!(small.quantile(0.99), 3);
    }

    #[test]
    fn histogram_index_is_monotonic() {
        let mut last = 0;
        for v in (0..10_000_000u64).step_by(997) {
            let i = Histogram::index(v);
            assert!(i >= last);
            last = i;
            let mid = Histogram::value(i);
            assert!(
                (mid as f64 - v as f64).abs() <= v as f64 / 32.0 + 1.0,
                "{v} -> {mid}"
            );
        }
    }

    #[test]
    fn rng_below_and_fill() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
        }
        let mut a = [0u8; 13];
        r.fill(&mut a);
        assert!(a.iter().any(|&b| b != 0));
    }
}
