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

/// `X`: the protocol's own rare state (`Protocol::rare`), kept in the
/// same box as the timers' (one pointer and one allocation per connection
/// for both).
#[derive(Debug, Default)]
pub(super) struct Timers<X> {
    /// When data was last received and when we last sent a keepalive ping;
    /// unset until the first call tells the time (the connection's start).
    marks: Marks,
    /// The closing handshake's deadline and the control-frame window,
    /// with `X`: boxed, made by the first close frame queued, idle timeout
    /// or control frame received, or by the first use of `X` (an idle
    /// connection has none: 48 bytes less per connection).
    rare: Option<Box<Rare<X>>>,
}

/// See `Timers::rare`.
#[derive(Debug, Default)]
struct Rare<X> {
    /// The protocol's.
    extra: X,
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
/// took 32, and an `Option` of them 40).
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    /// When data was last received (or the connection started).
    last_rx: Mark,
    /// When we last sent a keepalive ping (or the connection started).
    last_ping: Mark,
}

impl Default for Marks {
    /// Not started.
    fn default() -> Marks {
        Marks { last_rx: Mark::UNSET, last_ping: Mark::UNSET }
    }
}

impl Marks {
    fn started(&self) -> bool {
        self.last_rx != Mark::UNSET
    }

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark(i64);

impl Mark {
    /// No instant (`new` never makes it: it saturates at `-i64::MAX`).
    const UNSET: Mark = Mark(i64::MIN);

    fn new(t: Instant) -> Mark {
        let origin = *ORIGIN.get_or_init(|| t);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match t.checked_duration_since(origin) {
            Some(after) => Mark(nanos(after)),
            None => Mark(-nanos(origin - t)),
        }
    }

    fn instant(self) -> Instant {
        // Only read once made by `Mark::new` (`Marks::started`), so the
        // origin is set.
        let origin = *ORIGIN.get().expect("a mark is made from an instant first");
        let d = Duration::from_nanos(self.0.unsigned_abs());
        let t = if self.0 >= 0 { origin.checked_add(d) } else { origin.checked_sub(d) };
        t.unwrap_or(origin)
    }
}

impl<X: Default> Timers<X> {
    fn rare(&mut self) -> &mut Rare<X> {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The protocol's rare state, if made.
    pub fn extra(&self) -> Option<&X> {
        self.rare.as_deref().map(|r| &r.extra)
    }

    /// The protocol's rare state, if made, to change.
    pub fn extra_if_made(&mut self) -> Option<&mut X> {
        self.rare.as_deref_mut().map(|r| &mut r.extra)
    }

    /// The protocol's rare state, made if needed.
    pub fn extra_mut(&mut self) -> &mut X {
        &mut self.rare().extra
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
    /// the marks, which exist from then on. `received`: data arrived since
    /// the last call; `wrote`: output was written since the last call. Once our close frame is queued, the close
    /// timeout runs from the last write: a peer that keeps reading a backlog
    /// queued before the close frame (a graceful stop behind many messages)
    /// is not cut off while it reads, and one that reads nothing is still
    /// given up a close timeout after its last progress.
    pub fn sync(&mut self, now: Instant, close_sent: bool, received: bool, wrote: bool, config: &Config) -> &mut Marks {
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
        if !self.marks.started() {
            self.marks = Marks { last_rx: Mark::new(now), last_ping: Mark::new(now) };
        } else if received {
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
        if !self.marks.started() || !open {
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
    /// the marks are 8 bytes each (32 with them as `Instant`s) and say
    /// themselves whether they are set.
    #[test]
    fn timers_are_three_words() {
        assert_eq!(std::mem::size_of::<Timers<()>>(), 24);
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
        let mut timers = Timers::<()>::default();
        timers.sync(t0, false, false, false, &config);
        assert!(timers.rare.is_none() && timers.close_deadline().is_none() && !timers.counting_control());
        timers.count_control(&config).unwrap();
        assert!(timers.counting_control());
        timers.sync(t0, false, false, false, &config);
        assert_eq!(timers.next_deadline(&config, true), Some(t0 + CONTROL_WINDOW), "the window's end");
        timers.sync(t0 + CONTROL_WINDOW, false, false, false, &config);
        assert!(!timers.counting_control());
        timers.sync(t0 + CONTROL_WINDOW, true, false, false, &config);
        assert_eq!(timers.close_deadline(), Some(t0 + CONTROL_WINDOW + config.close_timeout));
        assert!(!timers.close_expired() && !timers.idle_closing());
        timers.start_idle_closing();
        timers.expire_close();
        assert!(timers.close_expired() && timers.idle_closing());
        assert_eq!(timers.next_deadline(&config, false), None);
    }
}
