//! Deadlines of the keepalive ping, the idle timeout and the close timeout.
//!
//! The state machine never reads a clock: it is told the time only in
//! `poll_timeout` and `handle_timeout`, by the driver (the tokio drivers
//! read tokio's clock, so tests can pause it). Events between two calls
//! (data received, a close frame sent) are recorded as flags and stamped
//! with the time of the next call, so a driver needs one clock read per
//! batch of I/O, not one per message. The connection's timers start at the
//! first call.

use super::Config;
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Timers {
    /// When data was last received and when we last sent a keepalive ping;
    /// `None` until the first call tells the time (the connection's start).
    marks: Option<Marks>,
    /// Data arrived since the last sync.
    pub rx_flag: bool,
    /// When the close timeout expires, once our close frame was queued: a
    /// close timeout after the last time output was written (the peer may
    /// still be reading what was queued before the close frame).
    pub close_deadline: Option<Instant>,
    /// The close timeout expired.
    pub close_expired: bool,
    /// The closing handshake was started by the idle timeout.
    pub idle_closing: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    /// When data was last received (or the connection started).
    pub last_rx: Instant,
    /// When we last sent a keepalive ping (or the connection started).
    pub last_ping: Instant,
}

impl Timers {
    /// Stamps the events recorded since the last call with `now`; returns
    /// the marks, which exist from then on. `wrote`: output was written
    /// since the last call. Once our close frame is queued, the close
    /// timeout runs from the last write: a peer that keeps reading a backlog
    /// queued before the close frame (a graceful stop behind many messages)
    /// is not cut off while it reads, and one that reads nothing is still
    /// given up a close timeout after its last progress.
    pub fn sync(&mut self, now: Instant, close_sent: bool, wrote: bool, config: &Config) -> &mut Marks {
        // A write is stamped with the time of this call, which may come
        // later than the write: never past a deadline already due (a driver
        // that writes without telling the time, as the split writer task,
        // must not keep a due close timeout from expiring).
        let due = self.close_deadline.is_some_and(|d| now >= d);
        if close_sent && !self.close_expired && (self.close_deadline.is_none() || (wrote && !due)) {
            self.close_deadline = Some(now + config.close_timeout);
        }
        let marks = self.marks.get_or_insert(Marks { last_rx: now, last_ping: now });
        if std::mem::take(&mut self.rx_flag) {
            marks.last_rx = now;
        }
        marks
    }

    /// The earliest deadline that matters; keepalive and idle deadlines
    /// only while the connection is `open` (its state is `State::Open`).
    pub fn next_deadline(&self, config: &Config, open: bool) -> Option<Instant> {
        if self.close_expired {
            return None;
        }
        if let Some(d) = self.close_deadline {
            return Some(d);
        }
        let marks = self.marks?;
        if !open {
            return None;
        }
        let idle = config.idle_timeout.map(|t| marks.last_rx + t);
        let ping = config.ping_interval.map(|t| marks.last_rx.max(marks.last_ping) + t);
        match (idle, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
