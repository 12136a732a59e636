//! Payload masking (RFC 6455 §5.3), word at a time.
//!
//! `apply_mask` XORs the payload with the 4-byte masking key in place. The
//! bulk of the buffer is processed eight bytes at a time with a 64-bit key
//! (the compiler vectorises this loop); only the unaligned head and tail go
//! byte by byte. No `unsafe` is needed: `chunks_exact_mut` plus
//! `u64::from_ne_bytes` compile to plain wide loads and stores.

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the payload.
///
/// RFC 6455 §5.3: octet i of the transformed data is octet i of the original
/// data XOR octet at index (i modulo 4) of the masking key. `offset` lets a
/// resumable parser unmask a payload that arrives in pieces.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    if buf.len() < 16 {
        apply_mask_bytewise(buf, key);
        return;
    }
    let key64 = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word) ^ key64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key phase is unchanged.
    apply_mask_bytewise(chunks.into_remainder(), key);
}

/// The key as seen from `offset` bytes into the payload.
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

#[inline]
fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The straightforward reference implementation, used by tests and by the
/// benchmark that shows what the word-at-a-time version gains.
#[doc(hidden)]
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + offset) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_for_every_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..100 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = data.clone();
                let mut b = data.clone();
                apply_mask(&mut a, key, offset);
                apply_mask_reference(&mut b, key, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut buf = data.clone();
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_ne!(buf, data);
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_eq!(buf, data);
    }

    #[test]
    fn split_unmasking_equals_whole() {
        let data: Vec<u8> = (0..257u32).map(|i| (i * 31) as u8).collect();
        let key = [0xde, 0xad, 0xbe, 0xef];
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(parts, whole, "split at {split}");
        }
    }
}
