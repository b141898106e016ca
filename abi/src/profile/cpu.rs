//! What a VM sees of its CPU: the ID-register fields pKVM sanitizes for a protected VM
//! (PMU, debug, SVE, SME, MTE, AMU, RAS, statistical profiling, trace), each probed by
//! test-guest's conformance scenario as `probe cpu-NAME = value 0xN` and recorded from
//! the real release ([`super::recording`]).
//!
//! ```
//! use pvmkit_abi::profile::cpu::{field, ID_FIELDS};
//!
//! let pmu = field("cpu-pmuver").unwrap();
//! assert_eq!(pmu.value(0x0000_0000_0000_0100), 1, "ID_AA64DFR0_EL1.PMUVer is bits 11:8");
//! assert!(ID_FIELDS.iter().all(|f| f.probe.starts_with("cpu-")));
//! ```

/// The ID registers the fields live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

impl IdRegister {
    /// The register with this CRm and op2 in the ID space (op0 3, op1 0, CRn 0).
    pub const fn from_encoding(crm: u8, op2: u8) -> Option<Self> {
        match (crm, op2) {
            (4, 0) => Some(Self::Pfr0),
            (4, 1) => Some(Self::Pfr1),
            (5, 0) => Some(Self::Dfr0),
            _ => None,
        }
    }
}

/// A register read as a VM shown no more than `caps` allow: each capped field of
/// `register` becomes the smaller of the hardware's value and the cap, so that it never
/// claims what the release hides nor what the CPU lacks. (pKVM's own rule is the same
/// in effect for the fields recorded: it hides or limits a feature, never adds one.)
pub fn capped(register: IdRegister, hardware: u64, caps: &[(&str, u64)]) -> u64 {
    ID_FIELDS.iter().filter(|f| f.register == register).fold(hardware, |value, f| {
        match caps.iter().find(|(name, _)| *name == f.probe) {
            Some(&(_, cap)) if f.value(value) > cap => (value & !(0xf << f.shift)) | (cap << f.shift),
            _ => value,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lower_a_field_never_raise_it_and_touch_nothing_else() {
        // QEMU's cortex-a72 ID_AA64DFR0_EL1 (DebugVer 6, PMUVer 1, 6 BRPs, 4 WRPs,
        // 2 context comparators).
        let a72 = 0x1030_5106u64;
        let caps = [("cpu-debugver", 0), ("cpu-pmuver", 0), ("cpu-brps", 0), ("cpu-wrps", 0), ("cpu-ras", 1)];
        assert_eq!(capped(IdRegister::Dfr0, a72, &caps), 0x1000_0000, "the context comparators stay");
        // RAS: the a72 has none; a cap of 1 adds nothing.
        assert_eq!(capped(IdRegister::Pfr0, 0x0000_0011, &caps), 0x0000_0011);
        assert_eq!(capped(IdRegister::Pfr0, 0x2000_0011, &caps), 0x1000_0011, "RAS v1.1 capped at v1");
        assert_eq!(capped(IdRegister::Pfr1, u64::MAX, &caps), u64::MAX, "no cap for PFR1's fields given");
        assert_eq!(IdRegister::from_encoding(4, 0), Some(IdRegister::Pfr0));
        assert_eq!(IdRegister::from_encoding(4, 1), Some(IdRegister::Pfr1));
        assert_eq!(IdRegister::from_encoding(5, 0), Some(IdRegister::Dfr0));
        assert_eq!(field("cpu-ras").map(|f| (f.register, f.shift)), Some((IdRegister::Pfr0, 28)));
        assert_eq!(field("cpu-nothing"), None);
        assert_eq!(IdRegister::from_encoding(5, 1), None);
    }
}
