//! What a VM meets when it touches the PMU or the debug registers: each access is
//! UNDEFINED (the guest takes an exception with EC 0), reads as zero and ignores
//! writes, or behaves as the CPU's own register. pKVM traps both groups for a protected
//! VM whose ID registers say it has neither; test-guest's conformance scenario probes
//! [`PROBES`] and prints `probe reg-NAME = undefined esr=0xN` or `= value 0xN`, recorded from
//! the real release ([`super::recording`]).
//!
//! ```
//! use pvmkit_abi::profile::debug_pmu::{Access, Register, LINUX_7_3_PROTECTED_ACCESS};
//!
//! // pKVM 7.3.4 lists the first breakpoint's registers as read-as-zero, not the second's.
//! assert_eq!(LINUX_7_3_PROTECTED_ACCESS.access(Register::Dbgbvr0.encoding()), Some(Access::ReadsZero));
//! assert_eq!(LINUX_7_3_PROTECTED_ACCESS.access(Register::Dbgbvr1.encoding()), Some(Access::Undefined));
//! assert_eq!(LINUX_7_3_PROTECTED_ACCESS.access((3, 0, 1, 0, 0)), None, "SCTLR_EL1 is neither");
//! ```

/// A system register's encoding: (op0, op1, CRn, CRm, op2).
pub type Encoding = (u8, u8, u8, u8, u8);

/// What one access does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// UNDEFINED: the guest takes an exception with EC 0 (unknown reason) at the
    /// instruction.
    Undefined,
    /// Reads as zero; writes are ignored.
    ReadsZero,
    /// As the CPU's register (not trapped, or emulated as the architecture says):
    /// what is written reads back.
    AsHardware,
}

/// The registers the conformance scenario probes: the PMU's control and cycle counter,
/// and debug registers pKVM lists and does not list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Register {
    /// PMCR_EL0.
    Pmcr,
    /// PMCCNTR_EL0.
    Pmccntr,
    /// MDSCR_EL1.
    Mdscr,
    /// DBGBVR0_EL1.
    Dbgbvr0,
    /// DBGBVR1_EL1.
    Dbgbvr1,
    /// OSLSR_EL1.
    Oslsr,
    /// DBGCLAIMCLR_EL1.
    Dbgclaimclr,
}

impl Register {
    /// Its encoding (Arm ARM, the register's "Accessing" section).
    pub const fn encoding(self) -> Encoding {
        match self {
            Self::Pmcr => (3, 3, 9, 12, 0),
            Self::Pmccntr => (3, 3, 9, 13, 0),
            Self::Mdscr => (2, 0, 0, 2, 2),
            Self::Dbgbvr0 => (2, 0, 0, 0, 4),
            Self::Dbgbvr1 => (2, 0, 0, 1, 4),
            Self::Oslsr => (2, 0, 1, 1, 4),
            Self::Dbgclaimclr => (2, 0, 7, 9, 6),
        }
    }
}

/// One probe: read `register`, after writing `write` to it when there is one (then
/// the read shows whether the write stuck). Writes put the register back to 0 after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterProbe {
    /// The probe's name.
    pub probe: &'static str,
    /// The register.
    pub register: Register,
    /// A value written first.
    pub write: Option<u64>,
}

const fn p(probe: &'static str, register: Register, write: Option<u64>) -> RegisterProbe {
    RegisterProbe { probe, register, write }
}

/// The probes. The written values are harmless: MDSCR_EL1.MDE (bit 15) with no
/// breakpoint enabled, and a breakpoint address whose control register leaves it off.
pub const PROBES: &[RegisterProbe] = &[
    p("reg-pmcr-el0", Register::Pmcr, None),
    p("reg-pmccntr-el0", Register::Pmccntr, None),
    p("reg-mdscr-el1", Register::Mdscr, Some(1 << 15)),
    p("reg-dbgbvr0-el1", Register::Dbgbvr0, Some(0x1000)),
    p("reg-dbgbvr1-el1", Register::Dbgbvr1, None),
    p("reg-oslsr-el1", Register::Oslsr, None),
    p("reg-dbgclaimclr-el1", Register::Dbgclaimclr, None),
];

/// The probe named `name`.
pub fn probe(name: &str) -> Option<&'static RegisterProbe> {
    PROBES.iter().find(|p| p.probe == name)
}

/// Whether `encoding` is a debug register (op0 2: breakpoints, watchpoints, MDSCR, the
/// OS lock, the claim tags, the debug communication channel).
pub const fn is_debug(encoding: Encoding) -> bool {
    encoding.0 == 2
}

