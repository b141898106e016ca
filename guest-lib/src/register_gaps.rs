//! The system registers and fields guest-lib needs that aarch64-cpu does not model,
//! each with its architectural name: the GICv3 CPU interface, DCZID_EL0 and SCTLR_EL1's
//! RES1 bits. Nothing else in guest-lib writes raw register bits.

#[cfg(target_arch = "aarch64")]
use core::arch::asm;

/// SCTLR_EL1's RES1 bits (11, 20, 22, 23, 28, 29): the value with everything off.
#[cfg_attr(not(feature = "runtime"), allow(dead_code))] // the runtime's MMU set-up uses it
pub const SCTLR_EL1_RES1: u64 = 0x30d0_0800;

/// ICC_SRE_EL1.SRE: the GIC CPU interface through system registers.
const ICC_SRE_EL1_SRE: u64 = 1;
/// ICC_PMR_EL1: every priority unmasked.
const ICC_PMR_EL1_ALL: u64 = 0xff;
/// ICC_IGRPEN1_EL1.Enable: group 1 interrupts on.
const ICC_IGRPEN1_EL1_ENABLE: u64 = 1;

/// DCZID_EL0: the `DC ZVA` block size (bits 3:0, log2 words) and DZP (bit 4).
#[cfg(target_arch = "aarch64")]
pub fn dczid_el0() -> u64 {
    let value: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Turns the GICv3 CPU interface on for this CPU: system-register access, every
/// priority unmasked, group 1 enabled.
#[cfg(target_arch = "aarch64")]
pub fn enable_gic_cpu_interface() {
    // SAFETY: the GIC CPU interface's own registers (ICC_SRE_EL1, ICC_PMR_EL1,
    // ICC_IGRPEN1_EL1, by encoding); no memory is touched.
    unsafe {
        asm!(
            "mrs {sre}, S3_0_C12_C12_5",
            "orr {sre}, {sre}, {sre_bit}",
            "msr S3_0_C12_C12_5, {sre}",
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",
            "msr S3_0_C12_C12_7, {grp1}",
            "isb",
            sre = out(reg) _,
            sre_bit = in(reg) ICC_SRE_EL1_SRE,
            pmr = in(reg) ICC_PMR_EL1_ALL,
            grp1 = in(reg) ICC_IGRPEN1_EL1_ENABLE,
            options(nomem, nostack),
        )
    };
}

/// PMEVTYPER0_EL0 for counting INST_RETIRED (event 0x08) at EL1 and EL0 only: P, U and
/// NSH (bits 31, 30, 27) clear, so EL2's instructions are not counted.
pub const PMEVTYPER_INST_RETIRED_EL1_EL0: u64 = 0x08;
/// PMCR_EL0.E: the event counters below HPMN count.
const PMCR_EL0_E: u64 = 1;

/// PMCR_EL0.N: the event counters this EL may use (bits 15:11).
#[cfg(target_arch = "aarch64")]
pub fn pmu_event_counters() -> u64 {
    let pmcr: u64;
    // SAFETY: reading the PMU's control register has no side effects.
    unsafe { asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack, preserves_flags)) };
    (pmcr >> 11) & 0x1f
}

/// Starts event counter 0 counting `event_type` (a PMEVTYPER value) from zero.
#[cfg(target_arch = "aarch64")]
pub fn pmu_start_counter0(event_type: u64) {
    // SAFETY: PMU registers only (event counter 0, its type, its enable and PMCR_EL0.E);
    // no memory is touched.
    unsafe {
        asm!(
            "msr pmevtyper0_el0, {ty}",
            "msr pmevcntr0_el0, xzr",
            "msr pmcntenset_el0, {bit}",
            "mrs {pmcr}, pmcr_el0",
            "orr {pmcr}, {pmcr}, {e}",
            "msr pmcr_el0, {pmcr}",
            "isb",
            ty = in(reg) event_type,
            bit = in(reg) 1u64,
            pmcr = out(reg) _,
            e = in(reg) PMCR_EL0_E,
            options(nomem, nostack),
        )
    };
}

/// Event counter 0 (the low 32 bits).
#[cfg(target_arch = "aarch64")]
pub fn pmu_counter0() -> u32 {
    let value: u64;
    // SAFETY: reading an event counter has no side effects.
    unsafe { asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value as u32
}
