//! Deadlines of the keepalive ping, the idle timeout and the close timeout.
//!
//! The state machine is told the time only in `poll_timeout` and
//! `handle_timeout`. Events between two calls (data received, a close frame
//! sent) are recorded as flags and stamped with the time of the next call,
//! so a driver needs one clock read per batch of I/O, not one per message.

use super::{Config, State};
use std::time::Instant;

#[derive(Debug)]
pub(super) struct Timers {
    /// When data was last received (or the connection started).
    pub last_rx: Instant,
    /// When we last sent a keepalive ping.
    pub last_ping: Instant,
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
    /// The first sync happened (the connection's start time is known).
    started: bool,
}

impl Default for Timers {
    fn default() -> Self {
        let now = Instant::now();
        Timers {
            last_rx: now,
            last_ping: now,
            rx_flag: false,
            close_deadline: None,
            close_expired: false,
            idle_closing: false,
            started: false,
        }
    }
}

impl Timers {
    /// Stamps the events recorded since the last call with `now`.
    /// `wrote`: output was written since the last call. Once our close frame
    /// is queued, the close timeout runs from the last write: a peer that
    /// keeps reading a backlog queued before the close frame (a graceful
    /// stop behind many messages) is not cut off while it reads, and one
    /// that reads nothing is still given up a close timeout after its last
    /// progress.
    pub fn sync(&mut self, now: Instant, close_sent: bool, wrote: bool, config: &Config) {
        if !self.started {
            self.started = true;
            self.last_rx = now;
            self.last_ping = now;
        }
        if self.rx_flag {
            self.rx_flag = false;
            self.last_rx = now;
        }
        if close_sent && !self.close_expired && (self.close_deadline.is_none() || wrote) {
            self.close_deadline = Some(now + config.close_timeout);
        }
    }

    /// The earliest deadline that matters in `state`.
    pub fn next_deadline(&self, config: &Config, state: State) -> Option<Instant> {
        if self.close_expired {
            return None;
        }
        if let Some(d) = self.close_deadline {
            return Some(d);
        }
        if state != State::Open {
            return None;
        }
        let idle = config.idle_timeout.map(|t| self.last_rx + t);
        let ping = config.ping_interval.map(|t| self.last_rx.max(self.last_ping) + t);
        match (idle, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
