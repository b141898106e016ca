//! What the run promises, from the guest's command line (`pvmkit.*=` words that
//! `pvmkit` writes into the device tree's `/chosen/bootargs`).

use abi::kvm::{func, Features};
use guest_lib::timer::Wake;
use guest_lib::GuestDt;

/// What a MEM_SHARE of an IPA outside memory gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideMemory {
    /// INVALID_PARAMETER (hyp refuses it).
    Invalid,
    /// An external abort at the HVC itself (the real pKVM cannot fault it in).
    Abort,
}

/// The hypervisor's answers where hyp's profiles and the real KVM differ: one table
/// the cases read, per mode (the real KVM's from `../shared/reference/real-pkvm-7.3.md`
/// §3, measured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answers {
    /// PSCI_VERSION (`None`: not pinned, plain QEMU's firmware).
    pub psci_version: Option<(u16, u16)>,
    /// PSCI_FEATURES(CPU_ON_64) succeeds (`None`: not pinned).
    pub cpu_on: Option<bool>,
    /// Unknown function IDs zero x1..x3 (else leave them as they were).
    pub unknown_ids_zero_x1_x3: bool,
    /// MEM_SHARE outside memory.
    pub share_outside_memory: OutsideMemory,
    /// How a timed wait wakes.
    pub timer_wake: Wake,
    /// The hypervisor pins pages a device holds (hyp's validator policy, not the ABI).
    pub pins_device_pages: bool,
    /// An access without a syndrome aborts (an ordinary VM's vCPU stops on real KVM).
    pub pair_access_aborts: bool,
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
        let mode = (dt.bootarg("pvmkit.mode")?, dt.bootarg("pvmkit.abi"), dt.bootarg("pvmkit.backend"));
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

    /// The answers to expect in this mode.
    pub fn answers(self) -> Answers {
        let real = self.real_kvm();
        let hyp = self.under_hyp() && !real;
        Answers {
            psci_version: if real {
                Some((1, 3))
            } else if hyp {
                Some((1, 1))
            } else {
                None
            },
            cpu_on: if real {
                Some(true)
            } else if hyp {
                Some(false)
            } else {
                None
            },
            unknown_ids_zero_x1_x3: real,
            share_outside_memory: if real { OutsideMemory::Abort } else { OutsideMemory::Invalid },
            timer_wake: if hyp { Wake::Polled } else { Wake::Interrupt },
            pins_device_pages: self.protected() && !real,
            pair_access_aborts: self != Self::UnprotectedKvm,
        }
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
            // Linux 7.3's pKVM: the memory services only, no MMIO guard (0x1d).
            Self::Protected("pkvm") => {
                Features::with(&[func::FEATURES, func::HYP_MEMINFO, func::MEM_SHARE, func::MEM_UNSHARE])
            }
            // Upstream: the memory services and the single MMIO_GUARD call (0x9d).
            Self::Protected(_) => Features::with(&[
                func::FEATURES,
                func::HYP_MEMINFO,
                func::MEM_SHARE,
                func::MEM_UNSHARE,
                func::MMIO_GUARD_MAP,
            ]),
            Self::Unprotected => Features::with(&[func::FEATURES]),
            // The host KVM's own bitmap: FEATURES and PTP (0x3).
            Self::UnprotectedKvm => Features::with(&[func::FEATURES, func::PTP]),
            Self::Bare => Features::NONE,
        }
    }
}
