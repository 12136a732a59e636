//! What the handlers can do through [`Ctx`]: send, broadcast, close,
//! inspect (adoption and the application's flow control: `adopt.rs`).

use super::conn::{ConnState, DEAD, PAUSED, PENDING, READ_PAUSED, TERMINAL};
use super::server::{Core, Ctx};
use super::{Broadcast, ConnId};
use crate::close::CloseCode;
use crate::message::Message;
use crate::proto::PreparedFrame;

impl Ctx<'_> {
    /// Queues a message on `id`; `false` if the connection is gone or
    /// closing. Past [`Options::max_queued`](super::Options::max_queued), the message is not queued and
    /// the connection is closed with 1008 (see the module's
    /// "Back-pressure").
    pub fn send(&mut self, id: ConnId, msg: Message) -> bool {
        let max = self.core.options.max_queued;
        let Some((p, _)) = self.core.live(id) else { return false };
        let ok = if p.output().len() >= max {
            tracing::debug!("send queue over its limit: closing with 1008");
            let _ = p.close(CloseCode::POLICY_VIOLATION, "send queue limit exceeded");
            false
        } else {
            p.send(msg).is_ok()
        };
        self.core.mark(id.key as usize);
        ok
    }

    /// Queues a pre-encoded frame on `id`; `false` when it was dropped:
    /// the connection is gone or closing, or its output would exceed
    /// [`Options::max_queued`](super::Options::max_queued) (a slow reader; an empty output takes one
    /// frame of any size).
    ///
    /// Never inlined (see [`Ctx::send_batch`]).
    #[inline(never)]
    pub fn send_prepared(&mut self, id: ConnId, frame: &PreparedFrame) -> bool {
        let max = self.core.options.max_queued;
        let Some(c) = self.core.live_conn(id) else { return false };
        if !c.fits(frame.as_bytes().len(), max) {
            return false;
        }
        let Some(p) = c.live_proto() else { return false };
        let ok = p.send_prepared(frame).is_ok();
        self.core.mark(id.key as usize);
        ok
    }

    /// Queues pre-encoded frames on `id` in order, as
    /// [`Ctx::send_prepared`] queues each (stopping at the first it would
    /// drop), and when nothing was queued before them writes them at once
    /// (see [`Ctx::write_now`]): for a burst gathered per connection, one
    /// lookup of the connection and one `send` while the bytes are in the
    /// cache. Returns the bytes still queued afterwards (`None`: the
    /// connection is gone or closing).
    ///
    /// Never inlined: one call per connection and burst costs nothing, and
    /// `bench/instructions` counts deliveries as the frame copies made in
    /// it (and in [`Ctx::send_prepared`]).
    #[inline(never)]
    pub fn send_batch<'f>(&mut self, id: ConnId, frames: impl IntoIterator<Item = &'f PreparedFrame>) -> Option<usize> {
        let max = self.core.options.max_queued;
        let c = self.core.live_conn(id)?;
        let idle = c.live_proto()?.output().is_empty();
        let mut queued = false;
        for frame in frames {
            if !c.fits(frame.as_bytes().len(), max) {
                break;
            }
            let Some(p) = c.live_proto() else { break };
            if p.send_prepared(frame).is_err() {
                break;
            }
            queued = true;
        }
        if queued && idle {
            c.write_now();
        }
        let left = c.live_proto().map(|p| p.output().len());
        if queued {
            self.core.mark(id.key as usize);
        }
        left
    }

    /// Queues `frame` on every open connection `filter` selects, skipping
    /// (and counting) those whose output would exceed
    /// [`Options::max_queued`](super::Options::max_queued). No wake-up, lock or copy per connection:
    /// small frames are appended to each output, large ones shared.
    pub fn broadcast(&mut self, frame: &PreparedFrame, mut filter: impl FnMut(ConnId) -> bool) -> Broadcast {
        let max = self.core.options.max_queued;
        let len = frame.as_bytes().len();
        let mut result = Broadcast::default();
        let Core { conns, dirty, .. } = &mut *self.core;
        for (key, c) in conns.iter_mut() {
            let gen = c.gen;
            let flags = c.flags;
            let Some(p) = c.live_proto() else { continue };
            if p.state() != crate::State::Open || !filter(ConnId { key: key as u32, gen }) {
                continue;
            }
            if !c.fits(len, max) {
                result.dropped += 1;
                continue;
            }
            let Some(p) = c.live_proto() else { continue };
            if p.send_prepared(frame).is_err() {
                continue;
            }
            result.sent += 1;
            if flags & PENDING == 0 {
                c.flags |= PENDING;
                dirty.push(key);
            }
        }
        result
    }

    /// Starts the closing handshake on `id` (RFC 6455 §7.1.2); the
    /// connection's [`EventHandler::on_close`](super::EventHandler::on_close) comes with the peer's answer (or
    /// the close timeout). `false` if it is gone or already closing.
    /// Resumes reading a connection paused by [`Ctx::pause_reading`].
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> bool {
        let Some((p, flags)) = self.core.live(id) else { return false };
        let ok = p.close(code, reason).is_ok();
        if *flags & READ_PAUSED != 0 {
            // The peer's answer must be read (`Ctx::pause_reading`).
            self.core.resume_reading(id.key as usize);
        }
        self.core.mark(id.key as usize);
        ok
    }

    /// Writes what `id` has queued to its socket now rather than with the
    /// iteration's writes: a handler that fills many connections' outputs
    /// in turn (a burst of broadcasts gathered per connection) sends each
    /// one while its bytes are still in the CPU's cache, as uWebSockets
    /// sends a corked socket's buffer. What the socket does not take, an
    /// error and the rest of the bookkeeping are left to the iteration's
    /// writes, as for any queued output (the connection stays marked).
    /// Call it on a connection whose output was empty before: one that
    /// waits for its socket to drain would only get `EAGAIN` again.
    /// `false` if the connection is gone.
    pub fn write_now(&mut self, id: ConnId) -> bool {
        let Some(c) = self.core.live_conn(id) else { return false };
        c.write_now();
        true
    }

    /// True in the callbacks that come after this iteration's
    /// [`EventHandler::before_writes`](super::EventHandler::before_writes),
    /// while the loop writes: `on_message` for a connection read again
    /// then (just adopted, or resumed), `on_drained`, `on_close`. Work a
    /// handler batches for `before_writes` must be flushed by such a
    /// callback itself, or it waits for the next iteration (the next
    /// event, which may be long).
    pub fn writing(&self) -> bool {
        self.core.writing
    }

    /// Bytes waiting to be written on `id` (`None`: gone).
    pub fn queued(&mut self, id: ConnId) -> Option<usize> {
        self.core.live(id).map(|(p, _)| p.output().len())
    }

    /// True while reading `id` is paused because its output is over
    /// [`Options::read_high_water`](super::Options::read_high_water) (see the module's "Back-pressure"), or
    /// waits for the end of the iteration to be read again (just adopted,
    /// or resumed by [`Ctx::pause_reading`]). Pauses by
    /// [`Ctx::pause_reading`] are not reported here.
    pub fn is_paused(&mut self, id: ConnId) -> bool {
        self.core.live(id).is_some_and(|(_, flags)| *flags & PAUSED != 0)
    }

    /// True while `id` is open (not closed, not gone).
    pub fn is_open(&mut self, id: ConnId) -> bool {
        self.core.live(id).is_some()
    }

    /// Calls `f` with every open connection (those that have finished
    /// their handshake and are not over); `f` may send, close, etc.
    pub fn for_each(&mut self, mut f: impl FnMut(&mut Ctx<'_>, ConnId)) {
        let end = self.core.conns.capacity();
        for key in 0..end {
            let Some(c) = self.core.conns.get(key) else { continue };
            if c.flags & (TERMINAL | DEAD) != 0 || !matches!(c.state, ConnState::Open(_)) {
                continue;
            }
            let id = ConnId { key: key as u32, gen: c.gen };
            f(self, id);
        }
    }

    /// Connections in the loop (handshaking, open and closing).
    pub fn connections(&self) -> usize {
        self.core.conns.len()
    }
}
