//! Deadlines of the keepalive ping, the idle timeout and the close timeout.
//!
//! The state machine is told the time only in `poll_timeout` and
//! `handle_timeout`. Events between two calls (data received, a close frame
//! sent) are recorded as flags and stamped with the time of the next call,
//! so a driver needs one clock read per batch of I/O, not one per message.

use super::Config;
use std::time::Instant;

#[derive(Debug)]
pub(super) struct Timers {
    /// When data was last received (or the connection started).
    pub last_rx: Instant,
    /// When we last sent a keepalive ping.
    pub last_ping: Instant,
    /// Data arrived since the last sync.
    pub rx_flag: bool,
    /// When the close timeout expires, once our close frame was sent.
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
    pub fn sync(&mut self, now: Instant, close_sent: bool, config: &Config) {
        if !self.started {
            self.started = true;
            self.last_rx = now;
            self.last_ping = now;
        }
        if self.rx_flag {
            self.rx_flag = false;
            self.last_rx = now;
        }
        if close_sent && self.close_deadline.is_none() {
            self.close_deadline = Some(now + config.close_timeout);
        }
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
        if !open {
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
