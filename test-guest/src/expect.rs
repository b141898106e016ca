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

    /// The features bitmap hyp must advertise in this mode: exactly the vendor
    /// functions it implements (today: only the bitmap call itself).
    pub fn expected_features(self) -> Features {
        match self {
            Self::Protected(_) | Self::Unprotected => Features::with(&[func::FEATURES]),
            Self::Bare => Features::NONE,
        }
    }
}
