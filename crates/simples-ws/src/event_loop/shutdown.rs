//! Graceful shutdown: stop accepting, close every connection with 1001,
//! wait for the closing handshakes up to a deadline.

use super::conn::{ConnState, READ_PAUSED, TERMINAL};
use super::server::{Accepting, Core, Ctx, EventLoop};
use super::{CloseReason, ConnId, EventHandler};
use crate::close::CloseCode;
use crate::handshake::server::reject;
use bytes::Bytes;
use std::io;
use std::time::{Duration, Instant};

/// The reason sent with the close frames of a shutdown.
pub(super) const REASON: &str = "server shutting down";

impl<H: EventHandler> EventLoop<H> {
    /// Stops gracefully, within `timeout`:
    ///
    /// 1. the listening socket is closed: new clients are refused;
    /// 2. handshakes in progress are answered `503 Service Unavailable`;
    /// 3. every open connection gets a close frame with 1001 (going away,
    ///    RFC 6455 §7.4.1) behind what was already queued for it: every
    ///    reply the handlers sent before leaves first;
    /// 4. the loop runs until every connection is gone (the peers answered
    ///    the close, RFC 6455 §7.1.2, or the close timeout ended them: it
    ///    runs from the last write, so a peer still reading its backlog is
    ///    not cut off) or the deadline passes; messages that arrive meanwhile still reach
    ///    [`EventHandler::on_message`] (replies to them are refused: the close
    ///    frame is sent); connections adopted meanwhile ([`Ctx::adopt`]) are
    ///    closed with 1001 at once;
    /// 5. connections left at the deadline are dropped, with
    ///    [`EventHandler::on_close`] (`CloseReason::Io`, `TimedOut`) for those
    ///    it is owed to.
    ///
    /// Returns how many connections were dropped at the deadline. The loop
    /// accepts nothing afterwards.
    pub fn shutdown(&mut self, handler: &mut H, timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.core.registry.deregister(&mut listener);
        }
        self.accepting = Accepting::default();
        self.core.shutting_down = true;
        self.core.close_all();
        // Write the close frames now: the next iteration's writes come
        // only after its `epoll_wait`, which quiet connections would let
        // run to the deadline.
        self.core.now = Instant::now();
        self.core.settle_dirty(handler);
        while !self.core.conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.run_once(handler, Some(left))?;
        }
        Ok(self.core.drop_all(handler))
    }
}

impl Core {
    /// Steps 2 and 3 of [`EventLoop::shutdown`].
    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            let c = &mut self.conns[key];
            let live = c.flags & TERMINAL == 0;
            match &mut c.state {
                ConnState::Handshaking { .. } => {
                    let response = reject(503, REASON).to_response();
                    c.state = ConnState::Rejecting { out: Bytes::from(response) };
                }
                // Already closing (our close frame may be out): unchanged.
                ConnState::Open(p) if live => {
                    let _ = p.close(CloseCode::GOING_AWAY, REASON);
                }
                _ => continue,
            }
            self.mark(key);
            if self.conns[key].has(READ_PAUSED) {
                // The peer's answer must be read.
                self.resume_reading(key);
            }
        }
    }

    /// Step 5 of [`EventLoop::shutdown`]: removes every connection left;
    /// how many there were.
    fn drop_all<H: EventHandler>(&mut self, handler: &mut H) -> usize {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for &key in &keys {
            let c = &mut self.conns[key];
            let owed = matches!(c.state, ConnState::Open(_)) && c.flags & TERMINAL == 0;
            c.flags |= TERMINAL;
            let id = ConnId { key: key as u32, gen: c.gen };
            if owed {
                let e = io::Error::new(io::ErrorKind::TimedOut, "the shutdown deadline passed");
                handler.on_close(&mut Ctx { core: self }, id, CloseReason::Io(e));
            }
            self.remove(key);
        }
        keys.len()
    }
}
