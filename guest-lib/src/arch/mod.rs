//! guest-lib's assembly and system registers: probes, the timer and copies (always);
//! boot, vectors and the MMU (the runtime's).

pub mod gic;
pub mod interrupts;
#[cfg(feature = "runtime")]
pub mod mmu;
pub mod probe;
pub mod secondary;
pub mod timer;

use core::arch::global_asm;

#[cfg(all(target_os = "none", feature = "runtime"))]
global_asm!(include_str!("boot.S"));
#[cfg(all(target_os = "none", feature = "runtime"))]
global_asm!(include_str!("vectors.S"));
#[cfg(target_os = "none")]
global_asm!(include_str!("probe.S"));
#[cfg(target_os = "none")]
global_asm!(include_str!("secondary.S"));
#[cfg(target_os = "none")]
global_asm!(include_str!("register_probe.S"));

/// x0..x30 as the vectors save them.
#[cfg(feature = "runtime")]
#[repr(C)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    _pad: u64,
}

#[cfg(target_os = "none")]
/// Copies `len` bytes (a multiple of 64) between 16-byte aligned buffers with the SIMD
/// registers: 128 bytes per iteration, then a last 64 if `len` is an odd multiple.
///
/// # Safety
/// Both pointers 16-byte aligned, valid for `len` bytes, not overlapping; `len` a
/// non-zero multiple of 64.
pub unsafe fn copy_blocks(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: guaranteed by the caller; the loops touch exactly [src, src+len) and
    // [dst, dst+len) with aligned 32-byte pair accesses.
    unsafe {
        core::arch::asm!(
            "tbz {len}, #6, 2f",
            "ldp q0, q1, [{src}], #32",
            "ldp q2, q3, [{src}], #32",
            "stp q0, q1, [{dst}], #32",
            "stp q2, q3, [{dst}], #32",
            "subs {len}, {len}, #64",
            "b.eq 3f",
            "2:",
            "ldp q0, q1, [{src}], #32",
            "ldp q2, q3, [{src}], #32",
            "ldp q4, q5, [{src}], #32",
            "ldp q6, q7, [{src}], #32",
            "stp q0, q1, [{dst}], #32",
            "stp q2, q3, [{dst}], #32",
            "stp q4, q5, [{dst}], #32",
            "stp q6, q7, [{dst}], #32",
            "subs {len}, {len}, #128",
            "b.ne 2b",
            "3:",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            len = inout(reg) len => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            options(nostack),
        );
    }
}

#[cfg(target_os = "none")]
/// The `DC ZVA` block size in bytes, or 0 when `DC ZVA` is prohibited.
fn zva_block() -> usize {
    let dczid = crate::register_gaps::dczid_el0();
    if dczid & (1 << 4) != 0 {
        0
    } else {
        4 << (dczid & 0xf)
    }
}

#[cfg(target_os = "none")]
/// Zeroes `len` bytes (a multiple of 64) at a 16-byte aligned buffer: whole cache blocks
/// with `DC ZVA` where the buffer allows (the guest's RAM is Normal memory once
/// guest-lib has turned the MMU on), four blocks per iteration while four remain;
/// 64 bytes per iteration with SIMD stores otherwise.
///
/// # Safety
/// `dst` 16-byte aligned and valid for `len` bytes; `len` a non-zero multiple of 64.
pub unsafe fn zero_blocks(dst: *mut u8, len: usize) {
    let block = zva_block();
    if (64..=2048).contains(&block) && (dst as usize).is_multiple_of(block) && len.is_multiple_of(block) {
        let (quads, rest) = (len / (4 * block) * (4 * block), len % (4 * block));
        // SAFETY: guaranteed by the caller; whole blocks inside [dst, dst + len): first
        // `quads` bytes four blocks at a time, then `rest` one block at a time.
        unsafe {
            core::arch::asm!(
                "cbz {quads}, 3f",
                "2:",
                "dc zva, {dst}",
                "add {dst}, {dst}, {block}",
                "dc zva, {dst}",
                "add {dst}, {dst}, {block}",
                "dc zva, {dst}",
                "add {dst}, {dst}, {block}",
                "dc zva, {dst}",
                "add {dst}, {dst}, {block}",
                "subs {quads}, {quads}, {block}, lsl #2",
                "b.ne 2b",
                "3:",
                "cbz {rest}, 5f",
                "4:",
                "dc zva, {dst}",
                "add {dst}, {dst}, {block}",
                "subs {rest}, {rest}, {block}",
                "b.ne 4b",
                "5:",
                dst = inout(reg) dst => _,
                quads = inout(reg) quads => _,
                rest = inout(reg) rest => _,
                block = in(reg) block,
                options(nostack),
            );
        }
        return;
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        core::arch::asm!(
            "movi v0.2d, #0",
            "2:",
            "stp q0, q0, [{dst}], #32",
            "stp q0, q0, [{dst}], #32",
            "subs {len}, {len}, #64",
            "b.ne 2b",
            dst = inout(reg) dst => _,
            len = inout(reg) len => _,
            out("v0") _,
            options(nostack),
        );
    }
}
