//! Trapped system-register accesses (EC 0x18): the GIC's SGI generation registers,
//! which trap while hyp routes interrupts (HCR_EL2.IMO); ID register reads (TID3) and
//! PMU and debug register accesses (MDCR_EL2), which trap where the release's profile
//! says they do ([`register_reply`]). Any other trapped access is a crash the exit line
//! names.

use pvmkit_abi::profile::debug_pmu::{Access, AccessRules};

/// A system register's encoding: (op0, op1, CRn, CRm, op2).
pub type Encoding = (u8, u8, u8, u8, u8);

/// A trapped MSR or MRS, from its ISS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysregAccess {
    /// The register.
    pub encoding: Encoding,
    /// The general-purpose register (31: xzr).
    pub rt: u8,
    /// An MRS (else an MSR).
    pub read: bool,
}

/// The registers that send an SGI, and which groups each may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiRegister {
    /// ICC_SGI1R_EL1, S3_0_C12_C11_5: an SGI of either group (a group 0 one too, with
    /// a single security state).
    Sgi1r,
    /// ICC_ASGI1R_EL1, S3_0_C12_C11_6: with a single security state there is no other
    /// group 1, so, as KVM's vGIC treats it, group 0 SGIs only.
    Asgi1r,
    /// ICC_SGI0R_EL1, S3_0_C12_C11_7: group 0 SGIs only.
    Sgi0r,
}

impl SgiRegister {
    /// Every one, with its encoding: all three are op1 0.
    pub const ALL: [(SgiRegister, Encoding); 3] =
        [(Self::Sgi1r, (3, 0, 12, 11, 5)), (Self::Asgi1r, (3, 0, 12, 11, 6)), (Self::Sgi0r, (3, 0, 12, 11, 7))];

    /// Whether a write may pend a group 1 SGI.
    pub const fn sends_group1(self) -> bool {
        matches!(self, Self::Sgi1r)
    }
}

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

    /// The ID register it reads, as (CRm, op2), if it is a read of the ID space (op0 3,
    /// op1 0, CRn 0, CRm 1 to 7), which traps with HCR_EL2.TID3.
    pub fn id_register_read(&self) -> Option<(u8, u8)> {
        let (op0, op1, crn, crm, op2) = self.encoding;
        (self.read && (op0, op1, crn) == (3, 0, 0) && (1..=7).contains(&crm)).then_some((crm, op2))
    }

    /// The SGI register it writes, if it is a write that sends an SGI.
    pub fn sgi_register(&self) -> Option<SgiRegister> {
        if self.read {
            return None;
        }
        SgiRegister::ALL.into_iter().find(|(_, encoding)| *encoding == self.encoding).map(|(r, _)| r)
    }
}

/// What hyp does for a trapped PMU or debug register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterReply {
    /// Deliver an UNDEFINED exception at the instruction.
    Undefined,
    /// Complete it: a read gives 0, a write is ignored.
    ReadsZero,
    /// The release lets the VM have the register, yet it trapped: hyp's trap
    /// configuration and the profile disagree.
    Inconsistent,
}

