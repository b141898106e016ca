//! Who is below us: KVM (protected or not), another hypervisor, or nothing that
//! answers SMCCC vendor calls (plain QEMU, where every call returns NOT_SUPPORTED).
//!
//! ```
//! # use guest_lib::conduit::Conduit;
//! /// A conduit with nothing behind it: every call answers NOT_SUPPORTED (-1).
//! struct Nothing;
//! impl Conduit for Nothing {
//!     fn call(&self, _function: u32, _args: [u64; 3]) -> [u64; 4] {
//!         [u64::MAX, 0, 0, 0]
//!     }
//! }
//! use guest_lib::hypervisor::{Hypervisor, HypervisorInfo};
//!
//! let info = HypervisorInfo::discover(&Nothing);
//! assert_eq!(info.hypervisor, Hypervisor::None);
//! assert!(!info.is_protected());
//! ```

use pvmkit_abi::kvm::{self, func, Features};
use pvmkit_abi::smccc;

use crate::conduit::Conduit;

/// The hypervisor, as discovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    /// No SMCCC 1.1 vendor services: bare hardware or an emulator's firmware.
    None,
    /// KVM (its UID), with its features bitmap.
    Kvm(Features),
    /// Some other hypervisor, by UID.
    Other([u32; 4]),
}

/// The result of discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypervisorInfo {
    /// SMCCC version (major, minor), if SMCCC_VERSION is implemented.
    pub smccc_version: Option<(u16, u16)>,
    /// The hypervisor.
    pub hypervisor: Hypervisor,
}

impl HypervisorInfo {
    /// Asks the conduit: SMCCC_VERSION, then the vendor UID, then (for KVM) the features.
    pub fn discover<C: Conduit>(conduit: &C) -> Self {
        let version = conduit.call(smccc::SMCCC_VERSION, [0; 3])[0];
        if smccc::status(version) < 0 {
            return Self { smccc_version: None, hypervisor: Hypervisor::None };
        }
        let smccc_version = Some(smccc::version_parts(version as u32));
        let uid = conduit.call(kvm::VENDOR_HYP_CALL_UID, [0; 3]).map(|r| r as u32);
        // An unimplemented UID call answers NOT_SUPPORTED in w0 (0xffff_ffff).
        let hypervisor = if uid[0] == smccc::NOT_SUPPORTED as u32 {
            Hypervisor::None
        } else if uid == kvm::KVM_UID {
            Hypervisor::Kvm(Features::from_regs(conduit.call(kvm::KVM_FEATURES, [0; 3])))
        } else {
            Hypervisor::Other(uid)
        };
        Self { smccc_version, hypervisor }
    }

    /// The KVM features bitmap (empty for anything but KVM).
    pub fn features(&self) -> Features {
        match self.hypervisor {
            Hypervisor::Kvm(features) => features,
            _ => Features::NONE,
        }
    }

    /// Whether the pKVM memory-protection services are offered: this is a protected VM
    /// (MEMINFO, MEM_SHARE and MEM_UNSHARE, as Linux's pKVM guest driver requires).
    pub fn is_protected(&self) -> bool {
        let f = self.features();
        f.has(func::HYP_MEMINFO) && f.has(func::MEM_SHARE) && f.has(func::MEM_UNSHARE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conduit::fake::FakeConduit;

    const NS: u64 = u64::MAX; // -1

    #[test]
    fn finds_kvm_and_its_features() {
        let fake = FakeConduit::new(|f, _| match f {
            0x8000_0000 => [0x10001, 0, 0, 0],
            0x8600_ff01 => [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d],
            0x8600_0000 => [0x1d, 0, 0, 0],
            _ => [NS, 0, 0, 0],
        });
        let info = HypervisorInfo::discover(&fake);
        assert_eq!(info.smccc_version, Some((1, 1)));
        assert_eq!(info.hypervisor, Hypervisor::Kvm(Features([0x1d, 0, 0, 0])));
        assert!(info.is_protected());
        assert_eq!(fake.calls.borrow().len(), 3);
    }

    #[test]
    fn plain_qemu_is_no_hypervisor() {
        let fake = FakeConduit::new(|_, _| [NS, 0, 0, 0]);
        let info = HypervisorInfo::discover(&fake);
        assert_eq!(info, HypervisorInfo { smccc_version: None, hypervisor: Hypervisor::None });
        assert!(!info.is_protected());
        assert_eq!(fake.calls.borrow().len(), 1, "stops after SMCCC_VERSION");
    }

    #[test]
    fn unprotected_kvm_and_other_hypervisors() {
        let kvm = FakeConduit::new(|f, _| match f {
            0x8000_0000 => [0x10002, 0, 0, 0],
            0x8600_ff01 => kvm::KVM_UID.map(u64::from),
            0x8600_0000 => [0x3, 0, 0, 0],
            _ => [NS, 0, 0, 0],
        });
        let info = HypervisorInfo::discover(&kvm);
        assert_eq!(info.smccc_version, Some((1, 2)));
        assert!(!info.is_protected());
        let other = FakeConduit::new(|f, _| match f {
            0x8000_0000 => [0x10001, 0, 0, 0],
            0x8600_ff01 => [1, 2, 3, 4],
            _ => [NS, 0, 0, 0],
        });
        assert_eq!(HypervisorInfo::discover(&other).hypervisor, Hypervisor::Other([1, 2, 3, 4]));
        let no_uid = FakeConduit::new(|f, _| if f == 0x8000_0000 { [0x10001, 0, 0, 0] } else { [NS, 0, 0, 0] });
        assert_eq!(HypervisorInfo::discover(&no_uid).hypervisor, Hypervisor::None);
    }
}
