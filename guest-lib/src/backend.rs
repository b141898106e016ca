//! What the hypervisor below can do, as capabilities, and which backend offers which:
//! chosen once at discovery from the vendor UID and the KVM features bitmap
//! ([`Backend::select`]).
//!
//! | backend | memory sharing ([`MemSharing`]) | MMIO guard ([`MmioGuarded`]) | relinquish |
//! |---|---|---|---|
//! | none, another hypervisor, plain KVM | not needed: the host sees all memory | none | no |
//! | upstream pKVM (Linux 7.3) | MEM_SHARE/UNSHARE, a granule per call | none (7.3 offers no guard) | no |
//! | a later upstream pKVM | the same | the single MMIO_GUARD call | no |
//! | Android pKVM (ACK) | ranged MEM_SHARE/UNSHARE (MEMINFO says) | INFO/ENROLL/MAP/UNMAP, ranged where offered | MEM_RELINQUISH |
//!
//! Upstream pKVM is told from plain KVM by its memory services, not by the guard: it
//! has MEMINFO, MEM_SHARE and MEM_UNSHARE and no MMIO_GUARD_INFO.
//!
//! ```
//! use pvmkit_abi::kvm::{Features, KVM_UID};
//! use guest_lib::backend::Backend;
//! use guest_lib::hypervisor::{Hypervisor, HypervisorInfo};
//!
//! // Linux 7.3's protected VM: MEMINFO, MEM_SHARE, MEM_UNSHARE (bits 2-4) and PTP.
//! let info = HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Kvm(Features([0x1d, 0, 0, 0])) };
//! assert_eq!(Backend::select(&info), Backend::UpstreamPkvm { mmio_guard: false });
//! assert!(Backend::select(&info).shares_memory());
//! ```

use mmio_guard::Form;
use pvmkit_abi::kvm::func;

use crate::hypervisor::{Hypervisor, HypervisorInfo};

pub use crate::sharing::MemSharing;
pub use mmio_guard::MmioGuarded;

/// The hypervisor below, by what it offers a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Nothing answers the vendor calls: plain QEMU, or hardware.
    None,
    /// Another hypervisor, by its UID.
    Other([u32; 4]),
    /// KVM without pKVM's memory services: an ordinary VM.
    Kvm,
    /// Upstream pKVM: sharing a granule per call; `mmio_guard` when it offers the
    /// single MMIO_GUARD call (Linux 7.3 does not).
    UpstreamPkvm {
        /// The single MMIO_GUARD call is offered.
        mmio_guard: bool,
    },
    /// Android's pKVM: the INFO/ENROLL/MAP/UNMAP guard and ranged memory calls.
    AndroidPkvm {
        /// MMIO_RGUARD_MAP/UNMAP are offered.
        ranged_guard: bool,
        /// MEM_RELINQUISH is offered.
        relinquish: bool,
    },
}

impl Backend {
    /// The backend `info` describes.
    pub fn select(info: &HypervisorInfo) -> Self {
        let features = match info.hypervisor {
            Hypervisor::None => return Self::None,
            Hypervisor::Other(uid) => return Self::Other(uid),
            Hypervisor::Kvm(features) => features,
        };
        if !info.is_protected() {
            return Self::Kvm;
        }
        match Form::detect(features) {
            Some(Form::Android { ranged }) => {
                Self::AndroidPkvm { ranged_guard: ranged, relinquish: features.has(func::MEM_RELINQUISH) }
            }
            Some(Form::Upstream) => Self::UpstreamPkvm { mmio_guard: true },
            None => Self::UpstreamPkvm { mmio_guard: false },
        }
    }

    /// Whether memory must be shared before the host may see it (a protected VM).
    pub fn shares_memory(&self) -> bool {
        matches!(self, Self::UpstreamPkvm { .. } | Self::AndroidPkvm { .. })
    }

