//! SHA-256 over a kernel at the pace of the ARMv8 SHA-2 instructions. RustCrypto's
//! `sha2` has an ARMv8 backend (0.10 behind its C-building `asm` feature, 0.11 without),
//! but `aarch64-unknown-none` is a strict-alignment target: the compiler cannot know a
//! block is aligned and loads every byte on its own, which costs more than the hashing
//! (sha2 0.11 measured about 10 instructions a byte under `-icount`; this, about 1.9).
//! So pvmfw frames the message here (buffering, padding, length: host-tested against
//! `sha2`) and compresses whole blocks with `armv8` (built for aarch64 with the SHA-2
//! instructions enabled), which loads each 16 bytes at once from a block it knows is
//! 16-byte aligned (a kernel and a ramdisk are page-aligned; a block that is not is
//! copied to one that is first).
//!
//! The vbmeta image's own hash (a few KiB, for the RSA signature) keeps `sha2`.

use core::marker::PhantomData;

#[cfg(target_arch = "aarch64")]
pub mod armv8;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// SHA-256's round constants: the first 32 bits of the fractional parts of the cube
/// roots of the first 64 primes (FIPS 180-4, 4.2.2; the tests derive them again).
pub const ROUND_CONSTANTS: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

/// A block compression function: SHA-256's, on whole 64-byte blocks.
pub trait Compress {
    /// Folds `blocks` into `state`.
    fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]);
}

/// A SHA-256 computation: the framing around `C`'s compression.
#[derive(Clone)]
pub struct Sha256<C> {
    state: [u32; 8],
    buffer: [u8; 64],
    buffered: usize,
    length: u64,
    compress: PhantomData<C>,
}

impl<C: Compress> Default for Sha256<C> {
    fn default() -> Self {
        Self { state: INITIAL, buffer: [0; 64], buffered: 0, length: 0, compress: PhantomData }
    }
}

impl<C: Compress> Sha256<C> {
    /// Hashes `data` after what came before.
    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = data.len().min(64 - self.buffered);
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 64 {
                return;
            }
            C::compress(&mut self.state, core::slice::from_ref(&self.buffer));
            self.buffered = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        C::compress(&mut self.state, blocks);
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The digest: the message padded with 0x80, zeroes and its length in bits.
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        tail[self.buffered] = 0x80;
        let blocks = if self.buffered < 56 { 1 } else { 2 };
        tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
        let (tail, _) = tail[..blocks * 64].as_chunks::<64>();
        C::compress(&mut self.state, tail);
        let mut digest = [0u8; 32];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// `parts` hashed one after the other.
pub fn digest<C: Compress>(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::<C>::default();
    for part in parts {
        hasher.update(part);
    }
    hasher.finish()
}

/// The compression pvmfw uses: the ARMv8 SHA-2 instructions on the firmware, `sha2`'s
/// on a host (where pvmfw's logic is tested).
#[cfg(all(target_arch = "aarch64", target_feature = "sha2"))]
pub type Platform = armv8::Armv8;
/// The compression pvmfw uses: the ARMv8 SHA-2 instructions on the firmware, `sha2`'s
/// on a host (where pvmfw's logic is tested).
#[cfg(not(all(target_arch = "aarch64", target_feature = "sha2")))]
pub type Platform = Portable;

/// RustCrypto's compression, wherever it runs.
pub struct Portable;

impl Compress for Portable {
    fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        for block in blocks {
            sha2::compress256(
                state,
                core::slice::from_ref(sha2::digest::generic_array::GenericArray::from_slice(block)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// Every split of every length around the block and padding boundaries gives
    /// RustCrypto's digest.
    #[test]
    fn frames_the_message_as_sha2_does() {
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 200, 300] {
            let expected: [u8; 32] = sha2::Sha256::digest(&data[..len]).into();
            assert_eq!(digest::<Portable>(&[&data[..len]]), expected, "{len}");
            for split in [0, 1, 32, 63, 64, 65].into_iter().filter(|&s| s <= len) {
                let parts: [&[u8]; 2] = [&data[..split], &data[split..len]];
                assert_eq!(digest::<Portable>(&parts), expected, "{len} split at {split}");
            }
        }
        // The empty message's digest (FIPS 180-4's example, as every implementation has it).
        assert_eq!(digest::<Portable>(&[])[..4], [0xe3, 0xb0, 0xc4, 0x42]);
    }

    /// The round constants, from their definition: the integer cube root of p·2⁹⁶ is
    /// cbrt(p)·2³², whose low 32 bits are the fraction's first 32 bits.
    #[test]
    fn the_round_constants_are_the_cube_roots_of_the_primes() {
        let primes = (2u128..).filter(|n| (2..*n).all(|d| n % d != 0)).take(64);
        for (prime, constant) in primes.zip(ROUND_CONSTANTS) {
            let target = prime << 96;
            let mut root = (target as f64).cbrt() as u128;
            while root * root * root > target {
                root -= 1;
            }
            while (root + 1) * (root + 1) * (root + 1) <= target {
                root += 1;
            }
            assert_eq!(root as u32, constant, "prime {prime}");
        }
    }
}
