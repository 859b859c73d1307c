//! Payload masking (RFC 6455 section 5.3).
//!
//! Owns the XOR kernels that mask client frames and unmask frames a server
//! receives. It does not choose keys: the engine draws them from a CSPRNG.
//!
//! The kernel works a machine word at a time: the key is widened to a `u64`,
//! the buffer is walked in 8-byte chunks (which the compiler turns into SIMD
//! loads and stores), and the tail of under 8 bytes is done a byte at a
//! time. [`extend_masked`] copies and masks in the same pass (the send
//! path's hot loop); it needs one `unsafe` call, to mark the bytes it wrote
//! into the buffer's spare capacity as initialised.
//!
//! The SIMD width is chosen at run time: on x86-64 the same portable word
//! loops are compiled a second time with AVX2 enabled (32-byte vectors
//! instead of the baseline's 16-byte SSE2) and used when the CPU has it
//! (`is_x86_feature_detected!`, cached by std); everywhere else, and under
//! Miri, the portable build runs. Calling the AVX2 build is the other
//! `unsafe` here.

use std::mem::MaybeUninit;

use bytes::BytesMut;

/// XORs `buf` in place with `key`, as if `buf` started `offset` bytes into the
/// masked payload (so a payload can be (un)masked in pieces).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Start the key at byte `offset % 4`: a rotation of the key's bytes in
    // memory order, done on the `u32` (a generic slice rotation costs more
    // than masking a short payload).
    let bits = (offset % 4) as u32 * 8;
    let k = u32::from_ne_bytes(key);
    let k = if cfg!(target_endian = "little") {
        k.rotate_right(bits)
    } else {
        k.rotate_left(bits)
    };
    apply_mask_aligned_key(buf, k.to_ne_bytes());
}

/// The naive definition, one byte at a time: `buf[i] ^= key[i % 4]`.
///
/// Kept as the reference the fast kernel is tested (and benchmarked) against.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Payloads at least this long take the AVX2 build when the CPU has it
/// (shorter ones are done before the vectors would pay off).
#[cfg(all(target_arch = "x86_64", not(miri)))]
const SIMD_MIN: usize = 64;

fn apply_mask_aligned_key(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if buf.len() >= SIMD_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), the only
        // requirement of `avx2::xor_words`.
        unsafe { avx2::xor_words(buf, key) };
        return;
    }
    xor_words(buf, key);
}

/// XORs `buf` with `key` from the key's first byte, a word at a time.
#[inline(always)]
fn xor_words(buf: &mut [u8], key: [u8; 4]) {
    let k64 = key_word(key);
    // Unaligned 8-byte words (as cheap as aligned ones on current CPUs,
    // and no byte-wise head: short payloads take one or two words), which
    // the compiler unrolls into SIMD; every word starts at a multiple of 4
    // into the payload, so the key needs no rotation, nor does the tail.
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word) ^ k64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    apply_mask_naive(chunks.into_remainder(), key);
}

/// The same 4 key bytes twice, in memory order, as a native-endian word:
/// XOR with a native-endian word of the payload then matches the byte-wise
/// definition on any endianness. (`k | k << 32` is that word whichever
/// half comes first in memory; one shift and one OR, where assembling
/// eight bytes costs a dozen instructions, which shows on short frames.)
#[inline(always)]
fn key_word(key: [u8; 4]) -> u64 {
    let k = u64::from(u32::from_ne_bytes(key));
    k | k << 32
}

/// The word loops compiled with AVX2 enabled.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod avx2 {
    use std::mem::MaybeUninit;

    #[target_feature(enable = "avx2")]
    pub(super) fn xor_words(buf: &mut [u8], key: [u8; 4]) {
        super::xor_words(buf, key);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn mask_into(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
        super::mask_into_words(dst, src, key);
    }
}

/// Appends `src`, masked with `key` (from the key's first byte), to `out`
/// in one pass: each word is read, XORed and written once, instead of a
/// copy followed by a second pass over the copy.
pub fn extend_masked(out: &mut BytesMut, src: &[u8], key: [u8; 4]) {
    out.reserve(src.len());
    let len = out.len();
    // `reserve` made room for `src.len()` more bytes, so the slice is in
    // bounds.
    mask_into(&mut out.spare_capacity_mut()[..src.len()], src, key);
    // SAFETY: `mask_into` initialised those `src.len()` bytes (it writes one
    // byte for every byte of `src`, see below), which is exactly the
    // `src.len()` bytes after the current length that `reserve` made room
    // for.
    unsafe { out.set_len(len + src.len()) };
}

/// Writes `src[i] ^ key[i % 4]` to `dst[i]` for every `i < src.len()`
/// (`dst` is at least as long as `src`).
fn mask_into(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if src.len() >= SIMD_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), the only
        // requirement of `avx2::mask_into`.
        unsafe { avx2::mask_into(dst, src, key) };
        return;
    }
    mask_into_words(dst, src, key);
}

/// [`mask_into`], a word at a time.
#[inline(always)]
fn mask_into_words(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    let dst = &mut dst[..src.len()];
    let k64 = key_word(key);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dc, sc) in (&mut d).zip(&mut s) {
        let mut word = [0u8; 8];
        word.copy_from_slice(sc);
        // One 8-byte store (a byte-wise write loop stays byte-wise for
        // short payloads).
        dc.copy_from_slice(
            &(u64::from_ne_bytes(word) ^ k64)
                .to_ne_bytes()
                .map(MaybeUninit::new),
        );
    }
    // The tail (under 8 bytes) starts at a multiple of 4: the key from its
    // first byte again. Byte-wise: a copy of a variable length would be a
    // call to `memcpy`.
    let tail = s.remainder();
    for (i, (o, b)) in d.into_remainder().iter_mut().zip(tail).enumerate() {
        o.write(b ^ key[i & 3]);
    }
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
        fn extend_masked_equals_naive(prefix in proptest::collection::vec(any::<u8>(), 0..20), data in proptest::collection::vec(any::<u8>(), 0..200), key: [u8; 4]) {
            let mut out = BytesMut::from(&prefix[..]);
            extend_masked(&mut out, &data, key);
            let mut naive = data.clone();
            apply_mask_naive(&mut naive, key);
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&out[prefix.len()..], &naive[..]);
        }

        #[test]
        fn portable_and_simd_builds_agree(data in proptest::collection::vec(any::<u8>(), 0..600), key: [u8; 4]) {
            // The portable word loops, called directly (the dispatcher may
            // pick the AVX2 build for long payloads on this CPU).
            let mut naive = data.clone();
            apply_mask_naive(&mut naive, key);
            let mut words = data.clone();
            xor_words(&mut words, key);
            prop_assert_eq!(&words, &naive);
            let mut out = BytesMut::with_capacity(data.len());
            let spare = &mut out.spare_capacity_mut()[..data.len()];
            mask_into_words(spare, &data, key);
            let copied: Vec<u8> = spare.iter().map(|b| unsafe { b.assume_init() }).collect();
            prop_assert_eq!(&copied, &naive);
            // And the dispatched ones (AVX2 where the CPU has it).
            let mut fast = data.clone();
            apply_mask(&mut fast, key, 0);
            prop_assert_eq!(&fast, &naive);
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
