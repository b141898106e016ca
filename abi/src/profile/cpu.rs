//! What a VM sees of its CPU: the ID-register fields pKVM sanitizes for a protected VM
//! (PMU, debug, SVE, SME, MTE, AMU, RAS, statistical profiling, trace), each probed by
//! test-guest's conformance scenario as `probe cpu-NAME = value 0xN` and recorded from
//! the real release ([`super::recording`]).
//!
//! ```
//! use abi::profile::cpu::{field, ID_FIELDS};
//!
//! let pmu = field("cpu-pmuver").unwrap();
//! assert_eq!(pmu.value(0x0000_0000_0000_0100), 1, "ID_AA64DFR0_EL1.PMUVer is bits 11:8");
//! assert!(ID_FIELDS.iter().all(|f| f.probe.starts_with("cpu-")));
//! ```

/// The ID registers the fields live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRegister {
    /// ID_AA64PFR0_EL1 (S3_0_C0_C4_0).
    Pfr0,
    /// ID_AA64PFR1_EL1 (S3_0_C0_C4_1).
    Pfr1,
    /// ID_AA64DFR0_EL1 (S3_0_C0_C5_0).
    Dfr0,
}

/// One 4-bit ID field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdField {
    /// The probe's name.
    pub probe: &'static str,
    /// Its register.
    pub register: IdRegister,
    /// Its lowest bit.
    pub shift: u32,
}

impl IdField {
    /// The field's value in a read of its register.
    pub const fn value(&self, register: u64) -> u64 {
        (register >> self.shift) & 0xf
    }
}

const fn f(probe: &'static str, register: IdRegister, shift: u32) -> IdField {
    IdField { probe, register, shift }
}

/// The fields probed, in the Arm ARM's layout of each register.
pub const ID_FIELDS: &[IdField] = &[
    f("cpu-ras", IdRegister::Pfr0, 28),
    f("cpu-sve", IdRegister::Pfr0, 32),
    f("cpu-amu", IdRegister::Pfr0, 44),
    f("cpu-mte", IdRegister::Pfr1, 8),
    f("cpu-sme", IdRegister::Pfr1, 24),
    f("cpu-debugver", IdRegister::Dfr0, 0),
    f("cpu-tracever", IdRegister::Dfr0, 4),
    f("cpu-pmuver", IdRegister::Dfr0, 8),
    f("cpu-brps", IdRegister::Dfr0, 12),
    f("cpu-wrps", IdRegister::Dfr0, 20),
    f("cpu-pmsver", IdRegister::Dfr0, 32),
];

/// The field a probe names.
pub fn field(probe: &str) -> Option<&'static IdField> {
    ID_FIELDS.iter().find(|f| f.probe == probe)
}
