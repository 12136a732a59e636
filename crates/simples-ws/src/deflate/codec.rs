//! The permessage-deflate transform (RFC 7692 §7.2) as an [`Extension`].

use super::budget::DeflatePermit;
use super::params::{DeflateParams, MAX_WINDOW_BITS};
use super::DeflateConfig;
use crate::close::CloseCode;
use crate::extension::{Extension, PreparedEncoding};
use crate::message::DataKind;
use crate::proto::{ProtocolError, Role};
use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// RSV1: "Per-Message Compressed" (RFC 7692 §6).
pub const RSV1: u8 = 0x40;

/// The tail a sync flush ends with, removed before sending and appended
/// before inflating (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib cannot deflate with a 256-byte window: it uses 9 bits when 8 are
/// asked for (zlib 1.2.9+, zlib-rs and flate2 alike). That is still safe
/// for a peer inflating with 8 bits: deflate never emits a distance beyond
/// `window - MIN_LOOKAHEAD` = 512 - 262 = 250 bytes. Inflating with a
/// window larger than the peer's is always safe.
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, MAX_WINDOW_BITS)
}

/// Estimated bytes held by a deflate context with a `bits` window
/// (zlib-rs: window 2^(bits+1), prev 2^(bits+1), a fixed 64 Ki-entry hash
/// head of 128 KiB, 4 + 3 literal buffers of 16 KiB at memLevel 8, and
/// the state). The level does not change the allocation.
pub fn deflate_memory(bits: u8) -> usize {
    let w = 1usize << zlib_bits(bits);
    4 * w + (128 << 10) + (112 << 10) + DEFLATE_STATE
}

/// Estimated bytes held by an inflate context. zlib-rs always allocates a
/// 32 KiB window (plus padding), whatever the negotiated size.
pub fn inflate_memory(_bits: u8) -> usize {
    (32 << 10) + INFLATE_STATE
}

/// Fixed parts of the estimates (state structs, padding), measured with
/// a counting allocator (see the `memory_estimates_match_allocations`
/// test).
const DEFLATE_STATE: usize = 4 << 10;
const INFLATE_STATE: usize = 12 << 10;

impl DeflateParams {
    /// The compression state a connection in `role` holds at most with
    /// these parameters: one deflate and one inflate context. The budget
    /// reserves this much per connection.
    pub fn memory_estimate(&self, role: Role) -> usize {
        let (own, peer) = match role {
            Role::Server => (self.server_max_window_bits, self.client_max_window_bits),
            Role::Client => (self.client_max_window_bits, self.server_max_window_bits),
        };
        deflate_memory(own) + inflate_memory(peer)
    }
}

fn extension_error(code: CloseCode, reason: String) -> ProtocolError {
    ProtocolError::Extension { reason, code }
}

/// Deflates `input` with a sync flush and returns the output without its
/// 0x00 0x00 0xff 0xff tail (RFC 7692 §7.2.1).
fn deflate_sync(c: &mut Compress, input: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    if input.is_empty() {
        // zlib emits nothing for a second sync flush without input; an
        // empty message is the start of an empty stored block (§7.2.3.6),
        // which leaves the LZ77 window as it is.
        return Ok(vec![0x00]);
    }
    let fail = |e: flate2::CompressError| extension_error(CloseCode::INTERNAL_ERROR, format!("deflate failed: {e}"));
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    let start = c.total_in();
    loop {
        // zlib: keep more than 6 bytes free so that a flush marker is not
        // repeated because the output was exactly full.
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let consumed = (c.total_in() - start) as usize;
        c.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync).map_err(fail)?;
        // The flush is complete once all input is consumed and deflate
        // stopped before filling the output.
        if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TAIL) {
        return Err(extension_error(CloseCode::INTERNAL_ERROR, "deflate output lacks the sync flush tail".into()));
    }
    out.truncate(out.len() - TAIL.len());
    Ok(out)
}

/// Compresses one message with a fresh context and an LZ77 window of
/// `window_bits` (8..=15), as [`crate::PreparedFrame::compressed`] needs.
/// `None` when compression does not make it smaller.
pub fn compress_message(payload: &[u8], level: u32, window_bits: u8) -> Option<Vec<u8>> {
    let mut c = Compress::new_with_window_bits(Compression::new(level.min(9)), false, zlib_bits(window_bits));
    let out = deflate_sync(&mut c, payload).ok()?;
    (out.len() < payload.len()).then_some(out)
}

/// permessage-deflate on one connection: a deflate context for what it
/// sends and an inflate context for what it receives, each created when
/// first needed and dropped after every message when the side's
/// no_context_takeover applies (so an idle connection holds none).
pub struct DeflateExtension {
    params: DeflateParams,
    level: Compression,
    min_size: usize,
    /// Window bits this endpoint compresses with / the peer compresses with.
    own_bits: u8,
    peer_bits: u8,
    /// Reset (drop) the contexts after each message.
    own_reset: bool,
    peer_reset: bool,
    compressor: Option<Compress>,
    inflater: Option<Decompress>,
    /// The peer ended the deflate stream (BFINAL) in the current message.
    ended: bool,
    _permit: Option<DeflatePermit>,
}

