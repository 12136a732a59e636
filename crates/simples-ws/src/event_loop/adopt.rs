//! Connections opened elsewhere ([`Ctx::adopt`]), and the application's
//! flow control over them: [`Ctx::pause_reading`], [`Ctx::notify_drained`].

use super::conn::{ConnState, DRAIN, PAUSED, READ_PAUSED};
use super::server::Ctx;
use super::ConnId;
use crate::close::CloseCode;
use crate::proto::Protocol;
use mio::net::TcpStream;
use std::io;

impl Ctx<'_> {
    /// Takes over an open WebSocket connection whose handshake was done
    /// elsewhere (see "Adopting connections" in the module docs): from now
    /// on the loop serves it as one it accepted itself.
    ///
    /// `protocol` is ready to use: built by the caller (any role, its own
    /// config), it may already hold received bytes (read past the
    /// handshake, fed with [`Protocol::receive`]) and queued output. The
    /// socket is made non-blocking (and `TCP_NODELAY` per
    /// [`super::Options::nodelay`]) and registered. At the end of this
    /// iteration, after the calling callback returned, the loop writes the
    /// queued output, delivers the messages the protocol can already decode
    /// through [`super::EventHandler::on_message`], and reads what waits in
    /// the socket.
    ///
    /// During [`super::EventLoop::shutdown`] (and after it), the connection
    /// is adopted and closed at once with 1001, as the others were.
    ///
    /// Fails, closing the stream and leaving nothing in the loop, when the
    /// socket has a pending error or is not connected (`NotConnected`), or
    /// cannot be made non-blocking or registered with epoll.
    pub fn adopt(&mut self, stream: std::net::TcpStream, mut protocol: Protocol) -> io::Result<ConnId> {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        // A socket that never connected, or whose peer reset it.
        stream.peer_addr()?;
        stream.set_nonblocking(true)?;
        let stream = TcpStream::from_std(stream);
        if self.core.shutting_down {
            // Too late to serve it: it gets the others' 1001 (an error
            // only means it is already closing).
            let _ = protocol.close(CloseCode::GOING_AWAY, super::shutdown::REASON);
        }
        // PAUSED: `settle` reads it (and delivers what the protocol holds)
        // once the queued output is written down to the low-water mark.
        let id = self.core.insert(stream, ConnState::Open(protocol), PAUSED, None)?;
        self.core.mark(id.key as usize);
        Ok(id)
    }

    /// Pauses (`true`) or resumes (`false`) reading `id`, for an
    /// application whose own processing lags; `false` if `id` is gone or
    /// closing. Independent of the loop's back-pressure on the output
    /// ([`Ctx::is_paused`]): the connection is read only when neither holds.
    ///
    /// While paused, no [`super::EventHandler::on_message`] comes for `id`
    /// (messages already decoded are held), its bytes wait in the kernel
    /// (the peer is slowed by TCP), and its timers run: keepalive pings
    /// leave (their pongs wait unread, so a connection paused longer than
    /// the idle timeout is closed), and the idle and close timeouts end it.
    /// A peer's end of stream or reset is noticed when reading resumes (or
    /// when a timeout ends the connection). Resuming delivers what the
    /// protocol holds and reads what the socket holds, at the end of the
    /// iteration. [`Ctx::close`] resumes reading, to read the peer's answer.
    pub fn pause_reading(&mut self, id: ConnId, paused: bool) -> bool {
        let Some(c) = self.core.live_conn(id) else { return false };
        if !matches!(c.state, ConnState::Open(_)) {
            return false;
        }
        if paused {
            c.flags |= READ_PAUSED;
        } else if c.has(READ_PAUSED) {
            self.core.resume_reading(id.key as usize);
        }
        true
    }

    /// Asks for one [`super::EventHandler::on_drained`] for `id`, as soon
    /// as its queued output is at or below [`super::Options::read_low_water`]
    /// (at the end of this iteration if it already is); `false` if `id` is
    /// gone or closing. Several calls before it comes give one call; none
    /// comes for a connection that ends first (its
    /// [`super::EventHandler::on_close`] does).
    pub fn notify_drained(&mut self, id: ConnId) -> bool {
        let Some(c) = self.core.live_conn(id) else { return false };
        if !matches!(c.state, ConnState::Open(_)) {
            return false;
        }
        c.flags |= DRAIN;
        self.core.mark(id.key as usize);
        true
    }
}

impl super::server::Core {
    /// Lifts the application's pause on `key`: `settle` reads it at the end
    /// of the iteration (no new edge comes for what arrived meanwhile).
    pub(super) fn resume_reading(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        c.flags = (c.flags & !READ_PAUSED) | PAUSED;
        self.mark(key);
    }
}
