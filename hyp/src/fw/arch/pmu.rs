//! The PMU's instruction counter, as hyp uses it for `pvmkit bench`: the highest
//! event counter is reserved for EL2 (MDCR_EL2.HPMN) and counts the instructions
//! retired at EL2 only. aarch64-cpu models MDCR_EL2 but no PMU register; those are
//! named here. Under QEMU the event counts only with `-icount` (otherwise QEMU does not
//! implement it, and `start` finds the counter standing still).

use core::arch::asm;

use aarch64_cpu::registers::{ReadWriteable, Readable, ID_AA64DFR0_EL1, MDCR_EL2};

/// The architectural event INST_RETIRED.
const INST_RETIRED: u64 = 0x08;
/// PMEVTYPER<n>_EL0: P (bit 31) and U (bit 30) exclude EL1 and EL0, NSH (bit 27)
/// includes EL2.
const EL2_ONLY: u64 = (1 << 31) | (1 << 30) | (1 << 27);
/// PMCR_EL0.N: the number of event counters (bits 15:11).
const fn pmcr_counters(pmcr: u64) -> u64 {
    (pmcr >> 11) & 0x1f
}

/// The event counter hyp reserved for itself.
#[derive(Clone, Copy)]
pub struct HypCounter {
    index: u64,
}

/// Reserves the last event counter for EL2 and starts it counting hyp's instructions.
/// `None` without a PMUv3 or without a counter that moves.
pub fn start() -> Option<HypCounter> {
    let version = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::PMUVer);
    if version == 0 || version == 0xf {
        return None;
    }
    let pmcr: u64;
    // SAFETY: reading the PMU's control register has no side effects.
    unsafe { asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack, preserves_flags)) };
    let n = pmcr_counters(pmcr);
    if n < 2 {
        return None;
    }
    let index = n - 1;
    // Counters below HPMN stay the guest's; the last one is EL2's, enabled by HPME.
    MDCR_EL2.modify(MDCR_EL2::HPMN.val(index) + MDCR_EL2::HPME::SET + MDCR_EL2::TPM::CLEAR);
    // SAFETY: PMU registers of the counter hyp just reserved for itself; no memory is
    // touched.
    unsafe {
        asm!(
            "msr pmselr_el0, {n}",
            "isb",
            "msr pmxevtyper_el0, {filter}",
            "msr pmxevcntr_el0, xzr",
            "msr pmcntenset_el0, {bit}",
            "isb",
            n = in(reg) index,
            filter = in(reg) INST_RETIRED | EL2_ONLY,
            bit = in(reg) 1u64 << index,
            options(nomem, nostack),
        )
    };
    let counter = HypCounter { index };
    let (a, b) = (counter.instructions(), counter.instructions());
    (a != b).then_some(counter)
}

impl HypCounter {
    /// hyp's instruction count so far (32 bits, wrapping). PMSELR_EL0 is the guest's
    /// register too, so it is put back as it was.
    pub fn instructions(&self) -> u32 {
        let value: u64;
        // SAFETY: selects hyp's own counter, reads it and restores the guest's
        // selection; no memory is touched.
        unsafe {
            asm!(
                "mrs {saved}, pmselr_el0",
                "msr pmselr_el0, {n}",
                "isb",
                "mrs {value}, pmxevcntr_el0",
                "msr pmselr_el0, {saved}",
                saved = out(reg) _,
                n = in(reg) self.index,
                value = out(reg) value,
                options(nomem, nostack, preserves_flags),
            )
        };
        value as u32
    }
}