/// Whether `encoding` is a PMU register: PMCR_EL0 to PMCCFILTR_EL0 (op0 3, op1 3,
/// CRn 9, CRm 12 to 14; CRn 14, CRm 8 to 15), PMINTENSET/CLR_EL1 and PMMIR_EL1
/// (op0 3, op1 0, CRn 9, CRm 14, op2 1, 2, 6).
pub const fn is_pmu(encoding: Encoding) -> bool {
    let (op0, op1, crn, crm, op2) = encoding;
    match (op0, op1, crn) {
        (3, 3, 9) => crm >= 12 && crm <= 14,
        (3, 3, 14) => crm >= 8,
        (3, 0, 9) => crm == 14 && (op2 == 1 || op2 == 2 || op2 == 6),
        _ => false,
    }
}

/// A release's answer to PMU and debug register accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessRules {
    /// Debug registers answered otherwise than `debug`, by encoding.
    pub listed: &'static [(Encoding, Access)],
    /// Any other debug register.
    pub debug: Access,
    /// Any PMU register.
    pub pmu: Access,
    /// Where the rules come from.
    pub source: &'static str,
}

impl AccessRules {
    /// What an access to `encoding` does; `None` for a register that is neither a PMU
    /// nor a debug register.
    pub fn access(&self, encoding: Encoding) -> Option<Access> {
        if is_pmu(encoding) {
            Some(self.pmu)
        } else if is_debug(encoding) {
            Some(self.listed.iter().find(|(e, _)| *e == encoding).map_or(self.debug, |&(_, a)| a))
        } else {
            None
        }
    }

    /// Whether debug register accesses must trap for these rules to hold.
    pub fn traps_debug(&self) -> bool {
        self.debug != Access::AsHardware || self.listed.iter().any(|&(_, a)| a != Access::AsHardware)
    }

    /// Whether PMU accesses must trap.
    pub fn traps_pmu(&self) -> bool {
        self.pmu != Access::AsHardware
    }

    /// What `probe` prints under these rules; `None` where the value is the CPU's
    /// own, which the rules do not fix.
    pub fn expected(&self, probe: &RegisterProbe) -> Option<Shown> {
        match self.access(probe.register.encoding())? {
            Access::Undefined => Some(Shown::Undefined(UNDEFINED_ESR)),
            Access::ReadsZero => Some(Shown::Value(0)),
            Access::AsHardware => probe.write.map(Shown::Value),
        }
    }
}

/// The syndrome of the UNDEFINED exception a release delivers for a refused access:
/// EC 0 ("unknown reason") with IL set (pKVM's and KVM's `inject_undef64`).
pub const UNDEFINED_ESR: u64 = 0x0200_0000;

/// How a probe's outcome is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The access took an UNDEFINED exception with this ESR_EL1.
    Undefined(u64),
    /// The read gave this.
    Value(u64),
}

impl core::fmt::Display for Shown {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Undefined(esr) => write!(f, "undefined esr={esr:#x}"),
            Self::Value(v) => write!(f, "value {v:#x}"),
        }
    }
}

/// The debug registers pKVM 7.3.4 answers as read-as-zero for a protected VM: the first
/// breakpoint and watchpoint, MDSCR_EL1 and the OS lock registers
/// (`arch/arm64/kvm/hyp/nvhe/sys_regs.c`, `pvm_sys_reg_descs`: `RAZ_WI(...)` under
/// "Debug and Trace Registers are restricted").
const PKVM_7_3_DEBUG_RAZ_WI: &[(Encoding, Access)] = &[
    ((2, 0, 0, 0, 4), Access::ReadsZero), // DBGBVR0_EL1
    ((2, 0, 0, 0, 5), Access::ReadsZero), // DBGBCR0_EL1
    ((2, 0, 0, 0, 6), Access::ReadsZero), // DBGWVR0_EL1
    ((2, 0, 0, 0, 7), Access::ReadsZero), // DBGWCR0_EL1
    ((2, 0, 0, 2, 2), Access::ReadsZero), // MDSCR_EL1
    ((2, 0, 1, 0, 4), Access::ReadsZero), // OSLAR_EL1
    ((2, 0, 1, 1, 4), Access::ReadsZero), // OSLSR_EL1
    ((2, 0, 1, 3, 4), Access::ReadsZero), // OSDLR_EL1
];

/// A protected VM under Linux 7.3.4's pKVM: the VM's ID registers show no PMU and no
/// debug architecture, so `pvm_init_traps_mdcr` (`nvhe/pkvm.c`) sets MDCR_EL2.TPM,
/// TPMCR, TDA, TDRA and TDOSA; `kvm_handle_pvm_sysreg` (`nvhe/sys_regs.c`) injects an
/// UNDEFINED exception for every register `pvm_sys_reg_descs` does not list.
pub const LINUX_7_3_PROTECTED_ACCESS: AccessRules = AccessRules {
    listed: PKVM_7_3_DEBUG_RAZ_WI,
    debug: Access::Undefined,
    pmu: Access::Undefined,
    source: "linux-7.3.4 arch/arm64/kvm/hyp/nvhe/sys_regs.c pvm_sys_reg_descs, kvm_handle_pvm_sysreg; \
             nvhe/pkvm.c pvm_init_traps_mdcr",
};