    /// The MMIO guard's form, when the backend has one: then every MMIO granule a guest
    /// uses must be registered ([`MmioGuarded`]).
    pub fn guard_form(&self) -> Option<Form> {
        match *self {
            Self::UpstreamPkvm { mmio_guard: true } => Some(Form::Upstream),
            Self::AndroidPkvm { ranged_guard, .. } => Some(Form::Android { ranged: ranged_guard }),
            _ => None,
        }
    }

    /// Whether MEM_RELINQUISH gives a private page back to the host.
    pub fn relinquishes(&self) -> bool {
        matches!(self, Self::AndroidPkvm { relinquish: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvmkit_abi::kvm::Features;

    fn kvm(bitmap: u32) -> HypervisorInfo {
        HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Kvm(Features([bitmap, 0, 0, 0])) }
    }

    /// Each backend from the answers that select it: the bitmaps the real Linux 7.3.4
    /// gave (`abi/recordings/`: `features-hvc`), the one ACK 6.12 advertises (hyp's
    /// Android profile, read from its source), and a later upstream's with MMIO_GUARD.
    #[test]
    fn each_backend_from_the_answers_that_select_it() {
        let recorded = |text: &str| {
            let line = text.lines().find(|l| l.starts_with("probe features-hvc = ")).expect("a features probe");
            let x0 = line.split("x0=").nth(1).and_then(|r| r.split(' ').next()).expect("x0");
            u32::from_str_radix(x0.trim_start_matches("0x"), 16).expect("hex")
        };
        let protected = recorded(pvmkit_abi::profile::recording::recorded::PROTECTED);
        let ordinary = recorded(pvmkit_abi::profile::recording::recorded::ORDINARY);
        assert_eq!(Backend::select(&kvm(protected)), Backend::UpstreamPkvm { mmio_guard: false });
        assert_eq!(Backend::select(&kvm(ordinary)), Backend::Kvm);
        let android = android_bitmap();
        assert_eq!(Backend::select(&kvm(android)), Backend::AndroidPkvm { ranged_guard: true, relinquish: true });
        let later = Features::with(&[0, 2, 3, 4, 7]).0[0];
        assert_eq!(Backend::select(&kvm(later)), Backend::UpstreamPkvm { mmio_guard: true });
        assert_eq!(
            Backend::select(&HypervisorInfo { smccc_version: None, hypervisor: Hypervisor::None }),
            Backend::None
        );
        let other = HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Other([1, 2, 3, 4]) };
        assert_eq!(Backend::select(&other), Backend::Other([1, 2, 3, 4]));
    }

    /// What hyp's Android profile (ACK 6.12's source) answers KVM_FEATURES with.
    fn android_bitmap() -> u32 {
        use pvmkit_abi::profile::{Answer, Call, Conduit, Pages, VmFacts, ANDROID_6_12};
        struct Nothing;
        impl VmFacts for Nothing {
            fn pages(&self, _: u64, _: u64) -> Pages {
                Pages::Private
            }
            fn any_ram(&self, _: u64, _: u64) -> bool {
                false
            }
            fn enrolled(&self) -> bool {
                false
            }
        }
        let call = Call { conduit: Conduit::Hvc, function: pvmkit_abi::kvm::KVM_FEATURES, args: [0; 3] };
        match ANDROID_6_12.answer(&call, 1, &Nothing).answer {
            Answer::Regs(regs) => regs[0] as u32,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn capabilities_follow_the_backend() {
        let android = Backend::AndroidPkvm { ranged_guard: false, relinquish: true };
        assert!(android.shares_memory() && android.relinquishes());
        assert_eq!(android.guard_form(), Some(Form::Android { ranged: false }));
        let upstream = Backend::UpstreamPkvm { mmio_guard: false };
        assert!(upstream.shares_memory() && !upstream.relinquishes());
        assert_eq!(upstream.guard_form(), None);
        assert_eq!(Backend::UpstreamPkvm { mmio_guard: true }.guard_form(), Some(Form::Upstream));
        for plain in [Backend::None, Backend::Kvm, Backend::Other([0; 4])] {
            assert!(!plain.shares_memory() && plain.guard_form().is_none() && !plain.relinquishes());
        }
    }
}
