//! SHA-256's compression with the ARMv8 SHA-2 instructions (SHA256H, SHA256H2,
//! SHA256SU0, SHA256SU1): four rounds per pair of SHA256H/SHA256H2, the message
//! schedule four words at a time. Each 16 bytes of a block are one load from a block
//! that is 16-byte aligned (a block that is not is copied to one that is): `vld1q`
//! promises no alignment, so on a strict-alignment target it loads byte by byte.

use core::arch::aarch64::{
    uint32x4_t, vaddq_u32, vld1q_u32, vreinterpretq_u32_u8, vreinterpretq_u8_u32, vrev32q_u8, vsha256h2q_u32,
    vsha256hq_u32, vsha256su0q_u32, vsha256su1q_u32, vst1q_u32,
};

/// A block at the alignment of a vector register.
#[repr(C, align(16))]
struct Aligned([uint32x4_t; 4]);

use super::{Compress, ROUND_CONSTANTS};

/// The ARMv8 SHA-2 instructions (the build enables them: `-Ctarget-feature=+sha2`).
pub struct Armv8;

impl Compress for Armv8 {
    fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        // SAFETY: `Armv8` is pvmfw's compression only in builds that enable `sha2`
        // (`super::Platform`), and every CPU those builds run on has it.
        unsafe { compress_blocks(state, blocks) }
    }
}

/// Four message words, from big-endian bytes.
#[target_feature(enable = "sha2")]
fn big_endian(native: uint32x4_t) -> uint32x4_t {
    vreinterpretq_u32_u8(vrev32q_u8(vreinterpretq_u8_u32(native)))
}

/// The round constants as vectors, aligned for one load each.
#[repr(C, align(16))]
struct Constants([u32; 64]);

static CONSTANTS: Constants = Constants(ROUND_CONSTANTS);

/// Four rounds: the schedule's words `$w` plus their constants `$k` into the state.
macro_rules! four_rounds {
    ($abcd:ident, $efgh:ident, $w:expr, $k:expr) => {{
        let wk = vaddq_u32($w, $k);
        let abcd_before = $abcd;
        $abcd = vsha256hq_u32($abcd, $efgh, wk);
        $efgh = vsha256h2q_u32($efgh, abcd_before, wk);
    }};
}

/// The schedule's next four words, from the sixteen before them.
macro_rules! schedule {
    ($w0:expr, $w1:expr, $w2:expr, $w3:expr) => {
        vsha256su1q_u32(vsha256su0q_u32($w0, $w1), $w2, $w3)
    };
}

/// Sixteen rounds from the schedule's next four quads, starting at constant quad `$q`.
macro_rules! schedule_and_round {
    ($abcd:ident, $efgh:ident, $k:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $q:literal) => {
        $w0 = schedule!($w0, $w1, $w2, $w3);
        four_rounds!($abcd, $efgh, $w0, $k[$q]);
        $w1 = schedule!($w1, $w2, $w3, $w0);
        four_rounds!($abcd, $efgh, $w1, $k[$q + 1]);
        $w2 = schedule!($w2, $w3, $w0, $w1);
        four_rounds!($abcd, $efgh, $w2, $k[$q + 2]);
        $w3 = schedule!($w3, $w0, $w1, $w2);
        four_rounds!($abcd, $efgh, $w3, $k[$q + 3]);
    };
}

#[target_feature(enable = "sha2")]
fn compress_blocks(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: `state` is eight u32s.
    let (mut abcd, mut efgh) = unsafe { (vld1q_u32(state.as_ptr()), vld1q_u32(state.as_ptr().add(4))) };
    // SAFETY: 64 constants, 16-byte aligned, read as aligned vectors.
    let k: [uint32x4_t; 16] =
        core::array::from_fn(|i| unsafe { core::ptr::read((&raw const CONSTANTS).cast::<uint32x4_t>().add(i)) });
    let mut copy = Aligned([vaddq_u32(abcd, abcd); 4]);
    for block in blocks {
        let words: *const uint32x4_t = if block.as_ptr().align_offset(16) == 0 {
            block.as_ptr().cast()
        } else {
            // SAFETY: 64 bytes into the 64 of `copy`.
            unsafe { core::ptr::copy_nonoverlapping(block.as_ptr(), (&raw mut copy).cast::<u8>(), 64) };
            (&raw const copy).cast()
        };
        // SAFETY: 64 bytes, 16-byte aligned (the block itself or its copy), read as
        // aligned vectors: one load instruction each.
        let read = |i: usize| big_endian(unsafe { core::ptr::read(words.add(i)) });
        let (mut w0, mut w1, mut w2, mut w3) = (read(0), read(1), read(2), read(3));
        let (abcd_in, efgh_in) = (abcd, efgh);
        four_rounds!(abcd, efgh, w0, k[0]);
        four_rounds!(abcd, efgh, w1, k[1]);
        four_rounds!(abcd, efgh, w2, k[2]);
        four_rounds!(abcd, efgh, w3, k[3]);
        // Rounds 16 to 63, written out: no loop, no index, the constants in registers.
        schedule_and_round!(abcd, efgh, k, w0, w1, w2, w3, 4);
        schedule_and_round!(abcd, efgh, k, w0, w1, w2, w3, 8);
        schedule_and_round!(abcd, efgh, k, w0, w1, w2, w3, 12);
        abcd = vaddq_u32(abcd, abcd_in);
        efgh = vaddq_u32(efgh, efgh_in);
    }
    // SAFETY: `state` is eight u32s.
    unsafe {
        vst1q_u32(state.as_mut_ptr(), abcd);
        vst1q_u32(state.as_mut_ptr().add(4), efgh);
    }
}
