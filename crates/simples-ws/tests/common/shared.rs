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
