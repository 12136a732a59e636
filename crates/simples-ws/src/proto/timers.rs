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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The window of `Config::max_control_frames_per_second`.
const CONTROL_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct Timers {
    /// When data was last received and when we last sent a keepalive ping;
    /// meaningful once `started`.
    marks: Marks,
    /// The first call told the time (the connection's start): `marks` hold.
    started: bool,
    /// Data arrived since the last sync.
    pub rx_flag: bool,
    /// The closing handshake's deadline and the control-frame window:
    /// boxed, made by the first close frame queued, idle timeout or
    /// control frame received (an idle connection has none: 24 bytes less
    /// per connection).
    rare: Option<Box<Rare>>,
}

/// See `Timers::rare`.
#[derive(Debug, Default)]
struct Rare {
    /// When the close timeout expires, once our close frame was queued: a
    /// close timeout after the last time output was written (the peer may
    /// still be reading what was queued before the close frame).
    close_deadline: Option<Instant>,
    /// The close timeout expired.
    close_expired: bool,
    /// The closing handshake was started by the idle timeout.
    idle_closing: bool,
    /// Control frames received in the current window
    /// (`Config::max_control_frames_per_second`).
    control_count: u32,
    /// When the current control-frame window started; `None` until the
    /// first clock reading after a control frame.
    control_window: Option<Instant>,
}

/// The connection's marks, as [`Mark`]s (16 bytes where two `Instant`s
/// took 32).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Marks {
    /// When data was last received (or the connection started).
    last_rx: Mark,
    /// When we last sent a keepalive ping (or the connection started).
    last_ping: Mark,
}

impl Marks {
    /// When data was last received (or the connection started).
    pub fn last_rx(&self) -> Instant {
        self.last_rx.instant()
    }

    /// When we last sent a keepalive ping (or the connection started).
    pub fn last_ping(&self) -> Instant {
        self.last_ping.instant()
    }

    /// Records a keepalive ping sent at `now`.
    pub fn set_last_ping(&mut self, now: Instant) {
        self.last_ping = Mark::new(now);
    }
}

/// The reference of every [`Mark`]: the first instant any connection's
/// timers were told (the core reads no clock).
static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// An instant in 8 bytes: signed nanoseconds from [`ORIGIN`] (an instant
/// told later may be earlier than the first). Exact both ways for instants
/// within 292 years of the origin; further ones saturate there.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Mark(i64);

impl Mark {
    fn new(t: Instant) -> Mark {
        let origin = *ORIGIN.get_or_init(|| t);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match t.checked_duration_since(origin) {
            Some(after) => Mark(nanos(after)),
            None => Mark(-nanos(origin - t)),
        }
    }

    fn instant(self) -> Instant {
        // Only made by `Mark::new` (or `Default`, never read before a
        // `new`: `Timers::started`), so the origin is set.
        let origin = *ORIGIN.get().expect("a mark is made from an instant first");
        let d = Duration::from_nanos(self.0.unsigned_abs());
        let t = if self.0 >= 0 { origin.checked_add(d) } else { origin.checked_sub(d) };
        t.unwrap_or(origin)
    }
}

impl Timers {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// When the close timeout expires, once our close frame was queued.
    pub fn close_deadline(&self) -> Option<Instant> {
        self.rare.as_ref().and_then(|r| r.close_deadline)
    }

