//! Poll helpers shared by the unsplit and split drivers.

use crate::proto::{Output, Protocol};
use bytes::{Buf, Bytes};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Slices gathered for one vectored write.
const MAX_IOV: usize = 64;

/// Writes as much of `out` as the transport takes without blocking.
/// `Ready(Ok(()))` once it is empty (and flushed).
pub(crate) fn poll_write_output<W: AsyncWrite + Unpin>(io: &mut W, out: &mut Output, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        let n = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let count = out.io_slices(&mut slices);
            let res = if count == 1 {
                Pin::new(&mut *io).poll_write(cx, &slices[0])
            } else {
                Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
            };
            match res {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        };
        out.advance(n);
    }
    Pin::new(io).poll_flush(cx)
}

/// Writes a list of chunks completely (the split driver's writer task).
pub(crate) async fn write_chunks<W: AsyncWrite + Unpin>(io: &mut W, mut chunks: Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let n = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for c in chunks[first..].iter().take(MAX_IOV) {
                slices[count] = IoSlice::new(c);
                count += 1;
            }
            let n = tokio::io::AsyncWriteExt::write_vectored(io, &slices[..count]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            n
        };
        let mut left = n;
        while left > 0 {
            let c = &mut chunks[first];
            if c.len() <= left {
                left -= c.len();
                first += 1;
            } else {
                c.advance(left);
                left = 0;
            }
        }
    }
    tokio::io::AsyncWriteExt::flush(io).await
}

/// Size of the per-thread buffer that reads start in.
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}

/// Reads the next bytes into `proto` and reports the read to it
/// ([`Protocol::notify_received`]; `Ready(Ok(0))` is the end of stream).
///
/// Between frames, the read lands in a per-thread scratch buffer and only
/// the bytes received are copied into the connection (a few bytes for a
/// small message), so an idle connection holds no receive buffer. Inside a
/// frame it reads straight into the protocol's buffer, sized for the frame,
/// so large payloads are not copied twice.
pub(crate) fn poll_read_proto<R: AsyncRead + Unpin>(io: &mut R, proto: &mut Protocol, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let between = proto.is_between_frames();
    let res = if between {
        // `receive` reports what it copies.
        poll_read_scratch(io, cx, |bytes| proto.receive(bytes))
    } else {
        tokio_util::io::poll_read_buf(Pin::new(io), cx, proto.read_buf_from(spares::take))
    };
    if let Poll::Ready(Ok(n)) = res {
        if !between || n == 0 {
            proto.notify_received(n);
        }
    }
    res
}

/// Releases what `proto` holds while it waits for input (nothing is
/// buffered): the receive buffer of a large frame is kept on this thread
/// for the next large frame of any connection ([`spares`]); the rest is
/// freed ([`Protocol::shrink_buffers`]).
pub(crate) fn shrink_waiting(proto: &mut Protocol) {
    if let Some(buf) = proto.take_read_buffer(spares::MIN) {
        spares::keep(buf);
    }
    proto.shrink_buffers();
}

/// The receive buffers of large frames, kept per thread for the next
/// large frames.
///
/// A connection waiting for input holds no receive buffer (idle memory),
/// so each large message took a new allocation and freed it: with glibc on
/// a runtime's main thread, the heap's top was trimmed and grown again
/// every few messages (1,185 `brk` calls in 2 s of 1 MiB echoes), and the
/// page faults and zeroing of the fresh pages were 13% of the server's
/// CPU (`BENCHMARKS.md`, "echo 1 MiB"). Buffers of at least [`MIN`] bytes
/// and at most [`MAX`] are kept here instead, up to [`BUDGET`] bytes per
/// thread, and reused by the next frame that needs as much room.
pub(crate) mod spares {
    use bytes::BytesMut;
    use std::cell::RefCell;

    /// Smallest buffer kept: glibc's default threshold for serving an
    /// allocation with its own mapping (smaller ones come from the heap
    /// cheaply).
    pub(crate) const MIN: usize = 128 * 1024;
    /// Largest buffer kept (1 MiB frames take a little more than 1 MiB).
    pub(crate) const MAX: usize = 4 << 20;
    /// Bytes kept per thread, at most.
    pub(crate) const BUDGET: usize = 8 << 20;

