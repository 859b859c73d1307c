//! Payload masking (RFC 6455 section 5.3).
//!
//! Owns the XOR kernels that mask client frames and unmask frames a server
//! receives. It does not choose keys: the engine draws them from a CSPRNG.
//!
//! The kernel works a machine word at a time: the key is widened to a `u64`,
//! the buffer is walked in aligned 8-byte chunks (which the compiler turns
//! into SIMD loads and stores), and the unaligned head and tail are done a
//! byte at a time. No `unsafe` is needed for this.

/// XORs `buf` in place with `key`, as if `buf` started `offset` bytes into the
/// masked payload (so a payload can be (un)masked in pieces).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    apply_mask_aligned_key(buf, key);
}

/// The naive definition, one byte at a time: `buf[i] ^= key[i % 4]`.
///
/// Kept as the reference the fast kernel is tested (and benchmarked) against.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

fn apply_mask_aligned_key(buf: &mut [u8], key: [u8; 4]) {
    // An unaligned head byte-wise, then 8-byte aligned words, then a tail.
    let addr = buf.as_ptr() as usize;
    let head_len = ((8 - (addr % 8)) % 8).min(buf.len());
    let (head, rest) = buf.split_at_mut(head_len);
    apply_mask_naive(head, key);

    // The key continues where the head stopped.
    let mut key = key;
    key.rotate_left(head_len % 4);
    // The same 4 key bytes twice, in memory order: XOR of a native-endian
    // word then matches the byte-wise definition on any endianness.
    let k64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);

    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word) ^ k64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    apply_mask_naive(chunks.into_remainder(), key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_known_vector() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut b = *b"Hello";
        apply_mask(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(b, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn fast_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..200), key: [u8; 4], start in 0usize..16) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            apply_mask(&mut fast[start..], key, 0);
            let mut naive = data.clone();
            apply_mask_naive(&mut naive[start..], key);
            prop_assert_eq!(fast, naive);
        }

        #[test]
        fn pieces_equal_whole(data in proptest::collection::vec(any::<u8>(), 0..100), key: [u8; 4], split in 0usize..100) {
            let split = split.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            prop_assert_eq!(whole, pieces);
        }
    }
}
