//! The queue of bytes waiting to be written to the transport.
//!
//! Small frames are encoded into one growing buffer (`tail`), so a burst of
//! messages leaves as one write. Large server payloads and pre-encoded
//! frames are queued as shared [`Bytes`] without copying; the driver writes
//! everything with one vectored write.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

use crate::frame::MAX_HEADER_LEN;

/// Payloads at least this large are queued by reference instead of copied.
pub(crate) const COPY_THRESHOLD: usize = 16 * 1024;

/// [`Output::shrink`] keeps the encoding buffer when no more than this much
/// was queued at once since the last shrink: reusing a buffer of at most
/// about twice this size saves a malloc and a free per write on busy small
/// traffic (broadcasts, chat), and costs idle connections little.
const KEEP_SMALL: usize = 256;

/// Bytes to send, in order: every chunk of `chunks`, then `tail`.
#[derive(Debug, Default)]
pub struct Output {
    /// Shared and sealed chunks; boxed and made by the first (small
    /// traffic never needs them): 8 bytes per connection, not 40, and the
    /// extra allocation only for connections that queue large frames.
    chunks: Option<Box<Chunks>>,
    tail: BytesMut,
    /// Most bytes held by `tail` at once since the last shrink: bounds the
    /// size of its allocation (it grows by doubling from small). Saturates
    /// (only compared with `KEEP_SMALL`).
    peak: u32,
    /// Bytes were written (advanced or taken) since the protocol last
    /// looked: the close timeout restarts (see `Timers::sync`).
    progress: bool,
}

/// See `Output::chunks`.
#[derive(Debug, Default)]
struct Chunks {
    list: VecDeque<Bytes>,
    /// Bytes in `list` (the output's length is this and the tail's).
    len: usize,
}

impl Output {
    /// Bytes waiting.
    #[inline]
    pub fn len(&self) -> usize {
        self.tail.len() + self.chunks.as_ref().map_or(0, |c| c.len)
    }

    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `dst` with the waiting bytes in order; returns how many slices
    /// were filled. Pass the count written back to [`Output::advance`].
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for c in self.chunks.iter().flat_map(|c| c.list.iter()) {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(c);
            n += 1;
        }
        if !self.tail.is_empty() && n < dst.len() {
            dst[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    /// The first contiguous piece of waiting bytes.
    pub fn first_chunk(&self) -> &[u8] {
        match self.chunks.as_ref().and_then(|c| c.list.front()) {
            Some(c) => c,
            None => &self.tail,
        }
    }

    /// Drops `n` written bytes from the front.
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len(), "advanced past the end of the output");
        self.progress |= n > 0;
        if let Some(chunks) = self.chunks.as_deref_mut() {
            while n > 0 {
                let Some(c) = chunks.list.front_mut() else { break };
                if c.len() <= n {
                    n -= c.len();
                    chunks.len -= c.len();
                    chunks.list.pop_front();
                } else {
                    c.advance(n);
                    chunks.len -= n;
                    return;
                }
            }
        }
        self.tail.advance(n);
    }

    /// Takes every waiting byte as a list of chunks (for drivers that hand
    /// buffers to the kernel instead of borrowing them).
    pub fn take_all(&mut self) -> Vec<Bytes> {
        self.seal_tail();
        self.progress |= !self.is_empty();
        self.chunks.take().map(|c| Vec::from(c.list)).unwrap_or_default()
    }

