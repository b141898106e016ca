//! Copying and zeroing bounce buffers. Every byte of device I/O in a protected VM goes
//! through these twice (in and out, or zero and out), so on the firmware target the
//! common case (16-byte aligned, whole 64-byte blocks) runs as a SIMD loop of
//! 64 bytes per iteration; everything else falls back to `core`.
//!
//! The fast path wants 16-byte alignment (the pool hands bounce buffers out that way),
//! so that it also works before guest-lib has turned the MMU on.

/// Copies `len` bytes from `src` to `dst` (non-overlapping).
///
/// # Safety
/// As for `core::ptr::copy_nonoverlapping`.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(target_os = "none")]
    {
        let blocks = len & !63;
        if blocks > 0 && (dst as usize | src as usize).is_multiple_of(16) {
            // SAFETY: both pointers are 16-byte aligned and valid for `blocks` bytes.
            unsafe { crate::arch::copy_blocks(dst, src, blocks) };
            // SAFETY: the rest, as the caller guarantees.
            unsafe { core::ptr::copy_nonoverlapping(src.add(blocks), dst.add(blocks), len - blocks) };
            return;
        }
    }
    // SAFETY: guaranteed by the caller.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Zeroes `len` bytes at `dst`.
///
/// # Safety
/// As for `core::ptr::write_bytes`.
pub unsafe fn zero(dst: *mut u8, len: usize) {
    #[cfg(target_os = "none")]
    {
        let blocks = len & !63;
        if blocks > 0 && (dst as usize).is_multiple_of(16) {
            // SAFETY: 16-byte aligned and valid for `blocks` bytes.
            unsafe { crate::arch::zero_blocks(dst, blocks) };
            // SAFETY: the rest, as the caller guarantees.
            unsafe { dst.add(blocks).write_bytes(0, len - blocks) };
            return;
        }
    }
    // SAFETY: guaranteed by the caller.
    unsafe { dst.write_bytes(0, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_zeroes_exactly() {
        for len in [0, 1, 63, 64, 65, 4096, 4099] {
            let src: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let mut dst = vec![0xffu8; len + 8];
            // SAFETY: dst has len + 8 bytes, src len; they do not overlap.
            unsafe { copy(dst.as_mut_ptr().add(3), src.as_ptr(), len) };
            assert_eq!(&dst[3..3 + len], &src[..]);
            assert!(dst[..3].iter().chain(&dst[3 + len..]).all(|&b| b == 0xff), "nothing outside");
            // SAFETY: dst has len + 8 bytes.
            unsafe { zero(dst.as_mut_ptr().add(3), len) };
            assert!(dst[3..3 + len].iter().all(|&b| b == 0));
        }
    }
}
