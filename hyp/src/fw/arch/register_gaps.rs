//! The system registers and fields hyp needs that aarch64-cpu does not model, each
//! with its architectural name. The GICv3's registers (ICC_*, ICH_*) are in `gic.rs`,
//! the EL2 physical timer's, which the tick uses, in `tick.rs`. Nothing else in hyp writes raw
//! register bits.

use core::arch::asm;

/// CPTR_EL2 (nVHE) with its RES1 bits (0-7, 9, 12, 13) and TZ (bit 8: trap SVE); TFP
/// (bit 10) clear, so the guest uses FP/SIMD freely. aarch64-cpu models only TAM.
const CPTR_EL2_RES1: u64 = 0x32ff;
const CPTR_EL2_TZ: u64 = 1 << 8;

/// SCTLR_EL1's RES1 bits (11, 20, 22, 23, 28, 29): the value with everything off.
const SCTLR_EL1_RES1: u64 = 0x30d0_0800;

/// Leaves FP/SIMD untrapped and traps SVE.
pub fn untrap_fp_trap_sve() {
    // SAFETY: a control register of EL2's own traps; no memory is touched.
    unsafe { asm!("msr cptr_el2, {}", in(reg) CPTR_EL2_RES1 | CPTR_EL2_TZ, options(nomem, nostack)) };
}

/// VPIDR_EL2: the MIDR the guest reads (aarch64-cpu has no VPIDR_EL2).
pub fn set_vpidr(midr: u64) {
    // SAFETY: the value a guest's MIDR_EL1 read returns; no memory is touched.
    unsafe { asm!("msr vpidr_el2, {}", in(reg) midr, options(nomem, nostack)) };
}

/// SCTLR_EL1 with only its RES1 bits: the guest's MMU, caches and alignment checks off.
/// (aarch64-cpu's SCTLR_EL1 does not model the RES1 bits.)
pub fn reset_sctlr_el1() {
    // SAFETY: the guest's EL1 translation control, written before it runs.
    unsafe { asm!("msr sctlr_el1, {}", in(reg) SCTLR_EL1_RES1, options(nomem, nostack)) };
}