    /// Whether bytes were written since the last call.
    pub(crate) fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.progress)
    }

    /// Releases buffer memory when nothing is waiting (for idle connections).
    ///
    /// A small encoding buffer (see `KEEP_SMALL`) is kept for reuse.
    pub fn shrink(&mut self) {
        if self.is_empty() {
            if self.peak as usize > KEEP_SMALL || self.chunks.is_some() {
                self.tail = BytesMut::new();
                self.chunks = None;
            }
            self.peak = 0;
        }
    }

    /// Releases every buffer when nothing is waiting, the small one
    /// [`Output::shrink`] keeps too.
    pub fn release(&mut self) {
        if self.is_empty() {
            self.tail = BytesMut::new();
            self.chunks = None;
            self.peak = 0;
        }
    }

    /// Makes room for a burst of frames about to be queued, given each
    /// one's size (a prepared frame's bytes, or a message's payload): the
    /// ones copied into the encoding buffer (under 16 KiB) then take one
    /// allocation instead of a growth by doubling, with a copy, every few
    /// frames. Drivers that move queued messages into the protocol in
    /// batches call it before the batch; the buffer is still released by
    /// [`Output::shrink`] when the connection is idle.
    pub fn reserve_for(&mut self, sizes: impl IntoIterator<Item = usize>) {
        let inline: usize = sizes.into_iter().filter(|&n| n < COPY_THRESHOLD).map(|n| n + MAX_HEADER_LEN).sum();
        self.tail.reserve(inline);
    }

    /// Buffer for encoding small frames in place; call [`Output::commit`]
    /// with the number of bytes added.
    #[inline]
    pub(crate) fn tail_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Accounts for bytes appended to the tail (`n` of them: the tail's
    /// length is the count).
    #[inline]
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.tail.len());
        self.peak = self.peak.max(u32::try_from(self.tail.len()).unwrap_or(u32::MAX));
    }

    /// Queues shared bytes after everything already waiting.
    pub(crate) fn push_shared(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.seal_tail();
        self.push_chunk(b);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = self.tail.split().freeze();
            self.push_chunk(sealed);
        }
    }

    fn push_chunk(&mut self, b: Bytes) {
        let chunks = self.chunks.get_or_insert_with(Box::default);
        chunks.len += b.len();
        chunks.list.push_back(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn flatten(o: &Output) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = o.io_slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn keeps_order_across_inline_and_shared() {
        let mut o = Output::default();
        o.tail_mut().put_slice(b"ab");
        o.commit(2);
        o.push_shared(Bytes::from_static(b"cde"));
        o.tail_mut().put_slice(b"f");
        o.commit(1);
        assert_eq!(flatten(&o), b"abcdef");
        assert_eq!(o.len(), 6);
        o.advance(3);
        assert_eq!(flatten(&o), b"def");
        o.advance(3);
        assert!(o.is_empty());
        assert_eq!(flatten(&o), b"");
    }

    /// Part of every connection's protocol, idle or not: the chunk list is
    /// boxed until the first shared chunk, with its byte count (48 bytes;
    /// 80 with the list inline, 56 with the count).
    #[test]
    fn an_output_is_six_words() {
        assert_eq!(std::mem::size_of::<Output>(), 48);
    }

    proptest::proptest! {
        /// Any mix of copied and shared bytes, written in any steps, comes
        /// out in order, and the length is always what is left (the chunks'
        /// count kept in their box, the tail's its own).
        #[test]
        fn output_matches_a_plain_buffer(ops in proptest::collection::vec((0u8..3, 0usize..40), 0..60)) {
            let mut o = Output::default();
            let mut model: Vec<u8> = Vec::new();
            let mut next = 0u8;
            for (op, n) in ops {
                match op {
                    0 => {
                        let bytes: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        o.tail_mut().put_slice(&bytes);
                        o.commit(bytes.len());
                        model.extend_from_slice(&bytes);
                    }
                    1 => {
                        let bytes: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        o.push_shared(Bytes::from(bytes.clone()));
                        model.extend_from_slice(&bytes);
                    }
                    _ => {
                        let k = n.min(model.len());
                        o.advance(k);
                        model.drain(..k);
                        if model.is_empty() {
                            o.shrink();
                        }
                    }
                }
                proptest::prop_assert_eq!(o.len(), model.len());
                proptest::prop_assert_eq!(o.is_empty(), model.is_empty());
                let mut slices = [IoSlice::new(&[]); 128];
                let n = o.io_slices(&mut slices);
                let all: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
                proptest::prop_assert_eq!(all, model.clone());
            }
            let taken: Vec<u8> = o.take_all().iter().flat_map(|b| b.iter().copied()).collect();
            proptest::prop_assert_eq!(taken, model);
            proptest::prop_assert!(o.is_empty());
        }
    }

    #[test]
    fn shared_chunks_are_released_once_written() {
        let mut o = Output::default();
        o.push_shared(Bytes::from(vec![1u8; COPY_THRESHOLD]));
        o.tail_mut().put_slice(b"x");
        o.commit(1);
        o.push_shared(Bytes::from_static(b"yz"));
        assert!(o.chunks.is_some());
        assert_eq!(o.len(), COPY_THRESHOLD + 3);
        o.advance(COPY_THRESHOLD + 1);
        assert_eq!(flatten(&o), b"yz");
        assert_eq!(o.take_all(), vec![Bytes::from_static(b"yz")]);
        o.shrink();
        assert!(o.chunks.is_none() && o.is_empty());
    }

    #[test]
    fn shrink_keeps_a_small_buffer_and_release_does_not() {
        let mut o = Output::default();
        o.tail_mut().put_slice(b"abc");
        o.commit(3);
        o.release();
        assert_eq!(o.len(), 3, "nothing is released while bytes wait");
        o.advance(3);
        o.shrink();
        assert!(o.tail_mut().capacity() > 0, "a small buffer is kept for reuse");
        o.release();
        assert_eq!(o.tail_mut().capacity(), 0);
    }

    #[test]
    fn reserve_for_makes_room_for_inline_frames_only() {
        let mut o = Output::default();
        o.reserve_for([66, 66, COPY_THRESHOLD]);
        let cap = o.tail_mut().capacity();
        assert!(cap >= 2 * (66 + MAX_HEADER_LEN), "{cap}");
        assert!(cap < COPY_THRESHOLD, "large frames are shared, not copied: {cap}");
        let ptr = o.tail_mut().as_ptr();
        for _ in 0..2 {
            o.tail_mut().put_slice(&[7u8; 66]);
            o.commit(66);
        }
        assert_eq!(o.tail_mut().as_ptr(), ptr, "no reallocation within the reserved room");
        assert_eq!(o.len(), 132);
    }
}