impl std::fmt::Debug for DeflateExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateExtension")
            .field("params", &self.params)
            .field("level", &self.level.level())
            .field("min_size", &self.min_size)
            .field("memory", &self.memory())
            .finish_non_exhaustive()
    }
}

impl DeflateExtension {
    /// The extension for a connection in `role` with the negotiated
    /// `params`; the compression level and `min_size` come from `config`.
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> DeflateExtension {
        let (own_bits, peer_bits, own_reset, peer_reset) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        DeflateExtension {
            params,
            level: Compression::new(config.level.min(9)),
            min_size: config.min_size,
            own_bits,
            peer_bits,
            own_reset,
            peer_reset,
            compressor: None,
            inflater: None,
            ended: false,
            _permit: None,
        }
    }

    /// Attaches the budget permit this connection holds (released when the
    /// extension, i.e. the connection, is dropped).
    pub fn with_permit(mut self, permit: Option<DeflatePermit>) -> DeflateExtension {
        self._permit = permit;
        self
    }

    /// The negotiated parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Inflates `input` into `out`, growing it up to `cap` bytes (a bounded
    /// chunk at a time); stops early once `out` reaches `cap`.
    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<(), ProtocolError> {
        if self.ended {
            // After a block with BFINAL (RFC 7692 §7.2.3.4) the rest of the
            // message is ignored, as zlib-based peers do (the RFC's own
            // example has a byte after the final block).
            return Ok(());
        }
        let bits = zlib_bits(self.peer_bits);
        let d = self.inflater.get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        loop {
            if out.len() == out.capacity() {
                if out.len() >= cap {
                    return Ok(());
                }
                // Double, up to the cap: a small frame that inflates to a
                // lot never allocates past the message limit.
                let grow = out.capacity().max(input.len().saturating_mul(2)).clamp(1024, 1 << 20);
                out.reserve_exact(grow.min(cap - out.len()));
            }
            let (in_before, out_before) = (d.total_in(), out.len());
            let status = d.decompress_vec(input, out, FlushDecompress::None).map_err(|e| {
                extension_error(CloseCode::INVALID_PAYLOAD, format!("invalid compressed data: {e}"))
            })?;
            input = &input[(d.total_in() - in_before) as usize..];
            match status {
                Status::StreamEnd => {
                    self.ended = true;
                    return Ok(());
                }
                Status::Ok | Status::BufError => {
                    let progress = d.total_in() != in_before || out.len() != out_before;
                    if out.len() < out.capacity() && (input.is_empty() || !progress) {
                        if !input.is_empty() {
                            return Err(extension_error(CloseCode::INVALID_PAYLOAD, "inflate made no progress".into()));
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
}

impl Extension for DeflateExtension {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn decode(&mut self, message_rsv: u8, payload: Bytes, last: bool, limit: usize) -> Result<Bytes, ProtocolError> {
        if message_rsv & RSV1 == 0 {
            return Ok(payload);
        }
        // Stop one byte past the limit: the protocol then fails the message
        // with 1009 (and the exact totals) without inflating the rest.
        let cap = limit.saturating_add(1);
        let mut out = Vec::with_capacity(payload.len().saturating_mul(3).clamp(64, 64 << 10).min(cap));
        let result = (|| {
            self.inflate(&payload, &mut out, cap)?;
            if last && out.len() < cap {
                self.inflate(&TAIL, &mut out, cap)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.inflater = None;
            return Err(e);
        }
        if last {
            // No context takeover on the peer's side, or a stream it ended:
            // the next message starts a fresh stream.
            if self.peer_reset || self.ended {
                self.inflater = None;
            }
            self.ended = false;
        }
        Ok(Bytes::from(out))
    }

    fn encode(&mut self, _kind: DataKind, payload: Bytes) -> Result<(u8, Bytes), ProtocolError> {
        if payload.len() < self.min_size {
            return Ok((0, payload));
        }
        let (level, bits) = (self.level, zlib_bits(self.own_bits));
        let c = self.compressor.get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        let out = deflate_sync(c, &payload);
        if self.own_reset || out.is_err() {
            self.compressor = None;
        }
        let out = out?;
        // Without context takeover nothing depends on this message having
        // gone through the compressor, so incompressible data goes out as is.
        if self.own_reset && out.len() >= payload.len() {
            return Ok((0, payload));
        }
        Ok((RSV1, Bytes::from(out)))
    }

    fn memory(&self) -> usize {
        self.compressor.as_ref().map_or(0, |_| deflate_memory(self.own_bits))
            + self.inflater.as_ref().map_or(0, |_| inflate_memory(self.peer_bits))
    }

    fn accept_prepared(&mut self, encoding: PreparedEncoding) -> bool {
        match encoding {
            PreparedEncoding::Deflate { window_bits } if zlib_bits(window_bits) <= zlib_bits(self.own_bits) => {
                // The peer's inflater now holds a message our compressor
                // never saw: restart our context so that no back-reference
                // points into the wrong history (always allowed, §7.2.1).
                self.compressor = None;
                true
            }
            _ => false,
        }
    }
}