    thread_local! {
        static SPARES: RefCell<(Vec<BytesMut>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }

    /// Keeps `buf` (empty) if it is no larger than [`MAX`] and fits the
    /// budget; frees it otherwise.
    pub(crate) fn keep(buf: BytesMut) {
        let size = buf.capacity();
        if size > MAX {
            return;
        }
        SPARES.with_borrow_mut(|(list, bytes)| {
            if *bytes + size <= BUDGET {
                *bytes += size;
                list.push(buf);
            }
        });
    }

    /// A kept buffer with room for `capacity` bytes, if any.
    pub(crate) fn take(capacity: usize) -> Option<BytesMut> {
        SPARES.with_borrow_mut(|(list, bytes)| {
            let at = list.iter().position(|b| b.capacity() >= capacity)?;
            let buf = list.swap_remove(at);
            *bytes -= buf.capacity();
            Some(buf)
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn kept() -> usize {
            SPARES.with_borrow(|(_, bytes)| *bytes)
        }

        #[test]
        fn a_kept_buffer_serves_a_request_it_has_room_for_once() {
            let buf = BytesMut::with_capacity(MIN);
            let at = buf.as_ptr();
            keep(buf);
            assert_eq!(kept(), MIN);
            assert!(take(MIN + 1).is_none(), "a buffer without the room was given");
            let again = take(MIN).expect("the kept buffer");
            assert_eq!(again.as_ptr(), at);
            assert!(take(1).is_none(), "given twice");
            assert_eq!(kept(), 0);
        }

        #[test]
        fn buffers_over_the_maximum_or_the_budget_are_freed() {
            keep(BytesMut::with_capacity(MAX + 1));
            assert_eq!(kept(), 0, "kept a buffer over the maximum");
            for _ in 0..BUDGET / MAX + 2 {
                keep(BytesMut::with_capacity(MAX));
            }
            assert_eq!(kept(), BUDGET / MAX * MAX);
            while take(1).is_some() {}
            assert_eq!(kept(), 0);
        }
    }
}

/// Reads into the per-thread scratch buffer and hands the bytes to `f`.
pub(crate) fn poll_read_scratch<R: AsyncRead + Unpin>(io: &mut R, cx: &mut Context<'_>, f: impl FnOnce(&[u8])) -> Poll<io::Result<usize>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut rb = ReadBuf::new(&mut scratch[..]);
        match Pin::new(io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                f(rb.filled());
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
}

/// Reads and discards (after the connection closed); `Ready(Ok(true))` at
/// end of stream.
pub(crate) fn poll_discard<R: AsyncRead + Unpin>(io: &mut R, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
    let mut scratch = [0u8; 2048];
    loop {
        let mut rb = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(true)),
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// The time on tokio's clock, as the protocol takes it: tests that pause
/// tokio's clock (`start_paused`) pause the protocol's timers too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The protocol's timer on tokio's clock. The sleep is re-armed only when
/// the deadline moves earlier; a later deadline lets it fire early, and
/// `handle_timeout` then finds nothing due.
#[derive(Default)]
pub(crate) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timer {
    /// Runs the protocol's due timers ([`Protocol::handle_timeout`]);
    /// `Ready` when it did (the protocol's state may have changed),
    /// `Pending` with a wake-up armed for the next deadline otherwise.
    pub fn poll(&mut self, proto: &mut Protocol, cx: &mut Context<'_>) -> Poll<()> {
        if !proto.needs_clock() {
            return Poll::Pending;
        }
        let now = now();
        let Some(deadline) = proto.poll_timeout(now) else {
            return Poll::Pending;
        };
        if deadline > now {
            let deadline = tokio::time::Instant::from_std(deadline);
            match &mut self.sleep {
                Some(s) if s.deadline() <= deadline && !s.is_elapsed() => {}
                Some(s) => s.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            let sleep = self.sleep.as_mut().map(|s| s.as_mut().poll(cx));
            if !matches!(sleep, Some(Poll::Ready(()))) {
                return Poll::Pending;
            }
        }
        proto.handle_timeout(self::now());
        Poll::Ready(())
    }
}