/// An ordinary VM under Linux 7.3.4's KVM, as pvmkit's VMM makes it (no
/// KVM_ARM_VCPU_PMU_V3): the PMU registers are hidden from a vCPU without a PMU
/// (`arch/arm64/kvm/sys_regs.c`, `pmu_visibility`: `REG_HIDDEN`, so the access is
/// UNDEFINED); the debug registers are the vCPU's own (`trap_bvr`, `trap_debug_regs`:
/// what is written reads back). What the CPU itself implements is not a claim: under
/// QEMU's `max` CPU the recording shows OSLSR_EL1 = 0x8 and DBGCLAIMCLR_EL1 UNDEFINED,
/// although the source has `trap_raz_wi` for the claim tags (KVM traps debug
/// registers lazily, so the access may never reach it).
pub const LINUX_7_3_ORDINARY_ACCESS: AccessRules = AccessRules {
    listed: &[],
    debug: Access::AsHardware,
    pmu: Access::Undefined,
    source: "linux-7.3.4 arch/arm64/kvm/sys_regs.c pmu_visibility, trap_bvr, trap_debug_regs",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmu_and_debug_registers_are_told_apart_from_the_rest() {
        // PMCR_EL0, PMCCNTR_EL0, PMUSERENR_EL0 (CRm 14), PMEVCNTR0_EL0 (CRn 14,
        // CRm 8), PMCCFILTR_EL0 (CRm 15), PMINTENSET_EL1.
        for pmu in [(3, 3, 9, 12, 0), (3, 3, 9, 13, 0), (3, 3, 9, 14, 0), (3, 3, 14, 8, 0), (3, 3, 14, 15, 7)] {
            assert!(is_pmu(pmu) && !is_debug(pmu), "{pmu:?}");
        }
        assert!(is_pmu((3, 0, 9, 14, 1)) && is_pmu((3, 0, 9, 14, 2)) && is_pmu((3, 0, 9, 14, 6)));
        // CNTVCT_EL0 (CRn 14, CRm 0), PMBLIMITR_EL1 (SPE, CRn 9, CRm 10), a CRm 14
        // op2 0 at op1 0, TPIDR_EL0, MAIR_EL1: none of them.
        for other in [(3, 3, 14, 0, 2), (3, 0, 9, 10, 0), (3, 0, 9, 14, 0), (3, 3, 13, 0, 2), (3, 0, 10, 2, 0)] {
            assert!(!is_pmu(other) && !is_debug(other), "{other:?}");
        }
        assert!(is_debug(Register::Mdscr.encoding()) && !is_pmu(Register::Mdscr.encoding()));
    }

    #[test]
    fn pkvm_lists_only_the_first_breakpoint_and_watchpoint() {
        let rules = LINUX_7_3_PROTECTED_ACCESS;
        for n in 1..16u8 {
            for op2 in 4..=7 {
                assert_eq!(rules.access((2, 0, 0, n, op2)), Some(Access::Undefined), "CRm {n} op2 {op2}");
            }
        }
        for op2 in 4..=7 {
            assert_eq!(rules.access((2, 0, 0, 0, op2)), Some(Access::ReadsZero));
        }
        assert_eq!(rules.access(Register::Dbgclaimclr.encoding()), Some(Access::Undefined));
        assert_eq!(rules.access(Register::Pmcr.encoding()), Some(Access::Undefined));
        assert!(rules.traps_debug() && rules.traps_pmu());
        let ordinary = LINUX_7_3_ORDINARY_ACCESS;
        assert!(!ordinary.traps_debug() && ordinary.traps_pmu());
        assert!(AccessRules { listed: &[((2, 0, 0, 2, 2), Access::ReadsZero)], ..ordinary }.traps_debug());
    }

    #[test]
    fn expectations_follow_the_access() {
        let mdscr = probe("reg-mdscr-el1").unwrap();
        let claim = probe("reg-dbgclaimclr-el1").unwrap();
        assert_eq!(LINUX_7_3_PROTECTED_ACCESS.expected(mdscr), Some(Shown::Value(0)));
        assert_eq!(LINUX_7_3_ORDINARY_ACCESS.expected(mdscr), Some(Shown::Value(1 << 15)), "the write sticks");
        assert_eq!(LINUX_7_3_ORDINARY_ACCESS.expected(claim), None, "the CPU's own");
        assert_eq!(LINUX_7_3_PROTECTED_ACCESS.expected(claim), Some(Shown::Undefined(0x0200_0000)));
        assert_eq!(Shown::Undefined(0x0200_0000).to_string(), "undefined esr=0x2000000");
        assert_eq!(Shown::Value(0x8000).to_string(), "value 0x8000");
    }
}
