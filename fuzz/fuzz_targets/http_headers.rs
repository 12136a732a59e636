//! Fuzzes the framework's own parsing of HTTP request input (hyper parses
//! the request line and header block; these parse header values and
//! paths): q-value lists (`Accept-Language`, `Accept-Encoding`
//! negotiation), `Host` normalization, single `Range` headers, entity-tag
//! lists (`If-Match`, `If-None-Match`), the static-file path of a request's
//! tail, route matching and the fixed-route key, the `Origin`/`Host`
//! comparison and the WebSocket handshake checks.
//!
//! Input layout and checks: see `simples::__fuzz_http_headers`
//! (`crates/simples/src/fuzz.rs`). In short: byte 0 picks the file size
//! for `Range` (bit 7: the next 8 bytes are a big-endian size), `dotfiles`
//! (bit 6) and HTTP/1.0 for the handshake (bit 0); the rest is the text.
//! Checked: no panic; q-values in 0..=1000 and the chosen coding/language
//! order honour them; a `Range` result lies inside the file and agrees with
//! RFC 9110 for plain `bytes=a-b`; a static path is plain relative names
//! (no `..`, root or hidden name); a well-formed `Host` ignores its port;
//! the handshake refuses with a 4xx only, and accepts only a 16-byte key.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| simples::__fuzz_http_headers(data));
