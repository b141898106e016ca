//! What the run promises, from the guest's command line (`pvmkit.*=` words that
//! `pvmkit` writes into the device tree's `/chosen/bootargs`).

use guest_lib::GuestDt;
use pvmkit_abi::kvm::{self, Features};
use pvmkit_abi::profile::{
    Answer, Call, Conduit, Pages, Profile, VmFacts, ANDROID_6_12, HYP_LINUX_7_3_ORDINARY, HYP_LINUX_7_3_PROTECTED,
    LINUX_7_3_ORDINARY, LINUX_7_3_PROTECTED,
};

/// What the run promises beyond the ABI (the ABI's answers come from
/// [`pvmkit_abi::profile`], through [`Mode::expect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answers {
    /// The hypervisor pins pages a device holds (hyp's validator policy, not the ABI).
    pub pins_device_pages: bool,
    /// An access without a syndrome aborts (an ordinary VM's vCPU stops on real KVM).
    pub pair_access_aborts: bool,
}

/// What the guest knows of the pages a call names: the facts a profile row asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The pages' state.
    pub pages: Pages,
    /// Whether the VM is enrolled with the MMIO guard.
    pub enrolled: bool,
}

impl VmFacts for Known {
    fn pages(&self, _ipa: u64, _count: u64) -> Pages {
        self.pages
    }

    fn any_ram(&self, _ipa: u64, _count: u64) -> bool {
        self.pages != Pages::Outside
    }

    fn enrolled(&self) -> bool {
        self.enrolled
    }
}

/// The mode `pvmkit` says it started us in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Protected: under hyp with this ABI form ("android" or "upstream"), or "pkvm":
    /// under the real upstream pKVM of Linux 7.3 (`--backend pkvm`).
    Protected(&'static str),
    /// Under hyp, unprotected.
    Unprotected,
    /// An ordinary VM under the real KVM of the pKVM host (`--backend pkvm`'s baseline).
    UnprotectedKvm,
    /// On plain QEMU, no hypervisor.
    Bare,
}

impl Mode {
    pub fn from_dt(dt: &GuestDt<'static>) -> Option<Self> {
        use pvmkit_abi::guest_console::{ABI, BACKEND, MODE};
        let mode = (dt.bootarg(MODE)?, dt.bootarg(ABI), dt.bootarg(BACKEND));
        match mode {
            ("protected", Some("android"), None) => Some(Self::Protected("android")),
            ("protected", Some("upstream"), None) => Some(Self::Protected("upstream")),
            ("protected", Some("upstream"), Some("pkvm")) => Some(Self::Protected("pkvm")),
            ("unprotected", None, None) => Some(Self::Unprotected),
            ("unprotected", None, Some("pkvm")) => Some(Self::UnprotectedKvm),
            ("bare", None, None) => Some(Self::Bare),
            _ => None,
        }
    }

    /// Whether a hypervisor runs us (hyp or the real KVM).
    pub fn under_hyp(self) -> bool {
        self != Self::Bare
    }

    /// Whether that hypervisor is the real KVM of Linux 7.3 (`--backend pkvm`), whose
    /// answers were measured (`../shared/reference/real-pkvm-7.3.md`, section 3).
    pub fn real_kvm(self) -> bool {
        matches!(self, Self::Protected("pkvm") | Self::UnprotectedKvm)
    }

    /// What the run promises beyond the ABI.
    pub fn answers(self) -> Answers {
        let real = self.real_kvm();
        Answers { pins_device_pages: self.protected() && !real, pair_access_aborts: self != Self::UnprotectedKvm }
    }

    /// The answers this mode gives: the real pKVM's are Linux 7.3.4's, hyp's upstream
    /// profile is the same release under hyp's overlay of intended differences (`None`:
    /// plain QEMU, no hypervisor).
    pub fn profile(self) -> Option<&'static Profile> {
        match self {
            Self::Protected("android") => Some(&ANDROID_6_12),
            Self::Protected("pkvm") => Some(&LINUX_7_3_PROTECTED),
            Self::Protected(_) => Some(&HYP_LINUX_7_3_PROTECTED),
            Self::UnprotectedKvm => Some(&LINUX_7_3_ORDINARY),
            Self::Unprotected => Some(&HYP_LINUX_7_3_ORDINARY),
            Self::Bare => None,
        }
    }

    /// What the profile says a call answers when its pages are `pages` (the VM
    /// enrolled), and how many granules it walks before any short count.
    pub fn expect(self, conduit: Conduit, function: u32, args: [u64; 3], pages: Pages) -> Option<(Answer, u64)> {
        let profile = self.profile()?;
        let call = Call { conduit, function, args };
        let walk = profile.walk(&call);
        Some((profile.answer(&call, walk, &Known { pages, enrolled: true }).answer, walk))
    }

    /// The registers a call over HVC returns per the profile (`None`: not a register
    /// answer, or no hypervisor).
    pub fn expect_regs(self, function: u32, args: [u64; 3], pages: Pages) -> Option<[u64; 4]> {
        let (answer, walk) = self.expect(Conduit::Hvc, function, args, pages)?;
        answer.registers(args, walk)
    }

    /// Whether the release has an MMIO guard.
    pub fn has_guard(self) -> bool {
        self.expected_features().has(kvm::func::MMIO_GUARD_MAP)
    }

    /// Whether pKVM's memory services must be there.
    pub fn protected(self) -> bool {
        matches!(self, Self::Protected(_))
    }

    /// The features bitmap the profile advertises over HVC (none on plain QEMU).
    pub fn expected_features(self) -> Features {
        match self.profile() {
            Some(profile) => profile.features(&Known { pages: Pages::Private, enrolled: true }),
            None => Features::NONE,
        }
    }
}
