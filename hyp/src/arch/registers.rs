//! The values hyp programs into the EL2 and EL1 control registers, field by field with
//! aarch64-cpu's register types. What aarch64-cpu does not model is in
//! [`super::register_gaps`]. The writes that change how the whole guest runs (HCR_EL2,
//! VTTBR_EL2, SCTLR_EL1) are `unsafe`: each caller says why the moment is right.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::Readable;
use aarch64_cpu::registers::{
    Writeable, CNTHCTL_EL2, CNTVOFF_EL2, ELR_EL2, HCR_EL2, MIDR_EL1, MPIDR_EL1, SPSR_EL2, VMPIDR_EL2, VTCR_EL2,
    VTTBR_EL2,
};

use super::register_gaps;

/// Traps and routing for the guest: stage 2 on, every physical interrupt to EL2,
/// WFI/WFE and SMC trapped, EL1 in AArch64, set/way invalidation as clean+invalidate.
///
/// # Safety
/// Stage 2 (VTTBR_EL2, VTCR_EL2) and the vectors must be in place: from here on every
/// guest access is translated through them and every trap lands in hyp.
pub unsafe fn configure_traps() {
    HCR_EL2.write(
        HCR_EL2::VM::Enable
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::EnableVirtualFIQ
            + HCR_EL2::IMO::EnableVirtualIRQ
            + HCR_EL2::AMO::SET
            + HCR_EL2::TWI::SET
            + HCR_EL2::TWE::SET
            + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
            + HCR_EL2::RW::EL1IsAarch64,
    );
    barrier::isb(barrier::SY);
}

/// Installs the guest's stage-2 tables: `vtcr` (from `hyp::platform::stage2`) and the root table
/// at `root_pa` for VMID `vmid`.
///
/// # Safety
/// `root_pa` must be a complete stage-2 table for `vtcr` that stays put for the run.
pub unsafe fn install_stage2(vtcr: u64, root_pa: u64, vmid: u64) {
    VTCR_EL2.set(vtcr);
    VTTBR_EL2.write(VTTBR_EL2::VMID.val(vmid) + VTTBR_EL2::BADDR.val(root_pa >> 1));
    barrier::isb(barrier::SY);
}

/// The guest's EL1 state at entry: MMU and caches off (SCTLR_EL1's RES1 bits only),
/// its own counter and timers, the host CPU's identity, FP/SIMD untrapped.
///
/// # Safety
/// Nothing of the guest may run yet: SCTLR_EL1 decides how its first instruction sees
/// memory.
pub unsafe fn reset_guest_el1() {
    register_gaps::untrap_fp_trap_sve();
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCEN::SET + CNTHCTL_EL2::EL1PCTEN::SET);
    CNTVOFF_EL2.set(0);
    register_gaps::set_vpidr(MIDR_EL1.get());
    VMPIDR_EL2.set(MPIDR_EL1.get());
    register_gaps::reset_sctlr_el1();
    barrier::isb(barrier::SY);
}

/// Where the guest starts: `entry` in EL1h, with D, A, I and F masked.
pub fn set_guest_entry(entry: u64) {
    ELR_EL2.set(entry);
    SPSR_EL2.write(
        SPSR_EL2::M::EL1h + SPSR_EL2::D::Masked + SPSR_EL2::A::Masked + SPSR_EL2::I::Masked + SPSR_EL2::F::Masked,
    );
}
