//! Exceptions the guest takes: decoded reports for the unexpected ones, and probes
//! that turn an external abort on one chosen access into an `Err`.
//!
//! Under pKVM an access the host must not emulate (an unregistered MMIO address, a
//! non-emulatable instruction) comes back as a synchronous external abort. A careful
//! driver, or a test, uses `probe` (firmware builds only) to try such an access and survive it; any other
//! exception is reported and the VM powers off.
//!
//! ```
//! use guest_lib::exceptions::{Esr, ExceptionReport};
//!
//! let report = ExceptionReport { kind: "synchronous", esr: Esr(0x9600_0010), far: 0x9001000, elr: 0x8020_0000 };
//! assert!(report.to_string().contains("data abort"));
//! ```

use core::fmt;

pub use pvmkit_abi::esr::Esr;
use pvmkit_abi::esr::{ec, FSC_EXTERNAL_ABORT};

/// A synchronous external abort that a probe caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalAbort {
    /// ESR_EL1 as delivered.
    pub esr: Esr,
    /// FAR_EL1: the address accessed.
    pub far: u64,
}

impl ExternalAbort {
    /// Whether the syndrome is exactly a synchronous external abort on a data access.
    pub fn is_data_external_abort(&self) -> bool {
        let class = self.esr.ec();
        (class == ec::DABT_CURRENT || class == ec::DABT_LOWER) && (self.esr.iss() & 0x3f) as u8 == FSC_EXTERNAL_ABORT
    }
}

impl fmt::Display for ExternalAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "external abort at {:#x}: ESR {}", self.far, self.esr)
    }
}

/// An exception guest-lib did not expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionReport {
    /// Which vector: "synchronous", "IRQ", "FIQ", "SError".
    pub kind: &'static str,
    /// ESR_EL1.
    pub esr: Esr,
    /// FAR_EL1.
    pub far: u64,
    /// ELR_EL1: where it happened.
    pub elr: u64,
}

impl fmt::Display for ExceptionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected {} exception at ELR {:#x}: ESR {}, FAR {:#x}", self.kind, self.elr, self.esr, self.far)
    }
}

/// Whether a synchronous exception at `elr` is a data abort on one of the probe
/// instructions `sites`: then the probe reports it instead of the VM stopping.
pub fn is_probe_abort(elr: u64, esr: Esr, sites: &[u64]) -> bool {
    matches!(esr.ec(), ec::DABT_CURRENT | ec::DABT_LOWER) && sites.contains(&elr)
}

/// Whether a synchronous exception at `elr` is an UNDEFINED exception (EC 0) on one
/// of the register probes' instructions `sites`.
pub fn is_probe_undefined(elr: u64, esr: Esr, sites: &[u64]) -> bool {
    esr.ec() == ec::UNKNOWN && sites.contains(&elr)
}

/// An UNDEFINED exception a register probe caught: the hypervisor refused the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undefined {
    /// ESR_EL1 as delivered (EC 0).
    pub esr: Esr,
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undefined: ESR {}", self.esr)
    }
}

/// How an exception handler resumes after a probe's abort: ELR = `resume_at`, x1 = `x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeFixup {
    /// The instruction after the probe's access.
    pub resume_at: u64,
    /// What x1 must hold on return (1: the probe aborted).
    pub x1: u64,
}

#[cfg(any(target_os = "none", doc))]
pub mod probe;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_probe_aborts_only_on_probe_sites() {
        let sea = Esr(0x9600_0010);
        assert!(is_probe_abort(0x8020_1000, sea, &[0x8020_0ffc, 0x8020_1000]));
        assert!(!is_probe_abort(0x8020_1004, sea, &[0x8020_1000]));
        assert!(!is_probe_abort(0x8020_1000, Esr(0x0200_0000), &[0x8020_1000]), "undefined instruction");
        let abort = ExternalAbort { esr: sea, far: 0x0a00_0000 };
        assert!(abort.is_data_external_abort());
        assert!(!ExternalAbort { esr: Esr(0x9600_0005), far: 0 }.is_data_external_abort());
        assert!(abort.to_string().starts_with("external abort at 0xa000000: ESR 0x96000010 (EC 0x25: data abort"));
    }

    #[test]
    fn recognises_undefined_exceptions_only_on_register_probe_sites() {
        let undefined = Esr(0x0200_0000);
        assert!(is_probe_undefined(0x8020_2000, undefined, &[0x8020_2000]));
        assert!(!is_probe_undefined(0x8020_2004, undefined, &[0x8020_2000]), "another instruction");
        assert!(!is_probe_undefined(0x8020_2000, Esr(0x9600_0010), &[0x8020_2000]), "a data abort");
        assert_eq!(
            Undefined { esr: undefined }.to_string(),
            "undefined: ESR 0x2000000 (EC 0x00: unknown reason (undefined instruction?))"
        );
    }

    #[test]
    fn reports_are_decoded() {
        let r = ExceptionReport { kind: "synchronous", esr: Esr(0x9600_0010), far: 0x10, elr: 0x8020_0000 };
        let text = r.to_string();
        assert!(text.contains("ELR 0x80200000") && text.contains("data abort") && text.contains("FAR 0x10"), "{text}");
    }
}
