//! Trapped system-register accesses (EC 0x18). hyp takes only the GIC's SGI
//! generation registers, which trap while it routes interrupts (HCR_EL2.IMO); any
//! other trapped access is a crash the exit line names.

/// A trapped MSR or MRS, from its ISS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysregAccess {
    /// The register, as (op0, op1, CRn, CRm, op2).
    pub encoding: (u8, u8, u8, u8, u8),
    /// The general-purpose register (31: xzr).
    pub rt: u8,
    /// An MRS (else an MSR).
    pub read: bool,
}

/// ICC_SGI1R_EL1, ICC_ASGI1R_EL1 and ICC_SGI0R_EL1.
pub const SGI_REGISTERS: [(u8, u8, u8, u8, u8); 3] = [(3, 0, 12, 11, 5), (3, 1, 12, 11, 6), (3, 2, 12, 11, 7)];

impl SysregAccess {
    /// Decodes ESR_EL2.ISS of a trapped MSR/MRS.
    pub fn decode(iss: u32) -> Self {
        let field = |shift: u32, bits: u32| ((iss >> shift) & ((1 << bits) - 1)) as u8;
        Self {
            encoding: (field(20, 2), field(14, 3), field(10, 4), field(1, 4), field(17, 3)),
            rt: field(5, 5),
            read: iss & 1 == 1,
        }
    }

    /// Whether it is a write that sends an SGI.
    pub fn sends_sgi(&self) -> bool {
        !self.read && SGI_REGISTERS.contains(&self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_sgi_write_and_nothing_else_as_one() {
        // MSR ICC_SGI1R_EL1, x3: op0 3, op2 5, op1 0, CRn 12, Rt 3, CRm 11, write.
        let iss = (3 << 20) | (5 << 17) | (12 << 10) | (3 << 5) | (11 << 1);
        let access = SysregAccess::decode(iss);
        assert_eq!(access, SysregAccess { encoding: (3, 0, 12, 11, 5), rt: 3, read: false });
        assert!(access.sends_sgi());
        assert!(!SysregAccess::decode(iss | 1).sends_sgi(), "a read sends nothing");
        let sgi0r = (3 << 20) | (7 << 17) | (2 << 14) | (12 << 10) | (11 << 1);
        assert!(SysregAccess::decode(sgi0r).sends_sgi());
        // PMCR_EL0 (3, 3, 9, 12, 0) is not hyp's to serve.
        let pmcr = (3 << 20) | (3 << 14) | (9 << 10) | (12 << 1);
        assert!(!SysregAccess::decode(pmcr).sends_sgi());
    }
}