    /// The close timeout expired.
    pub fn close_expired(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.close_expired)
    }

    /// Records that the close timeout expired.
    pub fn expire_close(&mut self) {
        self.rare().close_expired = true;
    }

    /// The closing handshake was started by the idle timeout.
    pub fn idle_closing(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.idle_closing)
    }

    /// Records that the idle timeout starts the closing handshake.
    pub fn start_idle_closing(&mut self) {
        self.rare().idle_closing = true;
    }

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
        let deadline = self.close_deadline();
        let due = deadline.is_some_and(|d| now >= d);
        if close_sent && !self.close_expired() && (deadline.is_none() || (wrote && !due)) {
            self.rare().close_deadline = Some(now + config.close_timeout);
        }
        // The control-frame window: opened at the first reading after a
        // control frame, closed (count back to zero) at the first reading
        // a window later; `next_deadline` asks for that reading.
        if let Some(rare) = self.rare.as_deref_mut() {
            match rare.control_window {
                Some(start) if now >= start + CONTROL_WINDOW => {
                    rare.control_window = None;
                    rare.control_count = 0;
                }
                None if rare.control_count > 0 => rare.control_window = Some(now),
                _ => {}
            }
        }
        if !self.started {
            self.started = true;
            self.marks = Marks { last_rx: Mark::new(now), last_ping: Mark::new(now) };
        }
        if std::mem::take(&mut self.rx_flag) {
            self.marks.last_rx = Mark::new(now);
        }
        &mut self.marks
    }

    /// Counts one control frame received from the peer; the error once
    /// the current window holds more than the configured limit.
    pub fn count_control(&mut self, config: &Config) -> Result<(), ProtocolError> {
        let rare = self.rare();
        rare.control_count = rare.control_count.saturating_add(1);
        match config.max_control_frames_per_second {
            Some(max) if rare.control_count > max => Err(ProtocolError::ControlFrameFlood { max }),
            _ => Ok(()),
        }
    }

    /// A control-frame window is open: the driver must tell the time so it
    /// can end.
    pub fn counting_control(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.control_count > 0)
    }

    /// The earliest deadline that matters; keepalive and idle deadlines
    /// only while the connection is `open` (its state is `State::Open`).
    pub fn next_deadline(&self, config: &Config, open: bool) -> Option<Instant> {
        if self.close_expired() {
            return None;
        }
        if let Some(d) = self.close_deadline() {
            return Some(d);
        }
        if !self.started || !open {
            return None;
        }
        let last_rx = self.marks.last_rx();
        let idle = config.idle_timeout.map(|t| last_rx + t);
        let ping = config.ping_interval.map(|t| last_rx.max(self.marks.last_ping()) + t);
        let window = self.rare.as_ref().and_then(|r| r.control_window).map(|start| start + CONTROL_WINDOW);
        [idle, ping, window].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Part of every connection's protocol: what only closing and
    /// control-frame traffic need is boxed (48 bytes, 72 with it inline),
    /// the marks are 8 bytes each (32 with them as `Instant`s).
    #[test]
    fn timers_are_four_words() {
        assert_eq!(std::mem::size_of::<Timers>(), 32);
    }

    /// Marks convert back to the instant they were made from, whether it
    /// comes before or after the origin (the first instant told).
    #[test]
    fn marks_are_exact_around_the_origin() {
        let now = Instant::now();
        Mark::new(now);
        // Set by this or by an earlier test.
        let origin = *ORIGIN.get().unwrap();
        for t in [
            origin,
            origin + Duration::from_nanos(1),
            origin + Duration::from_secs(86_400 * 365),
            origin - Duration::from_nanos(1),
            origin - Duration::from_millis(1_500),
            now,
            now + Duration::from_secs(30),
        ] {
            assert_eq!(Mark::new(t).instant(), t);
        }
        assert!(Mark::new(origin - Duration::from_secs(1)).0 < 0);
    }

    #[test]
    fn the_close_deadline_and_the_control_window_live_in_the_box_once_needed() {
        let config = Config { ping_interval: None, idle_timeout: None, ..Config::default() };
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.sync(t0, false, false, &config);
        assert!(timers.rare.is_none() && timers.close_deadline().is_none() && !timers.counting_control());
        timers.count_control(&config).unwrap();
        assert!(timers.counting_control());
        timers.sync(t0, false, false, &config);
        assert_eq!(timers.next_deadline(&config, true), Some(t0 + CONTROL_WINDOW), "the window's end");
        timers.sync(t0 + CONTROL_WINDOW, false, false, &config);
        assert!(!timers.counting_control());
        timers.sync(t0 + CONTROL_WINDOW, true, false, &config);
        assert_eq!(timers.close_deadline(), Some(t0 + CONTROL_WINDOW + config.close_timeout));
        assert!(!timers.close_expired() && !timers.idle_closing());
        timers.start_idle_closing();
        timers.expire_close();
        assert!(timers.close_expired() && timers.idle_closing());
        assert_eq!(timers.next_deadline(&config, false), None);
    }
}
