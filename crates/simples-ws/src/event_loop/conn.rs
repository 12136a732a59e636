//! One connection's state in the loop's slab.

use crate::proto::{Output, Protocol};
use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use std::io::{self, IoSlice, Read};
use std::time::Instant;

/// Slices gathered for one vectored write.
const MAX_IOV: usize = 64;

/// The connection is in the loop's dirty list (flush, re-arm, shrink at
/// the end of the iteration).
pub(super) const PENDING: u8 = 1;
/// `EventHandler::on_close` was called: the application is done with it.
pub(super) const TERMINAL: u8 = 2;
/// The write side was shut down.
pub(super) const SHUTDOWN: u8 = 4;
/// Remove it at the end of the iteration, without further ceremony.
pub(super) const DEAD: u8 = 8;
/// The connection is in the loop's shrink list: its buffers are released
/// at the next sweep if it stays idle until then.
pub(super) const SHRINK: u8 = 16;
/// Reading is paused: the pending output is over the high-water mark
/// (readable events are ignored until it drains to the low-water mark).
/// Also set to read the connection again at the end of the iteration
/// (`settle` resumes it once the output is at the low-water mark): after
/// [`super::Ctx::adopt`] and when the application resumes reading.
pub(super) const PAUSED: u8 = 32;
/// The application paused reading ([`super::Ctx::pause_reading`]); reading
/// happens only when neither this nor `PAUSED` holds.
pub(super) const READ_PAUSED: u8 = 64;
/// [`super::Ctx::notify_drained`] asked for one
/// [`super::EventHandler::on_drained`] once the output is at or below the
/// low-water mark.
pub(super) const DRAIN: u8 = 128;

/// One connection: kept small, most of it is the protocol.
pub(super) struct Conn {
    pub stream: TcpStream,
    /// Matches the generation of the [`super::ConnId`]s handed out for it.
    pub gen: u32,
    pub flags: u8,
    /// The deadline of this connection's live entry in the timer heap, as
    /// [`Stamp`] (4 bytes instead of an `Option<Instant>`'s 16).
    pub armed: Option<Stamp>,
    pub state: ConnState,
}

// Open connections dominate and the slab stores every slot at the size of
// the largest variant anyway: boxing `Protocol` would only add a pointer
// and an allocation per connection.
#[allow(clippy::large_enum_variant)]
pub(super) enum ConnState {
    /// Reading the request head.
    Handshaking { buf: BytesMut },
    /// Writing an HTTP error response, then closing.
    Rejecting { out: Bytes },
    /// WebSocket traffic (the 101 response is the first bytes of the
    /// protocol's output).
    Open(Protocol),
}

/// A deadline in milliseconds since the loop started, wrapping at 2^32
/// (49 days), never 0. Compared with wrapping arithmetic, which is exact
/// for deadlines less than 24 days apart; the heap keeps the exact
/// `Instant`, this only tells a connection's live entry from stale ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp(std::num::NonZeroU32);

impl Stamp {
    pub fn new(epoch: Instant, t: Instant) -> Stamp {
        let ms = t.saturating_duration_since(epoch).as_millis() as u32;
        Stamp(std::num::NonZeroU32::new(ms).unwrap_or(std::num::NonZeroU32::MIN))
    }

    /// True when `self` is earlier than `other`.
    pub fn before(self, other: Stamp) -> bool {
        (self.0.get().wrapping_sub(other.0.get()) as i32) < 0
    }
}

impl Conn {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The protocol, if open and not yet over for the application.
    pub fn live_proto(&mut self) -> Option<&mut Protocol> {
        match &mut self.state {
            ConnState::Open(p) if self.flags & (TERMINAL | DEAD) == 0 => Some(p),
            _ => None,
        }
    }

    /// True when a frame of `len` bytes fits in the output under `max`
    /// ([`super::Options::max_queued`]; an empty output takes one frame of
    /// any size). Over it, first writes what the socket takes now: a
    /// reader that is only behind within this iteration (a burst of
    /// broadcasts, written at its end) is not mistaken for a slow one.
    #[inline]
    pub fn fits(&mut self, len: usize, max: usize) -> bool {
        let ConnState::Open(p) = &mut self.state else { return false };
        !over_limit(p.output().len(), len, max) || self.fits_once_written(len, max)
    }

    /// [`Conn::fits`] over the limit: out of the way of the per-frame
    /// path of a burst.
    #[cold]
    fn fits_once_written(&mut self, len: usize, max: usize) -> bool {
        let ConnState::Open(p) = &mut self.state else { return false };
        // An error shows again at the connection's next write or event.
        let _ = write_output(&mut self.stream, p.output());
        !over_limit(p.output().len(), len, max)
    }

    /// Writes what the output holds now (see [`super::Ctx::write_now`]).
    pub fn write_now(&mut self) {
        let ConnState::Open(p) = &mut self.state else { return };
        // What the socket does not take, and an error (it shows again at
        // the write), are the iteration's writes' to handle.
        let _ = write_output(&mut self.stream, p.output());
    }
}

/// A frame of `len` bytes does not fit behind `queued` bytes under `max`.
fn over_limit(queued: usize, len: usize, max: usize) -> bool {
    queued > 0 && queued + len > max
}

/// Writes as much of `out` as the socket takes: `Ok(true)` once empty,
/// `Ok(false)` when the send buffer is full (a writable event follows).
pub(super) fn write_output(stream: &mut TcpStream, out: &mut Output) -> io::Result<bool> {
    while !out.is_empty() {
        let (written, asked) = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let count = out.io_slices(&mut slices);
            let asked: usize = slices[..count].iter().map(|s| s.len()).sum();
            let res = send(stream, &slices[..count]);
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => (n, asked),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        out.advance(written);
        if written < asked {
            // Short write: the send buffer is full; its writable edge
            // comes when it drains (saves the write that returns EAGAIN).
            return Ok(out.is_empty());
        }
    }
    Ok(true)
}

/// One `send` (one slice) or `sendmsg` (several) with `MSG_NOSIGNAL`: a
/// write to a connection the peer reset fails with `EPIPE` instead of
/// raising SIGPIPE, which kills a process that did not ignore it (Rust's
/// `main` ignores it; a C or Node host embedding the loop may not).
/// `writev`, which `Write::write_vectored` calls, takes no flags. Same
/// system call cost: `sendmsg` takes the same iovec array as `writev`.
fn send(stream: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let socket = socket2::SockRef::from(stream);
    match slices {
        [one] => socket.send_with_flags(one, libc::MSG_NOSIGNAL),
        _ => socket.send_vectored_with_flags(slices, libc::MSG_NOSIGNAL),
    }
}

/// Writes a plain byte buffer (an HTTP error response).
pub(super) fn write_bytes(stream: &mut TcpStream, out: &mut Bytes) -> io::Result<bool> {
    while !out.is_empty() {
        match send(stream, &[IoSlice::new(out)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes::Buf::advance(out, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads and discards until the socket is empty; `true` at end of stream
/// (or on an error, which ends the stream as well).
pub(super) fn drain(stream: &mut TcpStream, scratch: &mut [u8]) -> bool {
    loop {
        match stream.read(scratch) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slab holds one `Conn` per connection: keep it small. Most of it
    /// is the `Protocol`, which this driver does not change.
    #[test]
    fn conn_stays_small() {
        let conn = std::mem::size_of::<Conn>();
        let proto = std::mem::size_of::<Protocol>();
        println!("size_of::<Conn>() = {conn}, of which Protocol = {proto}");
        assert!(conn <= proto + 48, "Conn is {conn} bytes, Protocol {proto}");
    }
}