/// The reply to `access` under `rules` (the profile's [`AccessRules`]); `None` when it is
/// not a PMU or debug register access, or the profile makes no claim.
pub fn register_reply(access: &SysregAccess, rules: Option<&AccessRules>) -> Option<RegisterReply> {
    Some(match rules?.access(access.encoding)? {
        Access::Undefined => RegisterReply::Undefined,
        Access::ReadsZero => RegisterReply::ReadsZero,
        Access::AsHardware => RegisterReply::Inconsistent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ISS an EC 0x18 trap reports for an MSR/MRS instruction word, field by field
    /// as the Arm ARM lays both out (instruction: L 21, o0 19, op1 18:16, CRn 15:12,
    /// CRm 11:8, op2 7:5, Rt 4:0; ISS: op0 21:20, op2 19:17, op1 16:14, CRn 13:10,
    /// Rt 9:5, CRm 4:1, direction 0).
    fn iss_of(instruction: u32) -> u32 {
        let bits = |shift: u32, width: u32| (instruction >> shift) & ((1 << width) - 1);
        let op0 = 2 + bits(19, 1);
        (op0 << 20)
            | (bits(5, 3) << 17)
            | (bits(16, 3) << 14)
            | (bits(12, 4) << 10)
            | (bits(0, 5) << 5)
            | (bits(8, 4) << 1)
            | bits(21, 1)
    }

    // Instruction words as LLVM's assembler (rustc 1.95's, `global_asm!` for
    // aarch64-unknown-none) emits them, independent of the table above.
    const MSR_ICC_SGI1R_EL1_X3: u32 = 0xd518_cba3;
    const MSR_ICC_ASGI1R_EL1_X3: u32 = 0xd518_cbc3;
    const MSR_ICC_SGI0R_EL1_X3: u32 = 0xd518_cbe3;
    const MRS_X0_PMCR_EL0: u32 = 0xd53b_9c00;

    #[test]
    fn each_sgi_register_is_recognised_from_the_instruction_that_writes_it() {
        for (word, register) in [
            (MSR_ICC_SGI1R_EL1_X3, SgiRegister::Sgi1r),
            (MSR_ICC_ASGI1R_EL1_X3, SgiRegister::Asgi1r),
            (MSR_ICC_SGI0R_EL1_X3, SgiRegister::Sgi0r),
        ] {
            let access = SysregAccess::decode(iss_of(word));
            assert_eq!((access.rt, access.read), (3, false));
            assert_eq!(access.sgi_register(), Some(register), "{word:#x}");
        }
        assert!(SgiRegister::Sgi1r.sends_group1());
        assert!(!SgiRegister::Asgi1r.sends_group1() && !SgiRegister::Sgi0r.sends_group1());
    }

    // MRS x5, ID_AA64DFR0_EL1 and MRS x5, ID_AA64PFR0_EL1, as LLVM's assembler writes
    // them (`mrs x5, s3_0_c0_c5_0`, `mrs x5, s3_0_c0_c4_0`).
    const MRS_X5_ID_AA64DFR0_EL1: u32 = 0xd538_0505;
    const MRS_X5_ID_AA64PFR0_EL1: u32 = 0xd538_0405;
    // MRS x0, MAIR_EL1: CRm 2 as in the ID space, but CRn 10.
    const MRS_X0_MAIR_EL1: u32 = 0xd538_a200;

    #[test]
    fn id_register_reads_are_recognised_and_nothing_else() {
        let dfr0 = SysregAccess::decode(iss_of(MRS_X5_ID_AA64DFR0_EL1));
        assert_eq!((dfr0.id_register_read(), dfr0.rt), (Some((5, 0)), 5));
        assert_eq!(SysregAccess::decode(iss_of(MRS_X5_ID_AA64PFR0_EL1)).id_register_read(), Some((4, 0)));
        assert_eq!(SysregAccess::decode(iss_of(MRS_X0_PMCR_EL0)).id_register_read(), None);
        assert_eq!(SysregAccess::decode(iss_of(MRS_X0_MAIR_EL1)).id_register_read(), None, "not CRn 0");
        assert_eq!(SysregAccess::decode(iss_of(MSR_ICC_SGI1R_EL1_X3)).id_register_read(), None, "a write");
    }

    // As LLVM's assembler writes them: `mrs x2, s2_0_c0_c2_2` (MDSCR_EL1),
    // `msr s2_0_c0_c1_4, x7` (DBGBVR1_EL1), `mrs x0, s3_3_c9_c13_0` (PMCCNTR_EL0).
    const MRS_X2_MDSCR_EL1: u32 = 0xd530_0242;
    const MSR_DBGBVR1_EL1_X7: u32 = 0xd510_0187;
    const MRS_X0_PMCCNTR_EL0: u32 = 0xd53b_9d00;

    #[test]
    fn pmu_and_debug_accesses_get_the_releases_reply() {
        use pvmkit_abi::profile::debug_pmu::{LINUX_7_3_ORDINARY_ACCESS, LINUX_7_3_PROTECTED_ACCESS};
        let protected = Some(&LINUX_7_3_PROTECTED_ACCESS);
        let reply = |word: u32, rules| register_reply(&SysregAccess::decode(iss_of(word)), rules);
        let mdscr = SysregAccess::decode(iss_of(MRS_X2_MDSCR_EL1));
        assert_eq!((mdscr.encoding, mdscr.rt, mdscr.read), ((2, 0, 0, 2, 2), 2, true));
        assert_eq!(reply(MRS_X2_MDSCR_EL1, protected), Some(RegisterReply::ReadsZero));
        let bvr1 = SysregAccess::decode(iss_of(MSR_DBGBVR1_EL1_X7));
        assert_eq!((bvr1.encoding, bvr1.rt, bvr1.read), ((2, 0, 0, 1, 4), 7, false));
        assert_eq!(reply(MSR_DBGBVR1_EL1_X7, protected), Some(RegisterReply::Undefined));
        assert_eq!(reply(MRS_X0_PMCCNTR_EL0, protected), Some(RegisterReply::Undefined));
        assert_eq!(reply(MRS_X0_PMCR_EL0, Some(&LINUX_7_3_ORDINARY_ACCESS)), Some(RegisterReply::Undefined));
        // An ordinary VM has its debug registers: trapped anyway, hyp says so.
        assert_eq!(reply(MRS_X2_MDSCR_EL1, Some(&LINUX_7_3_ORDINARY_ACCESS)), Some(RegisterReply::Inconsistent));
        assert_eq!(reply(MRS_X2_MDSCR_EL1, None), None, "no claim (the Android profile)");
        assert_eq!(reply(MRS_X0_MAIR_EL1, protected), None, "neither PMU nor debug");
    }

    #[test]
    fn reads_and_other_registers_send_nothing() {
        let read = SysregAccess::decode(iss_of(MSR_ICC_SGI1R_EL1_X3) | 1);
        assert_eq!(read.sgi_register(), None, "a read sends nothing");
        let pmcr = SysregAccess::decode(iss_of(MRS_X0_PMCR_EL0));
        assert_eq!(pmcr.encoding, (3, 3, 9, 12, 0));
        assert!(pmcr.read && pmcr.sgi_register().is_none());
    }
}
