//! Test helpers shared by both crates' tests (the framework's tests
//! include this file with `#[path]`): log capture and descriptor
//! exhaustion, for the EMFILE tests.

use std::sync::{Arc, Mutex};

/// A `tracing` writer that keeps what is logged, for tests that check log
/// lines (`tracing_subscriber::fmt().with_writer(move || capture.clone())`).
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// How many times `needle` was logged.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

/// Opens `/dev/null` until the process is out of descriptors (EMFILE),
/// then closes `spare` of them: the next `spare` sockets can be opened, and
/// nothing more until the returned files are dropped. Only for a test
/// binary of its own.
pub fn use_up_descriptors(spare: usize) -> Vec<std::fs::File> {
    // A high limit (up to millions) would take long to fill.
    if descriptor_limits().0 > 4096 {
        set_soft_descriptor_limit(4096);
    }
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break, // EMFILE
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
    hog.truncate(hog.len().saturating_sub(spare));
    hog
}

/// This process's `RLIMIT_NOFILE`: (soft, hard).
pub fn descriptor_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = text.lines().find(|l| l.starts_with("Max open files")).expect("Max open files");
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| v.parse().unwrap_or(u64::MAX)); // "unlimited"
    (values.next().expect("soft limit"), values.next().expect("hard limit"))
}

/// Sets this process's soft `RLIMIT_NOFILE` to `soft` (at most the hard
/// limit) with `prlimit(1)`; the limits after the attempt.
pub fn set_soft_descriptor_limit(soft: u64) -> (u64, u64) {
    let (_, hard) = descriptor_limits();
    let pid = std::process::id().to_string();
    let hard_text = if hard == u64::MAX { "unlimited".to_string() } else { hard.to_string() };
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={}:{hard_text}", soft.min(hard))])
        .status();
    descriptor_limits()
}

/// Makes sure this process may open `wanted` descriptors: raises its soft
/// limit when it is lower, and panics with the reason if that fails.
pub fn ensure_descriptors(wanted: u64) {
    if descriptor_limits().0 >= wanted {
        return;
    }
    let (soft, hard) = set_soft_descriptor_limit(wanted);
    assert!(soft >= wanted, "this test needs {wanted} file descriptors, the limit is {soft} (hard {hard})");
}
