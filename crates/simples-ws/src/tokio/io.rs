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
        tokio_util::io::poll_read_buf(Pin::new(io), cx, proto.read_buf())
    };
    if let Poll::Ready(Ok(n)) = res {
        if !between || n == 0 {
            proto.notify_received(n);
        }
    }
    res
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
