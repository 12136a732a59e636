//! permessage-deflate (RFC 7692): per-message compression, with bounded
//! memory (feature `deflate`, on by default).
//!
//! ## Using it
//!
//! - **Server** (tokio driver): set
//!   [`AcceptOptions::deflate`](crate::tokio::AcceptOptions::deflate) to
//!   `Some(DeflateConfig::default())`. It is off by default (as in `ws`):
//!   compression costs CPU and up to ~0.4 MiB per connection.
//! - **Client** (tokio driver):
//!   [`connect_with_deflate`](crate::tokio::connect_with_deflate), or put a
//!   raw permessage-deflate offer in
//!   [`ClientConfig::extensions`](crate::handshake::client::ClientConfig::extensions)
//!   (it is then honoured with the default [`DeflateConfig`]).
//! - **hyper, axum**: [`ServerPolicy::deflate`](crate::handshake::ServerPolicy::deflate)
//!   (or the axum extractor's `deflate`); the [`Decision`](crate::handshake::Decision)
//!   answers and hands the extension over in its `Negotiated`.
//! - **Sans-IO**: the server calls [`DeflateConfig::accept_offers`] with
//!   [`Request::extensions`](crate::handshake::server::Request::extensions),
//!   puts the returned header value in
//!   [`accept_response`](crate::handshake::server::accept_response) and
//!   installs the [`DeflateExtension`] with
//!   [`Protocol::set_extension`](crate::Protocol::set_extension). The client
//!   sends [`DeflateConfig::client_offer`]'s header and checks the answer
//!   with [`ClientOffer::accept`].
//! - **Broadcast**: [`PreparedFrame::compressed`](crate::PreparedFrame::compressed)
//!   compresses a message once for many connections.
//!
//! ## Negotiation (RFC 7692 §7.1)
//!
//! The server takes the first offer it supports, in the order received
//! (several offers in one header and over several headers); invalid offers
//! (unknown, repeated or malformed parameters, window sizes outside 8..=15
//! or with leading zeros) are skipped, never fatal. See
//! [`DeflateConfig::negotiate`] for the parameters answered. The client
//! fails the handshake (`HandshakeError`, `BadResponse`) on any response
//! that breaks §7.1; see [`ClientOffer::accept`].
//!
//! A 256-byte window (`*_max_window_bits=8`) is accepted: zlib cannot
//! deflate with it, so 9 bits are used, which is still safe for an 8-bit
//! inflater because deflate never emits distances beyond 512 - 262 = 250
//! bytes with a 9-bit window (zlib's `MAX_DIST`). Inflating uses at least
//! 9 bits, a superset of the peer's window.
//!
//! ## Messages (RFC 7692 §6, §7.2)
//!
//! Whole messages of at least [`DeflateConfig::min_size`] bytes are
//! compressed with a sync flush, the trailing `00 00 ff ff` removed, and
//! sent with RSV1 on the first frame only (fragmentation by
//! `max_send_frame_size` comes after compression). Smaller messages,
//! fragments sent with `Message::Fragment`, and control frames go out
//! uncompressed (RSV1 clear). Received messages with RSV1 are inflated
//! frame by frame with the tail appended after the last one; text is
//! validated as UTF-8 after inflation, and a message that inflates past
//! `Config::max_message_size` fails the connection with 1009 as soon as the
//! limit is passed (the output grows in bounded chunks, so a small
//! "inflation bomb" never allocates more than the limit). Corrupt data
//! fails with 1007.
//!
//! ## Memory
//!
//! With the zlib-rs backend a deflate context takes about 370 KiB with a
//! 15-bit window (about 245 KiB with 9 bits: its 128 KiB hash table and
//! 112 KiB of literal buffers do not shrink) and an inflate context about
//! 44 KiB (zlib-rs always allocates a 32 KiB window). Contexts are created
//! when first needed; with no_context_takeover they are dropped after
//! every message, so an idle connection holds none.
//! [`Extension::memory`](crate::Extension::memory) (and
//! `Protocol::extension_memory`) reports what a connection holds now, and
//! [`DeflateBudget`] caps the connections (and estimated bytes) that may
//! hold compression state at once.
//!
//! ## Backend
//!
//! flate2 with zlib-rs: windowBits control (`server_max_window_bits`,
//! `client_max_window_bits`) needs a zlib-family backend; flate2's default
//! miniz_oxide always deflates with a 32 KiB window, so a server could
//! not honour a client's `server_max_window_bits` offer. zlib-rs is pure
//! Rust (no C toolchain) and about as fast as zlib-ng.

mod budget;
mod codec;
mod negotiate;
mod params;

#[cfg(test)]
mod tests;

pub use budget::{DeflateBudget, DeflatePermit};
pub use codec::{compress_message, deflate_memory, inflate_memory, DeflateExtension, RSV1};
pub use negotiate::{Agreement, ClientOffer};
#[cfg(feature = "tokio")]
pub(crate) use negotiate::offers_pmd;
pub use params::{DeflateParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};

/// permessage-deflate settings for a server or a client.
///
/// Enabling it: a server sets
/// [`AcceptOptions::deflate`](crate::tokio::AcceptOptions::deflate) (off by
/// default); a client uses [`connect_with_deflate`](crate::tokio::connect_with_deflate).
#[derive(Debug, Clone)]
pub struct DeflateConfig {
    /// zlib compression level, 0 (store) to 9 (best). Default: 1, the
    /// fastest: a server compresses every message it sends, and on the
    /// JSON echo benchmark level 1 is 5x faster than level 6 for a wire
    /// size of 27.5 % instead of 18 % (level 4: 19 % at 1.45x level 6's
    /// speed; see BENCHMARKS.md, "permessage-deflate").
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1
    /// clear): below it the deflate framing overhead and CPU cost outweigh
    /// the savings. Default: 64.
    pub min_size: usize,
    /// The largest LZ77 window (base-2 logarithm, 8..=15) the server
    /// compresses with. A server answers the smaller of this and the
    /// client's `server_max_window_bits`; a client requests it when below
    /// 15. Default: 15.
    pub server_max_window_bits: u8,
    /// The largest LZ77 window (8..=15) the client may compress with (the
    /// server's inflate window). A server answers it when below 15, and
    /// then declines offers that do not allow limiting it; a client offers
    /// it. Default: 15.
    pub client_max_window_bits: u8,
    /// Server compression context reset after each message. A server sets
    /// it in every answer (saving its deflate memory between messages, at
    /// some cost in ratio); a client requests it. A server always accepts a
    /// client's request for it. Default: false.
    pub server_no_context_takeover: bool,
    /// Client compression context reset after each message. A server sets
    /// it in every answer (saving its inflate memory between messages); a
    /// client offers it as a hint and then honours it. A client always
    /// accepts a server's demand for it. Default: false.
    pub client_no_context_takeover: bool,
    /// A cap shared by all connections using this configuration (clones
    /// share it). Default: `None` (no cap).
    pub budget: Option<DeflateBudget>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            min_size: 64,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            budget: None,
        }
    }
}
