//! Deadlines of the keepalive ping, the idle timeout and the close timeout.
//!
//! The state machine never reads a clock: it is told the time only in
//! `poll_timeout` and `handle_timeout`, by the driver (the tokio drivers
//! read tokio's clock, so tests can pause it). Events between two calls
//! (data received, a close frame sent) are recorded as flags and stamped
//! with the time of the next call, so a driver needs one clock read per
//! batch of I/O, not one per message. The connection's timers start at the
//! first call.

use super::{Config, ProtocolError};
use std::time::{Duration, Instant};

/// The window of `Config::max_control_frames_per_second`.
const CONTROL_WINDOW: Duration = Duration::from_secs(1);

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
    /// Control frames received in the current window
    /// (`Config::max_control_frames_per_second`).
    control_count: u32,
    /// When the current control-frame window started; `None` until the
    /// first clock reading after a control frame.
    control_window: Option<Instant>,
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
        // The control-frame window: opened at the first reading after a
        // control frame, closed (count back to zero) at the first reading
        // a window later; `next_deadline` asks for that reading.
        match self.control_window {
            Some(start) if now >= start + CONTROL_WINDOW => {
                self.control_window = None;
                self.control_count = 0;
            }
            None if self.control_count > 0 => self.control_window = Some(now),
            _ => {}
        }
        let marks = self.marks.get_or_insert(Marks { last_rx: now, last_ping: now });
        if std::mem::take(&mut self.rx_flag) {
            marks.last_rx = now;
        }
        marks
    }

    /// Counts one control frame received from the peer; the error once
    /// the current window holds more than the configured limit.
    pub fn count_control(&mut self, config: &Config) -> Result<(), ProtocolError> {
        self.control_count = self.control_count.saturating_add(1);
        match config.max_control_frames_per_second {
            Some(max) if self.control_count > max => Err(ProtocolError::ControlFrameFlood { max }),
            _ => Ok(()),
        }
    }

    /// A control-frame window is open: the driver must tell the time so it
    /// can end.
    pub fn counting_control(&self) -> bool {
        self.control_count > 0
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
        let window = self.control_window.map(|start| start + CONTROL_WINDOW);
        [idle, ping, window].into_iter().flatten().min()
    }
}
