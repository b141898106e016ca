//! The stage-1 translation settings guest-lib's runtime turns the MMU on with, as
//! aarch64-cpu's typed register fields (host-tested against their architectural values).

use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1};

use crate::register_gaps::SCTLR_EL1_RES1;

/// MAIR_EL1: attribute 0 = Device-nGnRE, attribute 1 = Normal inner/outer write-back.
pub fn mair() -> u64 {
    (MAIR_EL1::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
        + MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
        + MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc)
        .value
}

/// TCR_EL1: T0SZ=25 (39-bit VA, walks start at level 1), inner/outer write-back walks,
/// inner shareable, 4 KiB granule, TTBR1 walks disabled, 40-bit IPS.
pub fn tcr() -> u64 {
    (TCR_EL1::T0SZ.val(25)
        + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL1::SH0::Inner
        + TCR_EL1::TG0::KiB_4
        + TCR_EL1::EPD1::DisableTTBR1Walks
        + TCR_EL1::IPS::Bits_40)
        .value
}

/// SCTLR_EL1: the MMU and both caches on, on top of the RES1 bits.
pub fn sctlr_on() -> u64 {
    SCTLR_EL1_RES1 | (SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable).value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_values_are_the_architectural_ones() {
        assert_eq!(mair(), 0x04 | (0xff << 8));
        assert_eq!(tcr(), 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (0b010 << 32));
        assert_eq!(sctlr_on(), 0x30d0_0800 | 1 | (1 << 2) | (1 << 12));
    }
}
