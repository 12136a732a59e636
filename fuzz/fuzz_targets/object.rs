//! Fuzzes object mode's JSON wire format (`simples::ws`, PROTOCOL.md): the
//! parser a WebSocket host runs on every text message in object mode.
//!
//! Input layout: byte 0 picks the depth limit (1..=64), the rest is the
//! message (lossily made UTF-8, as a text frame always is).
//!
//! Checked (inside `simples::ws::__fuzz_object`): no panic, no stack
//! overflow on deep nesting (the depth is checked on the bytes first); a
//! refusal has a code and an `error` event; the depth verdict matches the
//! pre-check; a parsed event or ack re-encoded by the server's encoder
//! parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let depth = usize::from(first % 64) + 1;
    let text = String::from_utf8_lossy(rest);
    simples::ws::__fuzz_object(&text, depth);
});
