//! The values hyp programs into the EL2 and EL1 control registers, field by field with
//! aarch64-cpu's register types. What aarch64-cpu does not model is in
//! [`super::register_gaps`]. The writes that change how the whole guest runs (HCR_EL2,
//! VTTBR_EL2, SCTLR_EL1) are `unsafe`: each caller says why the moment is right.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, Readable, MDCR_EL2};
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
///
/// With `traps.id`, the guest's reads of the ID registers trap too (TID3); with
/// `traps.debug` and `traps.pmu`, its debug and PMU register accesses (MDCR_EL2.TDA,
/// TDRA, TDOSA; TPM, TPMCR, as pKVM's `pvm_init_traps_mdcr` sets them), for hyp to
/// answer as the release does. EL2's own PMU counter (`super::pmu`) is not affected.
pub unsafe fn configure_traps(traps: Traps) {
    let id = if traps.id { HCR_EL2::TID3::SET } else { HCR_EL2::TID3::CLEAR };
    let debug = if traps.debug {
        MDCR_EL2::TDA::SET + MDCR_EL2::TDRA::SET + MDCR_EL2::TDOSA::SET
    } else {
        MDCR_EL2::TDA::CLEAR + MDCR_EL2::TDRA::CLEAR + MDCR_EL2::TDOSA::CLEAR
    };
    let pmu = if traps.pmu {
        MDCR_EL2::TPM::SET + MDCR_EL2::TPMCR::SET
    } else {
        MDCR_EL2::TPM::CLEAR + MDCR_EL2::TPMCR::CLEAR
    };
    MDCR_EL2.modify(debug + pmu);
    HCR_EL2.write(
        id + HCR_EL2::VM::Enable
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

/// Which guest accesses trap beside those hyp always takes.
#[derive(Clone, Copy, Debug)]
pub struct Traps {
    /// ID register reads.
    pub id: bool,
    /// Debug register accesses.
    pub debug: bool,
    /// PMU register accesses.
    pub pmu: bool,
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

/// Reads the ID register S3_0_C0_C`crm`_`op2` (the ID space a trapped guest read comes
/// from; HCR_EL2.TID3): CRm 1 to 7, op2 0 to 7, every one readable at EL2 (the
/// unallocated ones read as zero).
pub fn read_id_register(crm: u8, op2: u8) -> u64 {
    macro_rules! id_read {
        ($name:literal) => {{
            let value: u64;
            // SAFETY: reading an ID register has no side effects.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
            value
        }};
    }
    match (crm, op2) {
        (1, 0) => id_read!("s3_0_c0_c1_0"),
        (1, 1) => id_read!("s3_0_c0_c1_1"),
        (1, 2) => id_read!("s3_0_c0_c1_2"),
        (1, 3) => id_read!("s3_0_c0_c1_3"),
        (1, 4) => id_read!("s3_0_c0_c1_4"),
        (1, 5) => id_read!("s3_0_c0_c1_5"),
        (1, 6) => id_read!("s3_0_c0_c1_6"),
        (1, 7) => id_read!("s3_0_c0_c1_7"),
        (2, 0) => id_read!("s3_0_c0_c2_0"),
        (2, 1) => id_read!("s3_0_c0_c2_1"),
        (2, 2) => id_read!("s3_0_c0_c2_2"),
        (2, 3) => id_read!("s3_0_c0_c2_3"),
        (2, 4) => id_read!("s3_0_c0_c2_4"),
        (2, 5) => id_read!("s3_0_c0_c2_5"),
        (2, 6) => id_read!("s3_0_c0_c2_6"),
        (2, 7) => id_read!("s3_0_c0_c2_7"),
        (3, 0) => id_read!("s3_0_c0_c3_0"),
        (3, 1) => id_read!("s3_0_c0_c3_1"),
        (3, 2) => id_read!("s3_0_c0_c3_2"),
        (3, 3) => id_read!("s3_0_c0_c3_3"),
        (3, 4) => id_read!("s3_0_c0_c3_4"),
        (3, 5) => id_read!("s3_0_c0_c3_5"),
        (3, 6) => id_read!("s3_0_c0_c3_6"),
        (3, 7) => id_read!("s3_0_c0_c3_7"),
        (4, 0) => id_read!("s3_0_c0_c4_0"),
        (4, 1) => id_read!("s3_0_c0_c4_1"),
        (4, 2) => id_read!("s3_0_c0_c4_2"),
        (4, 3) => id_read!("s3_0_c0_c4_3"),
        (4, 4) => id_read!("s3_0_c0_c4_4"),
        (4, 5) => id_read!("s3_0_c0_c4_5"),
        (4, 6) => id_read!("s3_0_c0_c4_6"),
        (4, 7) => id_read!("s3_0_c0_c4_7"),
        (5, 0) => id_read!("s3_0_c0_c5_0"),
        (5, 1) => id_read!("s3_0_c0_c5_1"),
        (5, 2) => id_read!("s3_0_c0_c5_2"),
        (5, 3) => id_read!("s3_0_c0_c5_3"),
        (5, 4) => id_read!("s3_0_c0_c5_4"),
        (5, 5) => id_read!("s3_0_c0_c5_5"),
        (5, 6) => id_read!("s3_0_c0_c5_6"),
        (5, 7) => id_read!("s3_0_c0_c5_7"),
        (6, 0) => id_read!("s3_0_c0_c6_0"),
        (6, 1) => id_read!("s3_0_c0_c6_1"),
        (6, 2) => id_read!("s3_0_c0_c6_2"),
        (6, 3) => id_read!("s3_0_c0_c6_3"),
        (6, 4) => id_read!("s3_0_c0_c6_4"),
        (6, 5) => id_read!("s3_0_c0_c6_5"),
        (6, 6) => id_read!("s3_0_c0_c6_6"),
        (6, 7) => id_read!("s3_0_c0_c6_7"),
        (7, 0) => id_read!("s3_0_c0_c7_0"),
        (7, 1) => id_read!("s3_0_c0_c7_1"),
        (7, 2) => id_read!("s3_0_c0_c7_2"),
        (7, 3) => id_read!("s3_0_c0_c7_3"),
        (7, 4) => id_read!("s3_0_c0_c7_4"),
        (7, 5) => id_read!("s3_0_c0_c7_5"),
        (7, 6) => id_read!("s3_0_c0_c7_6"),
        (7, 7) => id_read!("s3_0_c0_c7_7"),
        _ => 0,
    }
}
