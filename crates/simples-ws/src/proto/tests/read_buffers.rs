//! `Protocol::take_read_buffer` and `Protocol::read_buf_from`: a driver
//! keeps the receive buffer of a large frame for the next large frame (of
//! any connection) instead of freeing it and allocating another.

use super::*;
use bytes::BytesMut;

/// Feeds `input` the way the drivers do: the first 64 KiB copied in
/// between frames, the rest read into `read_buf_from(spare)` in reads of at
/// most 64 KiB; returns the messages.
fn read_with(s: &mut Protocol, input: &[u8], mut spare: Option<BytesMut>) -> Vec<Message> {
    let first = input.len().min(64 * 1024);
    s.receive(&input[..first]);
    let mut at = first;
    let mut msgs = poll_all(s).0;
    while at < input.len() {
        let buf = s.read_buf_from(|_| spare.take());
        let n = (buf.capacity() - buf.len()).min(64 * 1024).min(input.len() - at);
        buf.extend_from_slice(&input[at..at + n]);
        s.notify_received(n);
        at += n;
        let (more, err) = poll_all(s);
        assert_eq!(err, None);
        msgs.extend(more);
    }
    msgs
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[test]
fn a_large_frames_buffer_is_taken_once_its_message_is_dropped_and_serves_the_next_frame() {
    let mut s = server();
    let one = payload(1 << 20, 1);
    let msgs = read_with(&mut s, &cf(BIN, &one), None);
    assert_eq!(msgs, vec![Message::binary(one)]);
    // The message shares the buffer: nothing to take while it lives.
    assert!(s.take_read_buffer(128 * 1024).is_none(), "took a buffer a message still shares");
    drop(msgs);
    let spare = s.take_read_buffer(128 * 1024).expect("the buffer of a 1 MiB frame, unshared");
    assert!(spare.is_empty() && spare.capacity() >= 1 << 20, "{} bytes", spare.capacity());
    assert_eq!(s.buffered_capacity(), 0, "the protocol still holds a receive buffer");
    let at = spare.as_ptr();

    // The next large frame, here on another connection, grows into it: its
    // payload is in the same allocation, and arrives whole.
    let mut other = server();
    let two = payload((1 << 20) - 1000, 2);
    let msgs = read_with(&mut other, &cf(BIN, &two), Some(spare));
    assert_eq!(msgs, vec![Message::binary(two)]);
    let Message::Binary(got) = &msgs[0] else { unreachable!() };
    // The payload follows the frame's header at the start of the spare.
    let offset = (got.as_ptr() as usize).wrapping_sub(at as usize);
    assert!(offset < 16, "the frame went to another allocation (offset {offset})");
}

#[test]
fn nothing_is_taken_mid_frame_or_under_the_minimum() {
    let mut s = server();
    let input = cf(BIN, &payload(300_000, 3));
    s.receive(&input[..100_000]);
    assert_eq!(poll_all(&mut s), (vec![], None));
    // With room for the rest of the frame: reclaimable, but not free.
    assert!(s.read_buf().capacity() > 200_000);
    assert!(s.take_read_buffer(1).is_none(), "took the buffer of a partial frame");

    let mut small = server();
    let msgs = read_with(&mut small, &cf(BIN, &payload(50_000, 4)), None);
    drop(msgs);
    assert!(small.take_read_buffer(128 * 1024).is_none(), "took a buffer under the minimum");
}

#[test]
fn a_spare_too_small_or_not_empty_is_not_used() {
    for spare in [BytesMut::with_capacity(1000), BytesMut::from(&[1u8; 10][..])] {
        let mut s = server();
        let p = payload(200_000, 5);
        let msgs = read_with(&mut s, &cf(BIN, &p), Some(spare));
        assert_eq!(msgs, vec![Message::binary(p)]);
    }
}

/// Regression (2026-12-05, found in review): the buffer was taken as the
/// view past the frame just handed out, whose capacity is only the rest of
/// the allocation: a driver bounding what it keeps by that capacity kept
/// the whole allocation alive while counting a fraction of it (a 3 MiB
/// frame left a view of about 1 MiB on a 4 MiB allocation).
#[test]
fn a_taken_buffer_is_its_whole_allocation() {
    let mut s = server();
    let len = 3 << 20;
    let msgs = read_with(&mut s, &cf(BIN, &payload(len, 6)), None);
    assert_eq!(msgs.len(), 1);
    let frame_at = match &msgs[0] {
        Message::Binary(b) => b.as_ptr() as usize,
        _ => unreachable!(),
    };
    drop(msgs);
    let room = s.read_buf_from(|_| None).capacity();
    assert!(room >= 128 * 1024, "the case needs a large room past the frame ({room} B)");
    let spare = s.take_read_buffer(128 * 1024).expect("an unshared buffer");
    assert!(spare.capacity() > len, "{} bytes counted for an allocation holding a {len}-byte frame", spare.capacity());
    // It starts where the frame's header did.
    assert!(frame_at - (spare.as_ptr() as usize) < 16);
}
