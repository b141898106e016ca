//! What the run promises, from the guest's command line (`pvmkit.*=` words that
//! `pvmkit` writes into the device tree's `/chosen/bootargs`).

use abi::kvm::{func, Features};
use guest_lib::GuestDt;

/// The mode `pvmkit` says it started us in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Under hyp, protected, with this ABI form ("android" or "upstream").
    Protected(&'static str),
    /// Under hyp, unprotected.
    Unprotected,
    /// On plain QEMU, no hypervisor.
    Bare,
}

impl Mode {
    pub fn from_dt(dt: &GuestDt<'static>) -> Option<Self> {
        match (dt.bootarg("pvmkit.mode")?, dt.bootarg("pvmkit.abi")) {
            ("protected", Some("android")) => Some(Self::Protected("android")),
            ("protected", Some("upstream")) => Some(Self::Protected("upstream")),
            ("unprotected", None) => Some(Self::Unprotected),
            ("bare", None) => Some(Self::Bare),
            _ => None,
        }
    }

    pub fn under_hyp(self) -> bool {
        self != Self::Bare
    }

    /// Whether pKVM's memory services must be there.
    pub fn protected(self) -> bool {
        matches!(self, Self::Protected(_))
    }

    pub fn android(self) -> bool {
        self == Self::Protected("android")
    }

    /// The features bitmap hyp must advertise in this mode: exactly the vendor
    /// functions it implements.
    pub fn expected_features(self) -> Features {
        match self {
            // Every Android pKVM service up to the ranged MMIO guard calls (0xffd).
            Self::Protected("android") => Features::with(&[
                func::FEATURES,
                func::HYP_MEMINFO,
                func::MEM_SHARE,
                func::MEM_UNSHARE,
                func::MMIO_GUARD_INFO,
                func::MMIO_GUARD_ENROLL,
                func::MMIO_GUARD_MAP,
                func::MMIO_GUARD_UNMAP,
                func::MEM_RELINQUISH,
                func::MMIO_RGUARD_MAP,
                func::MMIO_RGUARD_UNMAP,
            ]),
            // Upstream: the memory services and the single MMIO_GUARD call (0x9d).
            Self::Protected(_) => Features::with(&[
                func::FEATURES,
                func::HYP_MEMINFO,
                func::MEM_SHARE,
                func::MEM_UNSHARE,
                func::MMIO_GUARD_MAP,
            ]),
            Self::Unprotected => Features::with(&[func::FEATURES]),
            Self::Bare => Features::NONE,
        }
    }
}
